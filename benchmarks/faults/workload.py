"""The bank workload: client threads sending SMS, retrying as a careful client would."""

from __future__ import annotations

import random
import threading
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field

import httpx
from benchmarks.faults.operators import REFUSED

MAX_TRIES = 12
REFUSED_SHARE = 0.05
RETRY_AFTER_END_S = 20.0  # a keyed send still failing this long after the load's end: given up
REQUEST_TIMEOUT_S = 5.0


@dataclass
class Accepted:
    sms: str
    user_id: int
    recipients: tuple[str, ...]
    cost: int
    key: str | None


@dataclass
class Load:
    """What the clients sent and were answered; shared by the client threads."""

    answers: Counter[str] = field(default_factory=Counter)  # "200", "503", "timeout", ...
    accepted: list[Accepted] = field(default_factory=list)
    by_key: dict[tuple[int, str], set[str]] = field(default_factory=dict)
    gave_up: int = 0  # keyed sends still failing after every retry
    unknown: int = 0  # sends without a key that got a 5xx or no answer
    requests: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def answer(self, outcome: str) -> None:
        with self.lock:
            self.requests += 1
            self.answers[outcome] += 1


def client_loop(load: Load, urls: list[str], users: list[int], until: float,
                rng: random.Random) -> None:
    with httpx.Client(timeout=REQUEST_TIMEOUT_S) as client:
        n = 0
        while time.monotonic() < until:
            n += 1
            user = rng.choice(users)
            count = rng.randint(1, 4)
            # REFUSED_SHARE of the numbers are refused (422) by both operators: FAILED, refunded.
            recipients = sorted({
                f"{REFUSED if rng.random() < REFUSED_SHARE else '0912'}{rng.randrange(10**7):07d}"
                for _ in range(count)})
            sms_type = "express" if rng.random() < 0.3 else "normal"
            text = "chaos " * 30 if rng.random() < 0.25 else f"chaos {n}"  # 1 or 2 segments
            body = {"customer_id": user, "text": text, "recipients": recipients,
                    "type": sms_type}
            key = uuid.uuid4().hex if rng.random() < 0.5 else None
            headers = {"Idempotency-Key": key} if key else {}
            for attempt in range(MAX_TRIES):
                url = urls[(n + attempt) % len(urls)]
                try:
                    response = client.post(f"{url}/sms/send", json=body, headers=headers)
                except httpx.ConnectError:
                    outcome = "refused"  # that API is down (killed): nothing was sent
                except httpx.TimeoutException:
                    outcome = "timeout"
                except httpx.TransportError:
                    outcome = "connection"  # broken mid-request: the outcome is unknown
                else:
                    outcome = str(response.status_code)
                load.answer(outcome)
                if outcome == "200":
                    answer = response.json()
                    with load.lock:
                        load.accepted.append(Accepted(
                            str(answer["sms_identifier"]), user, tuple(recipients),
                            int(answer["cost"]), key))
                        if key:
                            load.by_key.setdefault((user, key), set()).add(
                                str(answer["sms_identifier"]))
                    break
                retryable = (outcome in ("refused", "timeout", "connection")
                             or outcome.startswith("5"))
                if not retryable:
                    break  # 402 (spent), 409, 400: an answer, final
                if key is None and outcome != "refused":  # a refused one was not sent at all
                    with load.lock:
                        load.unknown += 1
                    break
                if attempt == MAX_TRIES - 1 or time.monotonic() > until + RETRY_AFTER_END_S:
                    with load.lock:
                        load.gave_up += 1
                    break
                time.sleep(min(2.0, 0.1 * 2 ** attempt) * (0.5 + rng.random()))
