"""Pausing Python's cyclic garbage collector while a million acyclic objects are made and used.

The collector walks every tracked object again each time the oldest generation grows by a quarter:
for a day's million movements that is thirty walks over them, and one more when it is switched
back on while they are alive. Reference counting still frees everything at once; only cycles wait
until the pause ends. Pauses nest and overlap (two statements read at once in one process): the
collector comes back on, if it was on, when the last one ends, whichever that is."""

import gc
from collections.abc import Iterator
from contextlib import contextmanager


class _Pauses:
    open = 0
    restore = False


@contextmanager
def collector_paused() -> Iterator[None]:
    if _Pauses.open == 0:
        _Pauses.restore = gc.isenabled()
        gc.disable()
    _Pauses.open += 1
    try:
        yield
    finally:
        _Pauses.open -= 1
        if _Pauses.open == 0 and _Pauses.restore:
            gc.enable()
