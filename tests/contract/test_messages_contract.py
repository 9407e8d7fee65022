"""MessageRepository: PENDING -> SENDING -> DONE | FAILED, by conditional updates."""

from __future__ import annotations

import pytest
from contract_helpers import T0, at, claim, finish, messages

from smsgw_core.errors import InvalidTransition
from smsgw_core.messages import MessageType, SmsStatus
from smsgw_core.ports import HistoryFilter, RecipientFinish, UnitOfWorkFactory

A, B, C = "+989120000001", "+989120000002", "+989120000003"


async def _add(uow_factory: UnitOfWorkFactory, sms: str, *recipients: str, user: int = 1) -> None:
    async with uow_factory() as uow:
        await uow.messages.add(messages(sms, user, *recipients))
        await uow.commit()


async def _statuses(uow_factory: UnitOfWorkFactory, sms: str) -> dict[str, SmsStatus]:
    async with uow_factory() as uow:
        rows = await uow.messages.history(HistoryFilter(1, sms_identifier=sms), 100, None)
    return {m.recipient: m.status for _, m in rows}


async def test_added_messages_come_back_newest_first(uow_factory: UnitOfWorkFactory) -> None:
    added = messages("s1", 1, A, B, when=T0, type=MessageType.EXPRESS)
    async with uow_factory() as uow:
        await uow.messages.add(added)
        await uow.messages.add([])
        await uow.commit()
    async with uow_factory() as uow:
        rows = await uow.messages.history(HistoryFilter(1), 10, None)
    assert [m for _, m in rows] == added[::-1]
    assert rows[0][0] > rows[1][0]


async def test_a_recipient_is_added_once_per_sms(uow_factory: UnitOfWorkFactory) -> None:
    async with uow_factory() as uow:
        with pytest.raises(ValueError):
            await uow.messages.add(messages("s1", 1, A, A))


async def test_claim_moves_unfinished_recipients_to_sending(
    uow_factory: UnitOfWorkFactory,
) -> None:
    await _add(uow_factory, "s1", A, B, C)
    await _add(uow_factory, "s2", A)
    async with uow_factory() as uow:
        assert await claim(uow.messages, "s1", at(5)) == [A, B, C]
        await uow.commit()
    assert await _statuses(uow_factory, "s1") == dict.fromkeys([A, B, C], SmsStatus.SENDING)
    assert await _statuses(uow_factory, "s2") == {A: SmsStatus.PENDING}
    async with uow_factory() as uow:
        [(_, row), *_] = await uow.messages.history(HistoryFilter(1, sms_identifier="s1"), 1, None)
        assert (row.updated_at, row.created_at) == (at(5), T0)


async def test_a_sending_recipient_is_claimed_again(uow_factory: UnitOfWorkFactory) -> None:
    await _add(uow_factory, "s1", A, B)
    async with uow_factory() as uow:
        assert await claim(uow.messages, "s1", at(1)) == [A, B]
        assert await claim(uow.messages, "s1", at(2)) == [A, B]
        await uow.commit()


async def test_terminal_recipients_are_never_claimed(uow_factory: UnitOfWorkFactory) -> None:
    await _add(uow_factory, "s1", A, B, C)
    async with uow_factory() as uow:
        await claim(uow.messages, "s1", at(1))
        assert await finish(uow.messages, "s1", A, SmsStatus.DONE, "op-a", at(2))
        assert await finish(uow.messages, "s1", C, SmsStatus.FAILED, "", at(2))
        assert await claim(uow.messages, "s1", at(3)) == [B]
        assert await finish(uow.messages, "s1", B, SmsStatus.DONE, "op-b", at(4))
        assert await claim(uow.messages, "s1", at(5)) == []
        assert await claim(uow.messages, "unknown", at(5)) == []
        await uow.commit()
    assert await _statuses(uow_factory, "s1") == {
        A: SmsStatus.DONE, B: SmsStatus.DONE, C: SmsStatus.FAILED
    }


