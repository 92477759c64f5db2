"""The trail's pure rules: a record's hash covers every field and its link; an actor's name; the
client address, believed from a header only through a trusted proxy."""

import uuid
from datetime import UTC, datetime

from hypothesis import given
from hypothesis import strategies as st

from app.audit.chain import GENESIS_HASH, normalised, record_hash
from app.audit.context import Actor
from app.audit.middleware import address_of
from tests.factories import auth, make_world

text = st.text(max_size=20)
FIELDS = {
    "institution_id": uuid.UUID(int=7),
    "seq": 3,
    "at": datetime(2026, 11, 29, 9, 30, 1, 123456, tzinfo=UTC),
    "jurisdiction_code": "J1",
    "actor_role": "regulator",
    "actor_id": "k1",
    "action": "institution.freeze",
    "object_type": "institution",
    "object_id": "x",
    "address": "10.0.0.1",
    "details": {"reason": "跑路", "amount_fen": 5},
}
CHANGES = {
    "institution_id": st.uuids().filter(lambda u: u != FIELDS["institution_id"]),
    "seq": st.integers(min_value=1, max_value=2**62).filter(lambda n: n != 3),
    "at": st.datetimes(timezones=st.just(UTC)).filter(lambda d: d != FIELDS["at"]),
    "jurisdiction_code": st.none() | text.filter(lambda t: t != "J1"),
    "actor_role": text.filter(lambda t: t != "regulator"),
    "actor_id": text.filter(lambda t: t != "k1"),
    "action": text.filter(lambda t: t != "institution.freeze"),
    "object_type": st.none() | text.filter(lambda t: t != "institution"),
    "object_id": st.none() | text.filter(lambda t: t != "x"),
    "address": st.none() | text.filter(lambda t: t != "10.0.0.1"),
    "details": st.none()
    | st.dictionaries(text, st.integers() | text).filter(lambda d: d != FIELDS["details"]),
}


@given(
    st.sampled_from(sorted(CHANGES)).flatmap(lambda name: st.tuples(st.just(name), CHANGES[name]))
)
def test_changing_any_field_changes_the_hash(change):
    name, value = change
    assert record_hash(GENESIS_HASH, **FIELDS) != record_hash(
        GENESIS_HASH, **{**FIELDS, name: value}
    )


@given(st.text(alphabet="0123456789abcdef", min_size=64, max_size=64))
def test_the_hash_depends_on_the_link(prev):
    assert (record_hash(prev, **FIELDS) == record_hash(GENESIS_HASH, **FIELDS)) == (
        prev == GENESIS_HASH
    )


@given(
    st.dictionaries(text, st.integers() | text | st.uuids() | st.datetimes(timezones=st.just(UTC)))
)
def test_details_hash_the_same_before_and_after_storage(details):
    stored = normalised(details)
    assert normalised(stored) == stored  # what the database gives back hashes as it was written
    assert record_hash(GENESIS_HASH, **{**FIELDS, "details": stored}) == record_hash(
        GENESIS_HASH, **{**FIELDS, "details": normalised(stored)}
    )


@given(st.text(alphabet="abcdefgh_", min_size=1, max_size=10), st.text(min_size=1, max_size=10))
def test_an_actors_name_reads_back(role, name):
    assert Actor.parse(f"{role}:{name}") == Actor(role, name)


def _scope(peer: str, forwarded: str | None = None) -> dict:
    headers = [(b"x-forwarded-for", forwarded.encode())] if forwarded is not None else []
    return {"type": "http", "client": (peer, 1234), "headers": headers}


ip = st.ip_addresses().map(str)


@given(ip, st.lists(ip, max_size=4))
def test_a_header_is_believed_only_from_a_trusted_proxy(peer, hops):
    forwarded = ", ".join(hops)
    # Nobody trusted: the peer, whatever the header says.
    assert address_of(_scope(peer, forwarded), frozenset()) == peer
    # The peer a trusted proxy: the nearest hop it did not add itself, else the proxy.
    proxies = frozenset({peer})
    untrusted = [hop for hop in hops if hop not in proxies]
    expected = untrusted[-1] if untrusted else peer
    assert address_of(_scope(peer, forwarded), proxies) == expected


def test_address_examples():
    proxy = frozenset({"10.0.0.2"})
    assert address_of(_scope("10.0.0.2", "1.2.3.4, 5.6.7.8"), proxy) == "5.6.7.8"
    assert address_of(_scope("9.9.9.9", "1.2.3.4"), proxy) == "9.9.9.9"
    assert address_of({"type": "http", "headers": []}, proxy) is None


async def test_a_forged_header_does_not_change_the_recorded_address(engine, client):
    world = await make_world(engine)
    await client.post(
        f"/v1/regulator/institutions/{world.institution_id}/freeze",
        json={"reason": "x"},
        headers={**auth(world.regulator_key), "X-Forwarded-For": "6.6.6.6"},
    )
    response = await client.get(
        "/v1/regulator/audit",
        params={"institution_id": str(world.institution_id), "action": "institution.freeze"},
        headers=auth(world.regulator_key),
    )
    [item] = response.json()["items"]
    assert item["address"] == "127.0.0.1"
