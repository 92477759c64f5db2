from app.kit.errors import NotFound


class WindDownNotFound(NotFound):
    code = "wind_down_not_found"
    title = "The institution has not been wound down"
