"""The one table from errors to HTTP responses. Every error body is {"message": ...}.

Every invalid request is a 400, as the Go service answers one (the seed
routes' clients know no 422); the message names the field.
"""

from __future__ import annotations

import logging
from typing import Any

from litestar import Request, Response
from litestar.exceptions import (
    ClientException,
    HTTPException,
    NotFoundException,
    SerializationException,
    ValidationException,
)
from litestar.status_codes import (
    HTTP_400_BAD_REQUEST,
    HTTP_401_UNAUTHORIZED,
    HTTP_402_PAYMENT_REQUIRED,
    HTTP_403_FORBIDDEN,
    HTTP_404_NOT_FOUND,
    HTTP_409_CONFLICT,
    HTTP_429_TOO_MANY_REQUESTS,
    HTTP_500_INTERNAL_SERVER_ERROR,
    HTTP_503_SERVICE_UNAVAILABLE,
)

from smsgw_core.errors import (
    BalanceLimit,
    Conflict,
    DomainError,
    Forbidden,
    IdempotencyConflict,
    InsufficientBalance,
    InvalidRequest,
    NotFound,
    Overloaded,
    RateLimited,
    StorageUnavailable,
    TransientConflict,
    Unauthenticated,
    UnknownAccount,
)

log = logging.getLogger("smsgw.api")

DOMAIN_STATUS: dict[type[DomainError], int] = {
    InvalidRequest: HTTP_400_BAD_REQUEST,
    InsufficientBalance: HTTP_402_PAYMENT_REQUIRED,
    Unauthenticated: HTTP_401_UNAUTHORIZED,  # with WWW-Authenticate, see _headers
    Forbidden: HTTP_403_FORBIDDEN,
    NotFound: HTTP_404_NOT_FOUND,
    UnknownAccount: HTTP_404_NOT_FOUND,
    IdempotencyConflict: HTTP_409_CONFLICT,
    Conflict: HTTP_409_CONFLICT,
    # An InvalidRequest with a status of its own (the most derived class is looked
    # up first): the request is valid, the account is full.
    BalanceLimit: HTTP_409_CONFLICT,
    Overloaded: HTTP_503_SERVICE_UNAVAILABLE,  # with Retry-After, see _headers
    RateLimited: HTTP_429_TOO_MANY_REQUESTS,  # with Retry-After
    # The database is down or kept giving the transaction up: nothing is wrong
    # with the request, so clients retry it (they retry 503, not 500).
    StorageUnavailable: HTTP_503_SERVICE_UNAVAILABLE,
    TransientConflict: HTTP_503_SERVICE_UNAVAILABLE,
}

# Litestar's handler parameter for the body: missing when the request has none.
EMPTY_BODY = "data"

# What Litestar's Request.stream() raises (as a 500) when it receives http.disconnect.
CLIENT_GONE = "client disconnected prematurely"


def _message(body: str, status: int, headers: dict[str, str] | None = None) -> Response[Any]:
    return Response({"message": body}, status_code=status, headers=headers)


def _headers(exc: DomainError) -> dict[str, str] | None:
    """What some answers carry besides the body: the scheme a 401 asks for, when to
    retry a refused send."""
    if isinstance(exc, Unauthenticated):
        return {"WWW-Authenticate": "Bearer"}
    if isinstance(exc, Overloaded | RateLimited | StorageUnavailable | TransientConflict):
        return {"Retry-After": str(exc.retry_after_s)}
    return None


def domain_error(request: Request[Any, Any, Any], exc: DomainError) -> Response[Any]:
    body = str(exc)
    if isinstance(exc, StorageUnavailable | TransientConflict):
        # One line, no traceback: the cause is the database, not this code. The
        # driver's words (hosts, error numbers) are for the log, not for clients.
        log.warning("%s %s: %s", request.method, request.url.path, exc)
        body = (f"temporarily unavailable: the database cannot serve this request now; "
                f"retry in {exc.retry_after_s} s")
    if isinstance(exc, Unauthenticated):
        # Why, for whoever reads the log (a key id at most, never a secret); the
        # client only learns that it needs a valid key.
        log.info("refused %s %s: %s", request.method, request.url.path, exc.reason)
    for cls in type(exc).__mro__:
        if cls in DOMAIN_STATUS:
            return _message(body, DOMAIN_STATUS[cls], _headers(exc))
    return server_error(request, exc)


def validation_error(_: Request[Any, Any, Any], exc: ValidationException) -> Response[Any]:
    problems = _problems(exc)
    if any(key == EMPTY_BODY for key, _ in problems):
        return _message("malformed JSON body: the body is empty", HTTP_400_BAD_REQUEST)
    return _message(_describe_validation(exc, problems), HTTP_400_BAD_REQUEST)


def _problems(exc: ValidationException) -> list[tuple[str, str]]:
    """(field, reason) of every problem the exception lists: Litestar's own for
    parameters, JsonBody's for a body (see body_errors)."""
    extra = exc.extra if isinstance(exc.extra, list) else []
    return [(_field_name(e), str(e.get("message", ""))) for e in extra if isinstance(e, dict)]


def _field_name(problem: dict[str, Any]) -> str:
    key = str(problem.get("key", "?"))
    if problem.get("source") == "header":
        # Litestar names a header by its parameter (idempotency_key); the client
        # sent Idempotency-Key, and that is the name it should read.
        return "-".join(word.capitalize() for word in key.split("_"))
    return key


def _describe_validation(exc: ValidationException, problems: list[tuple[str, str]]) -> str:
    if isinstance(exc.__cause__, KeyError) and exc.__cause__.args:
        # Litestar's missing parameter: the KeyError of the parameter's name.
        return f"{exc.__cause__.args[0]}: is required"
    return "; ".join(f"{key}: {reason}" for key, reason in problems) or str(exc.detail)


def client_error(request: Request[Any, Any, Any], exc: HTTPException) -> Response[Any]:
    if isinstance(exc, ValidationException):
        return validation_error(request, exc)
    if isinstance(exc, ClientException) and isinstance(exc.__cause__, SerializationException):
        return _message(f"malformed JSON body: {exc.__cause__}", HTTP_400_BAD_REQUEST)
    if isinstance(exc, NotFoundException):
        return _message(f"no route {request.method} {request.url.path}", HTTP_404_NOT_FOUND)
    if exc.status_code >= 500:
        if exc.detail == CLIENT_GONE:
            # Nothing failed here: the client left (or was cut off by the request
            # timeout) before sending its whole body, and no one reads this answer.
            log.info("client disconnected before the request was complete: %s %s",
                     request.method, request.url.path)
            return _message("request incomplete: the client disconnected", HTTP_400_BAD_REQUEST)
        return server_error(request, exc)
    # exc.headers: a 405's Allow, above all.
    return _message(str(exc.detail), exc.status_code, exc.headers or None)


def server_error(request: Request[Any, Any, Any], exc: Exception) -> Response[Any]:
    log.error("unhandled error in %s %s", request.method, request.url.path, exc_info=exc)
    return _message("internal error", HTTP_500_INTERNAL_SERVER_ERROR)


EXCEPTION_HANDLERS: dict[int | type[Exception], Any] = {
    DomainError: domain_error,
    HTTPException: client_error,
    Exception: server_error,
}
