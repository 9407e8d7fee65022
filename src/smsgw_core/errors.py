"""Domain errors. The HTTP layer maps each to a status code in one table."""

from __future__ import annotations


class DomainError(Exception):
    """Base of every error the core raises on purpose."""


class InvalidRequest(DomainError):
    """Input that can never succeed; names the offending field."""

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(f"{field}: {reason}")
        self.field = field
        self.reason = reason


class InsufficientBalance(DomainError):
    """The account does not exist or its balance does not cover the cost."""

    def __init__(self, customer_id: int, cost: int) -> None:
        super().__init__(f"insufficient balance: user {customer_id} cannot pay {cost}")
        self.customer_id = customer_id
        self.cost = cost


class UnknownAccount(DomainError):
    def __init__(self, customer_id: int) -> None:
        super().__init__(f"unknown user_id {customer_id}")
        self.customer_id = customer_id


class DuplicateTransaction(DomainError):
    """A ledger transaction id was applied before: it must apply at most once."""

    def __init__(self, transaction_id: str) -> None:
        super().__init__(f"transaction {transaction_id} was already applied")
        self.transaction_id = transaction_id


class InvalidTransition(DomainError):
    def __init__(self, current: str, target: str) -> None:
        super().__init__(f"illegal status transition {current} -> {target}")
        self.current = current
        self.target = target


class IdempotencyConflict(DomainError):
    """The same Idempotency-Key was used before with a different request."""

    def __init__(self, key: str) -> None:
        super().__init__(f"Idempotency-Key {key!r} was used with a different request")
        self.key = key


class DuplicateIdempotencyKey(DomainError):
    """Raised by the repository when a concurrent request stored the key first."""


class BalanceLimit(InvalidRequest):
    """A valid top-up the account cannot take now: its balance would pass the
    maximum. (A conflict with the account's state, not a malformed request.)"""

    def __init__(self, maximum: int) -> None:
        super().__init__("balance", f"the balance would pass the maximum of {maximum}")


class Unauthenticated(DomainError):
    """No key, or one that proves nothing: missing, malformed, unknown or revoked.
    The reason is for the log; the client is told only that it needs a key."""

    def __init__(
        self, reason: str,
        message: str = "a valid API key is required: Authorization: Bearer <key>",
    ) -> None:
        super().__init__(message)
        self.reason = reason


class Forbidden(DomainError):
    """A valid key, for something it may not do (a customer key on an admin route,
    or another customer's account)."""


class NotFound(DomainError):
    """No such thing for this caller: another customer's is not found either (its
    existence is not revealed)."""


class InvalidCursor(InvalidRequest):
    def __init__(self) -> None:
        super().__init__("cursor", "is not a cursor this service issued")


class RateLimited(DomainError):
    """A send over its customer's limit: refused, nothing written; retry after a while."""

    def __init__(self, customer_id: int, per_s: int, burst: int, retry_after_s: int) -> None:
        super().__init__(
            f"customer {customer_id} is over its send limit ({per_s} recipients/s, "
            f"burst {burst}); retry in {retry_after_s} s"
        )
        self.customer_id = customer_id
        self.retry_after_s = retry_after_s


class Overloaded(DomainError):
    """Too much accepted work waits to be sent: new work is refused for now, nothing written."""

    def __init__(self, waiting: int, limit: int, retry_after_s: int) -> None:
        super().__init__(
            f"overloaded: {waiting} accepted messages are waiting to be sent (limit {limit}); "
            f"retry in {retry_after_s} s"
        )
        self.waiting = waiting
        self.limit = limit
        self.retry_after_s = retry_after_s


class StorageUnavailable(DomainError):
    """The database cannot be reached, or did not answer in time.

    Nothing about the data is wrong and no retry inside the process will help
    soon: the caller should try again later (the API answers 503 + Retry-After).
    A transaction that was committing when the connection went may or may not
    have committed; an Idempotency-Key makes the client's retry safe.
    """

    retry_after_s = 2

    def __init__(self, reason: str) -> None:
        super().__init__(f"database unavailable: {reason}")
        self.reason = reason


class TransientConflict(DomainError):
    """The database gave up this transaction so that a concurrent one could go on.

    A deadlock, a lock wait timeout, SQLite busy: the transaction was rolled
    back whole (the unit of work sees to that) and may simply be run again;
    `smsgw_core.transactions` does so, bounded. One that still fails after
    that is answered like an unavailable database.
    """

    retry_after_s = 1

    def __init__(self, reason: str) -> None:
        super().__init__(f"transaction conflict: {reason}")
        self.reason = reason


class Conflict(DomainError):
    """The request cannot apply to the resource as it stands now (e.g. replaying an
    event that is still pending); the message says what to do first."""
