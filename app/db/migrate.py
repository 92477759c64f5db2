"""Run Alembic from code: the CLI, the run command and the tests build the schema the same way."""

from pathlib import Path

from alembic import command
from alembic.config import Config


def _project_root() -> Path:
    """The source tree when run from a checkout; the working directory when the package is installed
    (the container image keeps alembic.ini and migrations/ in its working directory)."""
    checkout = Path(__file__).resolve().parents[2]
    return checkout if (checkout / "alembic.ini").exists() else Path.cwd()


ROOT = _project_root()


def alembic_config(database_url: str | None = None) -> Config:
    config = Config(str(ROOT / "alembic.ini"))
    config.set_main_option("script_location", str(ROOT / "migrations"))
    config.attributes["configure_logger"] = False
    if database_url:
        config.attributes["database_url"] = database_url
    return config


def upgrade(database_url: str | None = None, revision: str = "head") -> None:
    """Must be called with no event loop running (Alembic's env runs its own)."""
    command.upgrade(alembic_config(database_url), revision)
