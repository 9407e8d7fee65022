"""Driver errors the core can act on, as the core's errors.

The unit of work raises these in place of SQLAlchemy's when a transaction
fails (see `SqlUnitOfWork`), so every repository gets the translation:
- TransientConflict: the database gave the transaction up for a concurrent
  one (deadlock, lock wait timeout, SQLite busy); running it again succeeds.
- StorageUnavailable: the database cannot be reached or did not answer.
Anything else stays as it was: an error we do not expect is a bug (500).
"""

from __future__ import annotations

import sqlite3

from sqlalchemy import exc as sa_exc

from smsgw_core.errors import DomainError, StorageUnavailable, TransientConflict

# MySQL/MariaDB server and client error numbers.
MYSQL_CONFLICT = frozenset({
    1205,  # ER_LOCK_WAIT_TIMEOUT (only the statement is rolled back: we roll back the rest)
    1213,  # ER_LOCK_DEADLOCK
})
MYSQL_UNAVAILABLE = frozenset({
    1040,  # ER_CON_COUNT_ERROR: too many connections
    1049,  # ER_BAD_DB_ERROR: the database is gone (dropped, or a wrong failover target)
    1053,  # ER_SERVER_SHUTDOWN
    1927,  # ER_CONNECTION_KILLED
    2002, 2003,  # CR_CONNECTION_ERROR, CR_CONN_HOST_ERROR: cannot connect
    2006, 2013,  # CR_SERVER_GONE_ERROR, CR_SERVER_LOST
    2014, 2045, 2055,  # the connection's state or socket is broken
    4031,  # ER_CLIENT_INTERACTION_TIMEOUT: the server closed an idle connection
})
# SQLite primary result codes (the low byte of an extended code).
SQLITE_CONFLICT = frozenset({5, 6})  # SQLITE_BUSY, SQLITE_LOCKED
SQLITE_UNAVAILABLE = frozenset({
    10,  # SQLITE_IOERR
    13,  # SQLITE_FULL
    14,  # SQLITE_CANTOPEN
})


def storage_error(error: BaseException) -> DomainError | None:
    """The core's error for `error` (an exception SQLAlchemy raised), or None."""
    if isinstance(error, sa_exc.TimeoutError):  # no pooled connection came free in time
        return StorageUnavailable(_first_line(error))
    if isinstance(error, OSError):  # the socket itself failed (reset, refused, timed out)
        return StorageUnavailable(f"{type(error).__name__}: {_first_line(error)}")
    if not isinstance(error, sa_exc.DBAPIError):
        return None
    original: BaseException = error.orig or error
    reason = _first_line(original)  # the driver's words only: no SQL, no parameters
    if isinstance(original, sqlite3.Error):
        code = (getattr(original, "sqlite_errorcode", None) or 0) & 0xFF
        if code in SQLITE_CONFLICT or "database is locked" in reason:
            return TransientConflict(reason)
        if code in SQLITE_UNAVAILABLE:
            return StorageUnavailable(reason)
        return None
    code = _mysql_code(original)
    if code in MYSQL_CONFLICT:
        return TransientConflict(reason)
    if code in MYSQL_UNAVAILABLE or error.connection_invalidated:
        return StorageUnavailable(reason)
    return None


def _mysql_code(original: BaseException) -> int | None:
    args = getattr(original, "args", ())
    return args[0] if args and isinstance(args[0], int) else None


def _first_line(error: BaseException) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__
