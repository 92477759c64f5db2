from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Body, Request
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from app.audit import service as audit
from app.audit.context import Actor, acting_as
from app.auth.dependencies import Admin
from app.config import Settings
from app.db.unit import Db
from app.jobs.registry import JOBS
from app.kit.clock import utcnow
from app.kit.errors import NotFound, Unprocessable

router = APIRouter(prefix="/v1/admin/jobs", tags=["jobs"])


class UnknownJob(NotFound):
    code = "unknown_job"


class AsOfNotAllowed(Unprocessable):
    code = "as_of_not_allowed"
    title = "as_of is not honoured in production"


class JobRun(BaseModel):
    model_config = ConfigDict(extra="forbid")

    as_of: AwareDatetime | None = Field(
        default=None,
        description="Run as if it were this moment (outside production only, so tests can move time).",
    )


class JobResult(BaseModel):
    job: str
    as_of: datetime
    handled: int = Field(description="How many objects the job acted on.")


@router.post(
    "/{job}",
    response_model=JobResult,
    summary="Run a scheduled job now",
    description="Jobs: "
    + ", ".join(f"`{name}`" for name in sorted(JOBS))
    + ". The body is optional: none at all runs the job now, as `{}` does.",
)
async def run_job(
    job: str,
    request: Request,
    caller: Admin,
    db: Db,
    # Every field is optional, so no body at all means `{}`.
    body: Annotated[JobRun, Body(default_factory=JobRun)],
) -> JobResult:
    settings: Settings = request.app.state.settings
    run = JOBS.get(job)
    if run is None:
        raise UnknownJob(f"no job {job!r}; jobs are {', '.join(sorted(JOBS))}")
    if body.as_of is not None and settings.is_production:
        raise AsOfNotAllowed("jobs run at the present moment in production")
    as_of = body.as_of or utcnow()
    # What the job moves, the job moved (from this caller's address); a job commits as it goes, so
    # its run is recorded once it has ended, with what it handled.
    with acting_as(Actor("job", job)):
        handled = await run(db.for_jobs(), as_of)
    await db.run(
        lambda session: audit.record(
            session,
            "job.run",
            actor=caller,
            object_type="job",
            object_id=job,
            details={"as_of": as_of.isoformat(), "handled": handled},
        )
    )
    return JobResult(job=job, as_of=as_of, handled=handled)
