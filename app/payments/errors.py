from app.kit.errors import Unprocessable


class UnknownEscrowAccount(Unprocessable):
    code = "unknown_escrow_account"
    title = "Unknown escrow account"


class InvalidBankPayment(Unprocessable):
    code = "invalid_bank_payment"
    title = "Invalid bank payment"


class ForeignEscrowAccount(Unprocessable):
    code = "foreign_escrow_account"
    title = "The escrow account is held at another bank"
