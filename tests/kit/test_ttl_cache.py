"""The per-process memory of keys and profiles: a value is kept for its ttl, a forgotten tag is
neither served nor remembered again for a whole ttl, and the memory stays bounded."""

from hypothesis import given
from hypothesis import strategies as st

from app.kit.ttl_cache import TtlCache


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_a_value_is_served_until_its_ttl_runs_out():
    clock = Clock()
    cache: TtlCache[str, int] = TtlCache(ttl=10, clock=clock)
    cache.put("a", 1, tag="t")
    clock.now += 9.9
    assert cache.get("a") == 1
    clock.now += 0.2
    assert cache.get("a") is None


def test_forgetting_a_tag_drops_its_values_and_refuses_them_for_a_ttl():
    clock = Clock()
    cache: TtlCache[str, int] = TtlCache(ttl=10, clock=clock)
    cache.put("a", 1, tag="key-1")
    cache.put("b", 2, tag="key-2")
    cache.forget("key-1")
    assert cache.get("a") is None
    assert cache.get("b") == 2
    # A request that read the value before the change committed cannot put it back.
    cache.put("a", 1, tag="key-1")
    assert cache.get("a") is None
    clock.now += 10.1
    cache.put("a", 1, tag="key-1")
    assert cache.get("a") == 1


def test_a_ttl_of_zero_remembers_nothing():
    cache: TtlCache[str, int] = TtlCache(ttl=0)
    cache.put("a", 1, tag="t")
    assert cache.get("a") is None


@given(st.lists(st.integers(0, 50), max_size=300), st.integers(1, 20))
def test_the_memory_keeps_at_most_its_size_and_the_most_recently_used(keys, size):
    cache: TtlCache[int, int] = TtlCache(ttl=60, max_entries=size)
    for key in keys:
        cache.put(key, key * 2, tag=key)
    assert len(cache._held) <= size
    for key in list(dict.fromkeys(reversed(keys)))[:size]:
        assert cache.get(key) == key * 2