async def test_finish_moves_only_out_of_sending_and_only_once(
    uow_factory: UnitOfWorkFactory,
) -> None:
    await _add(uow_factory, "s1", A)
    async with uow_factory() as uow:
        assert not await finish(uow.messages, "s1", A, SmsStatus.DONE, "op-a", at(1))
        await claim(uow.messages, "s1", at(2))
        assert await finish(uow.messages, "s1", A, SmsStatus.DONE, "op-a", at(3))
        assert not await finish(uow.messages, "s1", A, SmsStatus.FAILED, "op-b", at(4))
        assert not await finish(uow.messages, "s1", B, SmsStatus.DONE, "op-a", at(4))
        await uow.commit()
    async with uow_factory() as uow:
        [(_, row)] = await uow.messages.history(HistoryFilter(1), 10, None)
    assert (row.status, row.provider, row.updated_at) == (SmsStatus.DONE, "op-a", at(3))


async def test_finish_moves_out_of_sending_to_a_terminal_status_or_back_to_pending(
    uow_factory: UnitOfWorkFactory,
) -> None:
    await _add(uow_factory, "s1", A, B)
    async with uow_factory() as uow:
        await claim(uow.messages, "s1", at(1))
        with pytest.raises(InvalidTransition):
            await finish(uow.messages, "s1", A, SmsStatus.SENDING, "op-a", at(2))
        assert await uow.messages.finish_many(
            [RecipientFinish("s1", A, SmsStatus.PENDING),
             RecipientFinish("s1", B, SmsStatus.DONE, "op-b")],
            at(2),
        ) == [True, True]
        assert not await finish(uow.messages, "s1", A, SmsStatus.DONE, "op-a", at(3))  # PENDING
        await uow.commit()
    assert await _statuses(uow_factory, "s1") == {A: SmsStatus.PENDING, B: SmsStatus.DONE}
    async with uow_factory() as uow:
        assert await uow.messages.claim_many(["s1"], at(4), at(4)) == {"s1": [A]}


async def test_a_claim_leaves_recipients_within_their_lease_alone(
    uow_factory: UnitOfWorkFactory,
) -> None:
    await _add(uow_factory, "s1", A, B)
    await _add(uow_factory, "s2", C)
    async with uow_factory() as uow:
        assert await uow.messages.claim_many(["s1"], at(10)) == {"s1": [A, B]}
        await finish(uow.messages, "s1", B, SmsStatus.PENDING, "", at(20))  # deferred
        await uow.commit()
    async with uow_factory() as uow:
        # A has been SENDING since at(10): its lease lapses for a claim that says so
        assert await uow.messages.claim_many(["s1", "s2"], at(30), at(10)) == {
            "s1": [B], "s2": [C],
        }
        assert await uow.messages.claim_many(["s1"], at(31), at(10.001)) == {"s1": [A]}
        await uow.commit()
    assert await _statuses(uow_factory, "s1") == {A: SmsStatus.SENDING, B: SmsStatus.SENDING}


async def test_history_filters_by_status_and_sms(uow_factory: UnitOfWorkFactory) -> None:
    await _add(uow_factory, "s1", A, B)
    await _add(uow_factory, "s2", A, C)
    await _add(uow_factory, "s3", A, user=2)
    async with uow_factory() as uow:
        await claim(uow.messages, "s1", at(1))
        await finish(uow.messages, "s1", B, SmsStatus.FAILED, "", at(2))
        await uow.commit()

    async def recipients(query: HistoryFilter) -> list[tuple[str, str]]:
        async with uow_factory() as uow:
            rows = await uow.messages.history(query, 100, None)
        return [(m.sms_identifier, m.recipient) for _, m in rows]

    assert await recipients(HistoryFilter(1)) == [("s2", C), ("s2", A), ("s1", B), ("s1", A)]
    assert await recipients(HistoryFilter(1, status=SmsStatus.PENDING)) == [("s2", C), ("s2", A)]
    assert await recipients(HistoryFilter(1, status=SmsStatus.SENDING)) == [("s1", A)]
    assert await recipients(HistoryFilter(1, SmsStatus.FAILED, "s1")) == [("s1", B)]
    assert await recipients(HistoryFilter(1, SmsStatus.DONE)) == []
    assert await recipients(HistoryFilter(1, sms_identifier="s3")) == []
    assert await recipients(HistoryFilter(2)) == [("s3", A)]


