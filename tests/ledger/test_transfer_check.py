"""The pure rule verify applies to each transfer: its row must say what its entries say."""

import uuid
from dataclasses import replace

from hypothesis import given
from hypothesis import strategies as st

from app.kit.money import INT64_MAX
from app.ledger.service import _resolution_key, _transfer_problem
from app.ledger.types import Posting, Transfer, TransferStatus

amounts = st.integers(min_value=1, max_value=INT64_MAX)


def _as_written(transfer: Transfer):
    """The entries the ledger writes for a transfer in its state: what verify keeps of them."""
    kept = {
        transfer.reserve_seq: [
            Posting(transfer.source_account_id, transfer.amount_fen),
            Posting(transfer.transit_account_id, -transfer.amount_fen),
        ]
    }
    resolutions = {}
    if transfer.status is not TransferStatus.pending:
        assert transfer.resolve_seq is not None
        credit = (
            transfer.settle_account_id
            if transfer.status is TransferStatus.posted
            else transfer.source_account_id
        )
        kept[transfer.resolve_seq] = [
            Posting(transfer.transit_account_id, transfer.amount_fen),
            Posting(credit, -transfer.amount_fen),
        ]
        resolutions[_resolution_key(transfer.id, transfer.status)] = transfer.resolve_seq
    return kept, resolutions


@st.composite
def transfers(draw):
    status = draw(st.sampled_from(TransferStatus))
    reserve_seq = draw(st.integers(min_value=1, max_value=10**9))
    return Transfer(
        institution_id=uuid.uuid4(),
        id=uuid.uuid4(),
        source_account_id=uuid.uuid4(),
        transit_account_id=uuid.uuid4(),
        settle_account_id=uuid.uuid4(),
        amount_fen=draw(amounts),
        status=status,
        reserve_seq=reserve_seq,
        resolve_seq=None
        if status is TransferStatus.pending
        else reserve_seq + draw(st.integers(min_value=1, max_value=10**6)),
    )


@given(transfers())
def test_a_transfer_as_the_ledger_wrote_it_agrees_with_its_entries(transfer):
    assert _transfer_problem(transfer, *_as_written(transfer)) is None


@given(transfers(), amounts)
def test_a_transfer_whose_amount_changed_disagrees(transfer, other_amount):
    if other_amount == transfer.amount_fen:
        other_amount -= 1 if other_amount > 1 else -1
    changed = replace(transfer, amount_fen=other_amount)
    assert _transfer_problem(changed, *_as_written(transfer)) is not None


@given(transfers(), st.sampled_from(TransferStatus), st.integers(min_value=1, max_value=10**6))
def test_a_transfer_whose_state_changed_disagrees(transfer, status, later):
    if status is transfer.status:
        return
    resolve_seq = None if status is TransferStatus.pending else transfer.reserve_seq + later
    changed = replace(transfer, status=status, resolve_seq=resolve_seq)
    assert _transfer_problem(changed, *_as_written(transfer)) is not None
