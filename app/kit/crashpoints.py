"""Named crash points: places where a test may have the process die at once (SIGKILL), to prove
that what a crash there leaves behind is safe. Enabled only by the CRASH_POINTS setting, which
production refuses; a disabled point costs one set lookup."""

import os
import signal

_enabled: frozenset[str] = frozenset()


def enable(names: frozenset[str]) -> None:
    global _enabled
    _enabled = names


def crash_point(name: str) -> None:
    if name in _enabled:
        os.kill(os.getpid(), signal.SIGKILL)
