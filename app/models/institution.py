from datetime import datetime
from enum import StrEnum
from uuid import UUID

from sqlalchemy import BigInteger, ForeignKey, String, Uuid
from sqlalchemy.orm import Mapped, mapped_column

from app.db.base import Base, UtcDateTime


class InstitutionCategory(StrEnum):
    subject = "subject"  # 学科类
    non_subject = "non_subject"  # 非学科类


class InstitutionStatus(StrEnum):
    active = "active"
    frozen = "frozen"  # 冻结, by the regulator
    revoked = "revoked"  # licence revoked


class ListStatus(StrEnum):
    none = "none"
    white = "white"  # 白名单
    black = "black"  # 黑名单


class AlertLevel(StrEnum):
    green = "GREEN"
    yellow = "YELLOW"
    red = "RED"
    frozen = "FROZEN"


class Institution(Base):
    """A training institution with its escrow account at a custodian bank. Its id is the key of
    every per-institution table: the ledger, enrollments, lessons, payouts and refunds."""

    __tablename__ = "institutions"

    id: Mapped[UUID] = mapped_column(Uuid, primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    uscc: Mapped[str] = mapped_column(String(18), unique=True)
    license_no: Mapped[str] = mapped_column(String(64))
    category: Mapped[str] = mapped_column(String(20))
    jurisdiction_code: Mapped[str] = mapped_column(ForeignKey("jurisdictions.code"), index=True)
    bank_slug: Mapped[str] = mapped_column(String(32))
    escrow_account_no: Mapped[str] = mapped_column(String(40), unique=True)
    basic_account_no: Mapped[str] = mapped_column(String(40))
    basic_account_name: Mapped[str] = mapped_column(String(200))
    status: Mapped[str] = mapped_column(String(20), default=InstitutionStatus.active)
    list_status: Mapped[str] = mapped_column(String(10), default=ListStatus.none)
    alert_level: Mapped[str] = mapped_column(String(10), default=AlertLevel.green)
    # Set by the regulator per institution; None takes the jurisdiction profile's floor.
    min_balance_floor_fen: Mapped[int | None] = mapped_column(BigInteger)
    # The escrow balance the bank last reported (statement or balance query), and when.
    bank_balance_fen: Mapped[int | None] = mapped_column(BigInteger)
    bank_balance_as_of: Mapped[datetime | None] = mapped_column(UtcDateTime)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime)
