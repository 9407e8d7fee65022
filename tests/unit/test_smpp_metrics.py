"""An SMPP operator's figures as Prometheus metrics: binds bound, submits in progress,
links dropped, throttling, and what its deliver_sm were, read at each scrape, against
the tiny SMSC of test_smpp_session.py (a real localhost socket)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from prometheus_client import REGISTRY, CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families
from test_smpp_operator import RecordingSink, an_operator, bound, receipt, refused, sms
from test_smpp_session import Answer, TinySmsc, until

from smsgw_adapters.observability import Metrics
from smsgw_adapters.operators.simulated import SimulatedOperator
from smsgw_adapters.operators.smpp.pdu import CommandStatus, DeliverSm, SubmitSm
from smsgw_app.config import Settings
from smsgw_app.container import Container

SMPP_FAMILIES = {
    "smsgw_smpp_binds": "gauge",
    "smsgw_smpp_submits_in_progress": "gauge",
    "smsgw_smpp_link_drops": "counter",
    "smsgw_smpp_throttled": "counter",
    "smsgw_smpp_deliver_sm": "counter",
}


@pytest.fixture
def metrics() -> Metrics:
    return Metrics(CollectorRegistry())


@pytest.fixture
async def smsc() -> AsyncIterator[TinySmsc]:
    async with TinySmsc() as running:
        yield running


def value(metrics: Metrics, name: str, **labels: str) -> float | None:
    return metrics.registry.get_sample_value(name, labels)


def families(metrics: Metrics) -> dict[str, str]:
    text = generate_latest(metrics.registry).decode()
    return {f.name: f.type for f in text_string_to_metric_families(text)
            if f.name.startswith("smsgw_smpp_") and f.samples}


def test_without_an_smpp_operator_there_is_no_smpp_series(metrics: Metrics) -> None:
    metrics.watch_operator(SimulatedOperator("A"))  # not SMPP: nothing to add
    assert families(metrics) == {}


async def test_a_watched_operator_s_series_start_at_zero_before_it_binds(
        metrics: Metrics, smsc: TinySmsc) -> None:
    operator = an_operator(smsc, "binds=2")  # not started
    metrics.watch_operator(operator)
    assert families(metrics) == SMPP_FAMILIES
    assert value(metrics, "smsgw_smpp_binds", operator="MCI") == 0
    assert value(metrics, "smsgw_smpp_link_drops_total", operator="MCI") == 0
    for outcome in ("taken", "refused", "not_final", "unreadable", "unrecorded", "mo"):
        assert value(metrics, "smsgw_smpp_deliver_sm_total", operator="MCI",
                     outcome=outcome) == 0


async def test_binds_drops_and_throttling_are_read_from_the_sessions(
        metrics: Metrics, smsc: TinySmsc) -> None:
    operator = await bound(an_operator(smsc, "binds=2&bind=transmitter+receiver"))
    metrics.watch_operator(operator)
    assert value(metrics, "smsgw_smpp_binds", operator="MCI") == 4  # 2 transmitters, 2 receivers

    smsc.answer = lambda submit: None  # held: the submits stay in progress
    sends = [asyncio.create_task(operator.send(sms(reference=f"r{n}"))) for n in range(3)]
    await until(lambda: len(smsc.held) == 3)
    assert value(metrics, "smsgw_smpp_submits_in_progress", operator="MCI") == 3
    smsc.release_held()
    await asyncio.gather(*sends)
    assert value(metrics, "smsgw_smpp_submits_in_progress", operator="MCI") == 0

    refusals = iter([CommandStatus.ESME_RTHROTTLED] * 2 + [CommandStatus.ESME_RMSGQFUL])

    def answer(submit: SubmitSm) -> Answer:
        status = next(refusals, CommandStatus.ESME_ROK)
        return refused(status) if status else smsc.accept(submit)

    smsc.answer = answer
    await operator.send(sms(reference="throttled"))
    assert value(metrics, "smsgw_smpp_throttled_total", operator="MCI") == 3

    smsc.bound[0].drop()
    await until(lambda: value(metrics, "smsgw_smpp_binds", operator="MCI") == 3,
                what="one link down")
    await until(lambda: value(metrics, "smsgw_smpp_binds", operator="MCI") == 4,
                what="bound again")
    assert value(metrics, "smsgw_smpp_link_drops_total", operator="MCI") == 1
    await operator.close()
    assert value(metrics, "smsgw_smpp_binds", operator="MCI") == 0
    assert value(metrics, "smsgw_smpp_link_drops_total", operator="MCI") == 1  # a close is none


async def test_each_deliver_sm_counts_by_what_was_done_with_it(
        metrics: Metrics, smsc: TinySmsc) -> None:
    sink = RecordingSink()
    operator = await bound(an_operator(smsc, receipts=sink))
    metrics.watch_operator(operator)
    link = smsc.bound[0]
    await link.request(receipt("id:m1 stat:DELIVRD"))
    sink.failures = 1
    await link.request(receipt("id:m2 stat:DELIVRD"))  # refused: sent again later
    await link.request(receipt("id:m3 stat:ENROUTE"))
    await link.request(receipt("stat:DELIVRD"))  # names no message
    await link.request(DeliverSm(sequence_number=0, esm_class=0, short_message=b"STOP"))
    await link.request(DeliverSm(sequence_number=0, esm_class=0, short_message=b"YES"))
    counted = {outcome: value(metrics, "smsgw_smpp_deliver_sm_total", operator="MCI",
                              outcome=outcome)
               for outcome in ("taken", "refused", "not_final", "unreadable", "unrecorded",
                               "mo")}
    assert counted == {"taken": 1, "refused": 1, "not_final": 1, "unreadable": 1,
                       "unrecorded": 0, "mo": 2}
    await operator.close()

    unrecorded = await bound(an_operator(smsc, receipts=None))
    metrics.watch_operator(unrecorded)  # the same name: this one replaces the one before
    await smsc.bound[-1].request(receipt("id:m4 stat:DELIVRD"))
    assert value(metrics, "smsgw_smpp_deliver_sm_total", operator="MCI",
                 outcome="unrecorded") == 1
    assert value(metrics, "smsgw_smpp_deliver_sm_total", operator="MCI", outcome="taken") == 0
    await unrecorded.close()


async def test_the_container_s_smpp_operators_are_on_the_process_s_metrics(
        smsc: TinySmsc, tmp_path: Path) -> None:
    settings = Settings.from_env({
        "SMSGW_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'smpp.db'}",
        "SMSGW_OPERATORS": f"SMPPMETRICS=smpp://gw:secret@127.0.0.1:{smsc.port}?binds=2,"
                           "SIMMETRICS=sim://",
    })
    container = Container(settings=settings)
    await container.http_session.init()  # type: ignore[misc]
    container.operators()  # what a worker builds at its start: binds at once

    def binds() -> float | None:
        return REGISTRY.get_sample_value("smsgw_smpp_binds", {"operator": "SMPPMETRICS"})

    await until(lambda: binds() == 2, what="two binds on the default registry")
    assert REGISTRY.get_sample_value("smsgw_smpp_binds", {"operator": "SIMMETRICS"}) is None
    await container.shutdown_resources()  # type: ignore[misc]
    assert binds() == 0
