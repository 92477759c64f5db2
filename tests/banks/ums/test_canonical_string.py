"""ums signs a notification over `k1=v1&k2=v2...` (spec 1). A name or value holding `&` or `=`
makes that string ambiguous: a captured notification can be re-cut into other fields under the
same signature. Such a message is refused as malformed (400 `FAILED`, stored `malformed`)."""

from urllib.parse import parse_qsl, urlencode

from hypothesis import given
from hypothesis import strategies as st

from app.banks.ums.messages import ambiguous_field
from app.banks.ums.signing import notify_signature, notify_string
from app.ledger.types import AccountKind
from bank_simulator.messages.base import Outgoing
from tests.banks.voices import configured_bank, messages


async def test_a_re_cut_notification_whose_signature_verifies_is_malformed(engine, client):
    bank = await configured_bank(engine, client, "ums")
    enrollment = await bank.enrollment(client)
    captured = bank.credit(
        bank.world.escrow_account_no, enrollment["order_no"], enrollment["amount_fen"]
    )
    fields = dict(parse_qsl(captured.body.decode()))
    # seqId and settleDate are neighbours in the signed string: fold one into the other, and the
    # payment gets another bank reference (a second credit of the same money) under the same sign.
    recut = {k: v for k, v in fields.items() if k != "settleDate"}
    recut["seqId"] = f"{fields['seqId']}&settleDate={fields['settleDate']}"
    key, sign_type = bank.sim.secret("md5_key"), fields["signType"]
    assert notify_signature(recut, key, sign_type) == fields["sign"]

    reply = await bank.send(
        client, Outgoing(urlencode(recut).encode(), "application/x-www-form-urlencoded")
    )

    assert (reply.status_code, reply.content) == (400, b"FAILED")
    [stored] = await messages(engine, bank.slug)
    assert (stored.status, stored.message_id) == ("malformed", None)
    assert "seqId" in stored.detail
    seen = await client.get(f"/v1/enrollments/{enrollment['id']}", headers=bank.institution)
    assert seen.json()["status"] == "awaiting_payment"
    assert (await bank.balances(engine)).get(AccountKind.escrow_cash, 0) == 0


# Names and values as a bank writes them: anything printable, `&` and `=` included.
_TEXT = st.text(st.characters(min_codepoint=32, max_codepoint=0x4E2D), min_size=1, max_size=8)
_NAME = _TEXT.filter(lambda name: name != "sign")  # the one field the signature leaves out
_FIELDS = st.dictionaries(_NAME, _TEXT, min_size=1, max_size=6)


@given(first=_FIELDS, second=_FIELDS)
def test_fields_without_separators_are_the_only_reading_of_their_signed_string(
    first: dict[str, str], second: dict[str, str]
) -> None:
    """The rule that makes the signature mean one message: of two sets of fields both accepted,
    the same signed string means the same fields."""
    if ambiguous_field(first) is None and ambiguous_field(second) is None:
        assert (notify_string(first) == notify_string(second)) == (first == second)


@given(fields=_FIELDS)
def test_a_field_is_ambiguous_exactly_when_its_name_or_value_holds_a_separator(
    fields: dict[str, str],
) -> None:
    found = ambiguous_field(fields)
    flagged = [k for k, v in fields.items() if set("&=") & set(k + v)]
    assert (found is None) == (not flagged)
    assert found is None or found in flagged


@given(fields=st.dictionaries(_NAME.filter(lambda t: not set("&=") & set(t)), _TEXT, min_size=2))
def test_folding_two_neighbouring_fields_keeps_the_signed_string_and_is_caught(
    fields: dict[str, str],
) -> None:
    """Why the rule is needed: any two neighbours fold into one field under the same signature."""
    if any(set("&=") & set(v) for v in fields.values()):
        return
    first, second = sorted(fields, key=str.encode)[:2]
    folded = {k: v for k, v in fields.items() if k != second}
    folded[first] = f"{fields[first]}&{second}={fields[second]}"
    assert notify_string(folded) == notify_string(fields)
    assert ambiguous_field(folded) == first
