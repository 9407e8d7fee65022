"""A delivery whose transaction the database gives up (a deadlock) is re-run, not raised:
raising would leave its recipients SENDING, and the operators would get them again."""

from __future__ import annotations

from core_world import World

from smsgw_core.errors import TransientConflict
from smsgw_core.ledger import TransactionType
from smsgw_core.messages import SmsStatus
from smsgw_core.operators import ErrorClass, OutgoingSms
from smsgw_core.services.accounts import TopUp
from smsgw_core.services.deliver import DeliveryCounts
from smsgw_core.services.send_sms import SendSms

U, N1, N2 = 1, "09128582812", "091285284834"


async def test_a_deadlocked_outcome_is_recorded_without_calling_the_operator_again() -> None:
    world = World()
    await world.accounts.top_up(TopUp(U, 10))
    await world.sender.send(SendSms(U, "hello", (N1, N2)))
    await world.relay.relay_once()
    [delivery] = world.bus.published

    def answer_then_deadlock(sms: OutgoingSms) -> str | ErrorClass:
        # the outcome's commit (after both calls) loses to a concurrent transaction, twice
        world.db.fail_commits = [TransientConflict("deadlock"), TransientConflict("deadlock")]
        return ErrorClass.PERMANENT if sms.recipient == N2 else "id"

    world.a.behaviour = answer_then_deadlock
    assert await world.deliverer.deliver(delivery) == DeliveryCounts(1, 1, 0)
    assert world.a.calls == 2 and world.b.calls == 0
    assert {m.recipient: m.status for m in world.messages()} == {
        N1: SmsStatus.DONE, N2: SmsStatus.FAILED,
    }
    assert [t.amount for t in world.transactions() if t.type is TransactionType.REFUND] == [1]
    assert world.balance(U) == 9


async def test_a_deadlocked_claim_is_re_run_and_sends_once() -> None:
    world = World()
    await world.accounts.top_up(TopUp(U, 10))
    await world.sender.send(SendSms(U, "hello", (N1,)))
    await world.relay.relay_once()
    [delivery] = world.bus.published
    world.db.fail_commits = [TransientConflict("lock wait timeout")]
    assert await world.deliverer.deliver(delivery) == DeliveryCounts(1, 0, 0)
    assert world.a.calls == 1
