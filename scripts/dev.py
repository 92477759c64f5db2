#!/usr/bin/env python3
"""Set-up and run, needing nothing but Python 3.11+:

    python3 scripts/dev.py serve   # install, migrate the embedded SQLite database, serve on :8000
    python3 scripts/dev.py test    # install with the test tools, run the test suite

Both create `.venv/` beside this repository's pyproject.toml and install into it, again only when
pyproject.toml has changed. `test` runs against DATABASE_URL when set (e.g. a PostgreSQL database),
else against a fresh SQLite file; extra arguments go to pytest. `serve` passes extra arguments to
`prepaid-guard serve` (e.g. --host 0.0.0.0 --port 8080).
"""

import hashlib
import os
import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
VENV = ROOT / ".venv"
BIN = VENV / ("Scripts" if os.name == "nt" else "bin")


def ensure_installed(extras: str) -> None:
    if sys.version_info < (3, 11):  # noqa: UP036 (this script runs before any venv exists)
        sys.exit(f"PrepaidGuard needs Python 3.11 or newer; this is {sys.version.split()[0]}")
    if not (BIN / "python").exists():
        print(f"creating {VENV}", flush=True)
        venv.EnvBuilder(with_pip=True).create(VENV)
    stamp = VENV / f".installed{extras}"
    wanted = hashlib.sha256((ROOT / "pyproject.toml").read_bytes()).hexdigest()
    if stamp.exists() and stamp.read_text() == wanted:
        return
    print(f"installing prepaid-guard{extras} into {VENV}", flush=True)
    pip = [str(BIN / "python"), "-m", "pip", "install", "--disable-pip-version-check", "-q"]
    subprocess.run([*pip, "--upgrade", "pip"], check=True)
    subprocess.run([*pip, "-e", f"{ROOT}{extras}"], check=True)
    stamp.write_text(wanted)


def main() -> int:
    command, *rest = sys.argv[1:] or ["help"]
    if command == "serve":
        ensure_installed("")
        return subprocess.call([str(BIN / "prepaid-guard"), "serve", *rest], cwd=ROOT)
    if command == "test":
        ensure_installed("[dev]")
        return subprocess.call([str(BIN / "python"), "-m", "pytest", *rest], cwd=ROOT)
    print(__doc__)
    return 0 if command == "help" else 2


if __name__ == "__main__":
    sys.exit(main())
