from app.kit.errors import Unprocessable


class AsOfInFuture(Unprocessable):
    code = "as_of_in_future"
    title = "as_of is in the future"


class InvalidAsOf(Unprocessable):
    code = "invalid_as_of"
    title = "Invalid as_of"
