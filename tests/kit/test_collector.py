"""The cyclic collector is paused while any pause is open, and comes back as it was."""

import gc

from hypothesis import given
from hypothesis import strategies as st

from app.kit.collector import collector_paused


@given(st.permutations(range(4)), st.booleans())
def test_overlapping_pauses_restore_the_collector_whichever_ends_last(order, enabled):
    was = gc.isenabled()
    (gc.enable if enabled else gc.disable)()
    try:
        pauses = [collector_paused() for _ in order]
        for pause in pauses:
            pause.__enter__()
            assert not gc.isenabled()
        for position, index in enumerate(order):
            pauses[index].__exit__(None, None, None)
            assert gc.isenabled() == (enabled and position == len(order) - 1)
    finally:
        (gc.enable if was else gc.disable)()
