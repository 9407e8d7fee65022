"""Ports: everything with I/O, as protocols. Adapters implement them; fakes too.

A unit of work is one database transaction across the repositories. It rolls
back unless `commit()` is called, so a use case that raises writes nothing.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Collection, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from types import TracebackType
from typing import Any, Protocol, Self

from smsgw_core.customers import Customer
from smsgw_core.fairness import Waiting
from smsgw_core.keys import ApiKey
from smsgw_core.ledger import Transaction
from smsgw_core.messages import MessageType, RecipientMessage, SmsStatus
from smsgw_core.operators import OutgoingSms
from smsgw_core.outbox import DeliveryJob, OutboxEvent
from smsgw_core.receipts import OperatorMessage, Receipt
from smsgw_core.webhooks import Attempt, Endpoint, EventOutcome, EventState, EventType, WebhookEvent


@dataclass(frozen=True, slots=True)
class HistoryFilter:
    customer_id: int
    # One status, or any of several (the seed routes' "done" is DONE or a receipt's).
    status: SmsStatus | frozenset[SmsStatus] | None = None
    sms_identifier: str | None = None

    def statuses(self) -> frozenset[SmsStatus] | None:
        """The statuses a row may have; None: any."""
        if self.status is None or isinstance(self.status, frozenset):
            return self.status
        return frozenset({self.status})


@dataclass(frozen=True, slots=True)
class StoredResponse:
    request_hash: str
    response: dict[str, Any]


@dataclass(frozen=True, slots=True)
class Backlog:
    """Due, unpublished outbox events of one priority."""

    priority: int
    events: int
    oldest: datetime | None  # created_at of the oldest due event
    failing: int = 0  # pending events whose publishing failed at least once in a row


@dataclass(frozen=True, slots=True)
class ParkedEvent:
    """An outbox event given up on (its payload is not a delivery), for an operator to see."""

    id: int
    sms_identifier: str
    priority: int
    attempts: int
    created_at: datetime
    last_error: str


class LedgerRepository(Protocol):
    async def apply(self, tx: Transaction) -> None:
        """Record `tx` and move the balance by its amount.

        Raises DuplicateTransaction if the id was applied before, and
        InsufficientBalance if a debit would overdraw or the account is unknown.
        A credit creates the account when it does not exist yet.
        """

    async def debit_many(self, charges: Sequence[Transaction]) -> list[int]:
        """Apply every charge, or none: the positions of those the balances refuse.

        The charges are taken in order, each against what the ones before it
        left; one that would overdraw, or whose account is unknown, is refused.
        When any is refused, or DuplicateTransaction is raised (an id applied
        before), the unit of work's transaction is rolled back: everything
        written in it since its last commit, not only these charges, so the
        caller writes its group again without them. (The accept path's group
        is one transaction anyway; sparing the common path a savepoint and a
        locking read saves two round trips.) Locks the accounts until the
        transaction ends. May raise TransientConflict (re-run the transaction).
        """

    async def credit_many(self, credits: Sequence[Transaction]) -> None:
        """Apply every credit (e.g. a delivery group's refunds), or none.

        Records each transaction and adds to its account's balance, creating
        an account that does not exist yet. The accounts are locked in customer id
        order, as `debit_many` locks them, so groups of credits and of debits
        over the same accounts cannot deadlock each other. Raises
        DuplicateTransaction, applying nothing, if an id was applied before or
        is given twice; ValueError for an amount that does not add money.
        """

    async def balance(self, customer_id: int) -> int | None: ...

    async def transactions(
        self, customer_id: int, limit: int, before: int | None
    ) -> list[tuple[int, Transaction]]:
        """Up to `limit` (position, tx), newest first, positions below `before`."""


@dataclass(frozen=True, slots=True)
class RecipientFinish:
    """A recipient's move out of SENDING (what `finish_many` writes): to DONE with
    the provider, to FAILED, or back to PENDING when no operator could take it."""

    sms_identifier: str
    recipient: str
    status: SmsStatus
    provider: str = ""  # empty: the provider recorded before stays
    message_id: str = ""  # DONE: the operator's id for it, which its receipts will name


@dataclass(frozen=True, slots=True)
class Reached:
    """The recipient a receipt's message id names (see `MessageRepository.report_many`)."""

    sms_identifier: str
    recipient: str
    customer_id: int
    moved: bool  # False: it had a final status already, the receipt changed nothing
    done_at: datetime  # when it became DONE (the operator took it)


class MessageRepository(Protocol):
    async def add(self, messages: Sequence[RecipientMessage]) -> None: ...

    async def claim_many(
        self, sms_identifiers: Sequence[str], at: datetime, stale_before: datetime | None = None,
        only: Mapping[str, Collection[str]] | None = None,
    ) -> dict[str, list[str]]:
        """Move to SENDING each recipient of these SMS that is PENDING, or SENDING since
        before `stale_before` (its lease lapsed); each SMS's claimed recipients (none:
        absent). A recipient SENDING since later belongs to a delivery in progress and
        is left alone. Without `stale_before`, every unfinished recipient is claimed.
        With `only`, of an SMS named there only those recipients (a delivery of a
        part of it)."""

    async def finish_many(self, outcomes: Sequence[RecipientFinish], at: datetime) -> list[bool]:
        """Move each recipient out of SENDING, in order: to DONE or FAILED, or back to
        PENDING (deferred); False where it was not SENDING (a recipient named twice
        moves once, the first time)."""

    async def report_many(
        self, reports: Sequence[tuple[OperatorMessage, SmsStatus]], at: datetime
    ) -> list[Reached | None]:
        """Move the DONE recipient each operator message id names to the receipt's
        final status (DELIVERED, UNDELIVERED or EXPIRED), in order; None where no
        recipient has that id (yet). A recipient moves once: named again, or final
        already, it is Reached with moved=False."""

    async def shares(self, sms_identifiers: Collection[str]) -> dict[str, int]:
        """What one recipient of each SMS was charged (its charge over its recipients):
        the refund of one that is not delivered. Absent: no charge was recorded."""

    async def history(
        self, query: HistoryFilter, limit: int, before: int | None
    ) -> list[tuple[int, RecipientMessage]]:
        """With each recipient's final receipt's error code and time, where it has one."""


class ReceiptRepository(Protocol):
    """The receipts operators sent: the first one for each of their message ids."""

    async def add(self, receipts: Sequence[Receipt]) -> list[bool]:
        """Keep each receipt that is the first for its (operator, message id); False
        for one received before, or named earlier in `receipts` (a duplicate)."""

    async def waiting(self, messages: Collection[OperatorMessage]) -> list[Receipt]:
        """The receipts kept for these message ids (an answer naming them is being
        recorded now), in the order they came."""

    async def matched(self, messages: Collection[OperatorMessage]) -> None:
        """These receipts found their recipient: no longer kept, whatever became of
        it (the orphan sweep passes them by; they stay, the record of what was said)."""

    async def expire(self, received_before: datetime, limit: int) -> list[Receipt]:
        """Delete (and return) up to `limit` kept receipts received before
        `received_before` whose message id no recipient has: orphans, they will
        never find one."""


class WebhookRepository(Protocol):
    """Customers' webhook endpoints and the events owed to them (see webhooks.py)."""

    async def subscriptions(self, customer_ids: Collection[int]) -> dict[int, frozenset[EventType]]:
        """The event types each of these customers' enabled endpoint takes (absent: none)."""

    async def add_events(self, events: Sequence[WebhookEvent]) -> None:
        """Store these events, pending and due at their `next_at`."""

    async def endpoint(self, customer_id: int) -> Endpoint | None: ...

    async def save_endpoint(self, endpoint: Endpoint) -> None:
        """Create or replace the customer's endpoint."""

    async def delete_endpoint(self, customer_id: int, at: datetime) -> bool:
        """Remove it, its pending events dead; False when there was none."""

    async def disable(self, customer_id: int, at: datetime, reason: str) -> None:
        """The endpoint takes no more events (a 410): its pending events are dead."""

    async def due(self, now: datetime, customers: int) -> list[int]:
        """Up to `customers` customers with pending events due by `now`, the one whose
        event has been due longest first. A plain read: nothing is claimed."""

    async def claim(
        self, customer_id: int, now: datetime, limit: int, lease_until: datetime
    ) -> list[WebhookEvent]:
        """Lease up to `limit` of the customer's due pending events, oldest due first:
        their attempt is counted and they are not due again before `lease_until`
        (a process that dies with them leaves them to be sent again then)."""

    async def claim_many(
        self, rooms: Mapping[int, int], now: datetime, lease_until: datetime
    ) -> list[WebhookEvent]:
        """`claim` for several customers at once, up to `rooms[customer]` each, in one
        statement's lease; in store order."""

    async def endpoints(self, customer_ids: Collection[int]) -> dict[int, Endpoint]:
        """The endpoints of these customers (absent: none), disabled ones included."""

    async def finish(self, outcomes: Sequence[EventOutcome]) -> None:
        """Record each attempt and what its event is now; an event delivered or dead
        already stays so (a lease that lapsed may have let two processes send it)."""

    async def listed(
        self, customer_id: int, state: EventState | None, limit: int, before: int | None
    ) -> list[WebhookEvent]:
        """The customer's events, newest first, positions below `before`, each with
        its attempts."""

    async def replay(self, customer_id: int, event_id: str, now: datetime) -> EventState | None:
        """Make a delivered or dead event pending and due now, attempts from 0; its
        state before (None: the customer has no such event; PENDING: nothing done)."""

    async def oldest_pending(self) -> datetime | None:
        """When the oldest pending event was written (None: none is pending)."""


class SecretBox(Protocol):
    """Webhook signing secrets: made, and sealed for storage so that the database
    alone cannot sign for a customer."""

    def new_secret(self) -> str:
        """A fresh `whsec_` secret."""

    def seal(self, secret: str) -> str: ...

    def open(self, sealed: str) -> str:
        """The secret; ValueError when it was not sealed by this box's keys."""


class WebhookSender(Protocol):
    async def send(self, url: str, event_id: str, body: bytes, secrets: Sequence[str],
                   at: datetime) -> Attempt:
        """POST `body` to `url`, signed with every one of `secrets` (whsec_) at `at`;
        the attempt's outcome (never raises for what the endpoint or network does)."""


class WebhookAddresses(Protocol):
    async def refused(self, url: str) -> str | None:
        """Why the gateway will not send to `url` (its form, or an address its host
        resolves to); None when it may."""


class OutboxRepository(Protocol):
    async def add(self, deliveries: Sequence[DeliveryJob], at: datetime) -> None: ...

    async def claim_due(
        self, now: datetime, limit: int, lease_until: datetime, priority: int | None = None
    ) -> list[OutboxEvent]:
        """Pending events due by `now`, express first; leased until `lease_until`.

        With `priority`, only events of that priority (a relay pool per lane).
        Claiming counts an attempt, so an event whose publishing keeps crashing
        the relay is still parked in the end.
        """

    async def waiting(
        self, now: datetime, priority: int, per_customer: int, customers: int,
        after_customer: int = -1,
    ) -> list[Waiting]:
        """Due pending events of a lane, for the fair order: of up to `customers`
        customers with pending events (those after `after_customer` by id first,
        then around), each one's oldest `per_customer`, oldest first. A plain
        read: nothing is claimed."""

    async def claim(
        self, event_ids: Sequence[int], now: datetime, lease_until: datetime
    ) -> list[OutboxEvent]:
        """Lease those of these events that are still pending and due, in the
        order given; those another relay holds or took are skipped."""

    async def mark_published(
        self, event_ids: Sequence[int], at: datetime, leased_until: datetime | None = None
    ) -> None:
        """Published (or settled without the bus): the attempts start over from 0.

        With `leased_until` (the lease their claim gave them), only the events
        still under that lease: a worker may have deferred an event (made it
        pending again) between the publish and this mark, and that newer state
        must stand.
        """

    async def retry_later(self, event_id: int, error: str, run_at: datetime) -> None: ...

    async def park(self, event_id: int, error: str, at: datetime) -> None:
        """Give up on a poison event; it stays, with its reason, for an operator to see."""

    async def defer(self, run_at: Mapping[str, datetime], at: datetime) -> None:
        """Make the events of these SMS (by sms_identifier) pending again, due at the
        given times: their deferred recipients are published once more then. The
        publish attempts start over."""

    async def redrive(
        self,
        published_before: datetime,
        sending_before: datetime,
        now: datetime,
        quiet: Collection[int] = (),
        limit: int = 1000,
    ) -> int:
        """Make due again (up to `limit`) published events whose delivery was lost.

        Lost: a recipient SENDING since before `sending_before` (the delivery's
        lease lapsed: its worker died, or was cut off mid-send), or, for an event
        published before `published_before` whose priority is in `quiet` (its
        queue has nothing waiting), a recipient still PENDING (the message was
        dropped or dead-lettered). Attempts start over; returns how many.
        """

    async def parked(self, limit: int) -> list[ParkedEvent]:
        """Parked events, oldest first."""

    async def requeue(self, event_ids: Sequence[int] | None, now: datetime) -> int:
        """Make parked events (these ids; None: all parked) due now, attempts from 0;
        returns how many were parked and are pending again."""

    async def backlog(self, now: datetime) -> list[Backlog]:
        """Due pending events per priority (leased ones are not due), highest first."""

    async def purge(self, published_before: datetime, limit: int) -> int:
        """Delete up to `limit` published events whose SMS is finished; return how many.

        Keeps the table the size of the work in flight; parked events stay.
        """


class IdempotencyRepository(Protocol):
    async def get(self, customer_id: int, key: str) -> StoredResponse | None: ...

    async def add(self, customer_id: int, key: str, stored: StoredResponse, at: datetime) -> None:
        """Raises DuplicateIdempotencyKey if the key is already stored."""


class CustomerRepository(Protocol):
    async def get(self, customer_id: int) -> Customer | None: ...

    async def add(self, customer: Customer) -> bool:
        """Store a new customer; False (storing nothing) when its id exists."""

    async def free_id(self, highest: int) -> int | None:
        """An id (at most `highest`) no customer and no account has: one above all
        of them when there is one, else the lowest free; None when all are taken.
        (A new customer must not inherit an account the seed routes made.)"""

    async def limits(self) -> dict[int, int]:
        """Every customer with a send limit of its own: id -> recipients per second."""

    async def set_limit(self, customer_id: int, max_recipients_per_s: int | None) -> bool:
        """False when there is no such customer."""


class KeyRepository(Protocol):
    async def add(self, key: ApiKey) -> None: ...

    async def get(self, key_id: str) -> ApiKey | None: ...

    async def listed(self, customer_id: int | None) -> list[ApiKey]:
        """The keys of one customer, or every key (None), oldest first."""

    async def revoke(self, key_id: str, at: datetime) -> bool:
        """Revoked from `at` on; False when no such key, or revoked already."""

    async def touch(self, used: Mapping[str, datetime]) -> None:
        """Each key's last use is `used[key_id]`, unless it was later already."""


class UnitOfWork(Protocol):
    # Read-only properties, not attributes: a mutable protocol attribute is
    # invariant, so no implementation with its own repository classes would match.
    @property
    def ledger(self) -> LedgerRepository: ...

    @property
    def messages(self) -> MessageRepository: ...

    @property
    def outbox(self) -> OutboxRepository: ...

    @property
    def idempotency(self) -> IdempotencyRepository: ...

    @property
    def customers(self) -> CustomerRepository: ...

    @property
    def keys(self) -> KeyRepository: ...

    @property
    def receipts(self) -> ReceiptRepository: ...

    @property
    def webhooks(self) -> WebhookRepository: ...

    async def __aenter__(self) -> Self: ...

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None: ...

    async def commit(self) -> None: ...

    async def rollback(self) -> None: ...


UnitOfWorkFactory = Callable[[], UnitOfWork]


class MessageBus(Protocol):
    async def publish(self, deliveries: Sequence[DeliveryJob]) -> None:
        """Return once every delivery is durably accepted by the bus, or raise."""

    async def backlog(self) -> Mapping[MessageType, int]:
        """Deliveries published and not yet handed to a consumer, per lane."""


class Operator(Protocol):
    @property
    def name(self) -> str: ...

    async def send(self, sms: OutgoingSms) -> str:
        """Hand `sms` to the operator; return its message id or raise OperatorError."""


class ReceiptSink(Protocol):
    """Where an operator adapter hands the receipts it gets (an SMPP session's
    deliver_sm, an in-process simulator's reports): the gateway's intake."""

    async def take(self, receipts: Sequence[Receipt]) -> object:
        """Apply or keep them, committed when this returns; raise and the operator
        must send them again (nothing is acknowledged before it is recorded)."""


class OperatorCapacity(Protocol):
    """The schedule of each capped operator's sends, shared by every process."""

    async def reserve(self, operator: str, sends: int, per_s: float) -> float:
        """Reserve the next `sends` slots of the operator at `per_s`: the seconds
        from now until the first may go (0 when the operator is free now)."""


class CircuitBreaker(Protocol):
    async def call(self, operator: str, send: Callable[[], Awaitable[str]]) -> str:
        """Run `send` under `operator`'s breaker; raise CircuitOpen if it is open.

        Only transient OperatorErrors count as failures: a refused number says
        nothing about the operator's health. A call is one outcome however many
        tries the breaker makes inside it, and a cancelled call is never the
        success that closes a circuit. When it opens is the breaker's policy.
        """


class Clock(Protocol):
    def now(self) -> datetime:
        """The current time, timezone-aware UTC."""


class IdGenerator(Protocol):
    def new_id(self) -> str: ...


class OutboxSignal(Protocol):
    def notify(self) -> None:
        """Tell a relay in this process that new events were committed."""
