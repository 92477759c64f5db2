from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field

from app.kit.clock import Timestamp
from app.models.institution import AlertLevel


class LevelChangeOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: UUID
    institution_id: UUID
    from_level: AlertLevel
    to_level: AlertLevel
    cause: str = Field(description="Why: the alert opened or closed, or the regulator's decision.")
    actor: str = Field(
        description='Who or what: "regulator:<key id>", "admin:<key id>", '
        '"job:evaluate_alerts", "bank:<slug>", "institution:<key id>".'
    )
    changed_at: Timestamp