async def test_history_is_paginated_newest_first(uow_factory: UnitOfWorkFactory) -> None:
    numbers = [f"+98912000{i:04d}" for i in range(11)]
    await _add(uow_factory, "s1", *numbers[:6])
    await _add(uow_factory, "s2", *numbers[6:])
    await _add(uow_factory, "s3", *numbers, user=2)
    seen: list[str] = []
    before: int | None = None
    async with uow_factory() as uow:
        while page := await uow.messages.history(HistoryFilter(1), 4, before):
            assert len(page) <= 4
            assert before is None or page[0][0] < before
            seen += [m.recipient for _, m in page]
            before = page[-1][0]
    assert seen == numbers[::-1]


async def test_claim_many_claims_each_sms_and_skips_the_finished(
    uow_factory: UnitOfWorkFactory,
) -> None:
    await _add(uow_factory, "s1", A, B)
    await _add(uow_factory, "s2", C)
    await _add(uow_factory, "s3", A)
    async with uow_factory() as uow:
        await claim(uow.messages, "s3", at(1))
        assert await finish(uow.messages, "s3", A, SmsStatus.DONE, "op-a", at(1))
        claimed = await uow.messages.claim_many(["s1", "s2", "s3", "s1", "nope"], at(2))
        await uow.commit()
    assert claimed == {"s1": [A, B], "s2": [C]}
    assert await _statuses(uow_factory, "s1") == dict.fromkeys([A, B], SmsStatus.SENDING)
    async with uow_factory() as uow:
        assert await uow.messages.claim_many([], at(3)) == {}


async def test_claim_many_claims_only_the_part_named(uow_factory: UnitOfWorkFactory) -> None:
    await _add(uow_factory, "s1", A, B, C)
    await _add(uow_factory, "s2", A, B)
    async with uow_factory() as uow:
        claimed = await uow.messages.claim_many(["s1", "s2"], at(1), at(1),
                                                only={"s1": [A, C]})
        await uow.commit()
    assert {sms: sorted(r) for sms, r in claimed.items()} == {"s1": sorted([A, C]),
                                                               "s2": sorted([A, B])}
    assert (await _statuses(uow_factory, "s1"))[B] is SmsStatus.PENDING  # another part's
    async with uow_factory() as uow:
        assert await uow.messages.claim_many(["s1"], at(2), at(1), only={"s1": [A, B]}) == {
            "s1": [B]}  # A is SENDING in its delivery


async def test_finish_many_moves_each_recipient_once_in_order(
    uow_factory: UnitOfWorkFactory,
) -> None:
    await _add(uow_factory, "s1", A, B, C)
    await _add(uow_factory, "s2", A)
    async with uow_factory() as uow:
        await uow.messages.claim_many(["s1"], at(1))  # s2 stays PENDING
        moved = await uow.messages.finish_many([
            RecipientFinish("s1", A, SmsStatus.DONE, "op-a"),
            RecipientFinish("s1", B, SmsStatus.FAILED),
            RecipientFinish("s1", A, SmsStatus.FAILED),  # named twice: moves the first time only
            RecipientFinish("s2", A, SmsStatus.DONE, "op-a"),  # not SENDING
            RecipientFinish("s1", C, SmsStatus.DONE, "op-b"),
        ], at(2))
        await uow.commit()
    assert moved == [True, True, False, False, True]
    assert await _statuses(uow_factory, "s1") == {
        A: SmsStatus.DONE, B: SmsStatus.FAILED, C: SmsStatus.DONE
    }
    async with uow_factory() as uow:
        rows = await uow.messages.history(HistoryFilter(1, sms_identifier="s1"), 10, None)
        assert {m.recipient: m.provider for _, m in rows} == {A: "op-a", B: "", C: "op-b"}
        assert {m.updated_at for _, m in rows} == {at(2)}
        with pytest.raises(InvalidTransition):
            await uow.messages.finish_many([RecipientFinish("s2", A, SmsStatus.SENDING)], at(3))
