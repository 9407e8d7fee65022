"""Request bodies: JSON only, decoded strictly into their schema in one pass.

Litestar on its own decodes any body as JSON whatever its Content-Type, then
converts it leniently ("10" and 1.0 become 10). Both matter here: a page on
any site can make a browser POST text/plain or a form without a CORS
preflight, so accepting those would let it send SMS and top up; and money and
ids must be what they say. Routes taking a body name `JsonBody[Schema]` as
their DTO.

One spelling is the same number, though: JSON Schema (and so the OpenAPI
document, and the clients and fuzzers that read it) calls 10.0 and 1e1 the
integer 10. A body refused as it came is read once more with each whole number
so spelled written as the integer it is, exactly (read as a decimal, never
through a float); "10" and 10.5 are still refused.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Annotated, Any, Generic, TypeVar

import msgspec
from litestar.dto import MsgspecDTO
from litestar.exceptions import ClientException, HTTPException, ValidationException
from litestar.status_codes import HTTP_415_UNSUPPORTED_MEDIA_TYPE
from litestar.typing import FieldDefinition

from smsgw_app.api.body_errors import invalid_field

T = TypeVar("T", bound=msgspec.Struct)

# application/json and the structured-syntax suffix (application/problem+json, …): none
# of them is a CORS "simple" type, so a browser must ask before sending one cross-site.
ACCEPTED = "application/json or application/*+json (charset utf-8, if any)"


# Past 10**19 (> 2**63) no integer field takes the number anyway; the cap keeps
# int() from writing out 1e999999999.
_WHOLE_DIGITS = 19
_AS_DECIMALS = msgspec.json.Decoder(float_hook=Decimal)
_DECIMALS_AS_NUMBERS = msgspec.json.Encoder(decimal_format="number")


def with_whole_numbers(body: bytes) -> bytes | None:
    """`body` with its whole numbers spelled as floats written as integers, or
    None when it has none (or cannot be read without a schema)."""
    try:
        tree = _AS_DECIMALS.decode(body)
    except (msgspec.DecodeError, RecursionError):
        return None
    changed = False
    # A body that is not an object is refused whatever its numbers.
    pending: list[Any] = [tree] if isinstance(tree, dict | list) else []
    while pending:  # by hand: a deep body must not cost a deep Python stack
        node = pending.pop()
        slots: Any = node.items() if isinstance(node, dict) else enumerate(node)
        for key, value in list(slots):
            if isinstance(value, dict | list):
                pending.append(value)
            elif isinstance(value, Decimal) and (whole := whole_value(value)) is not None:
                node[key] = whole
                changed = True
    return _DECIMALS_AS_NUMBERS.encode(tree) if changed else None


def whole_value(number: Decimal, digits: int = _WHOLE_DIGITS) -> int | None:
    """The integer `number` is, exactly, when it is one of fewer than `digits`
    digits (adjusted() first: 1e999999999 is refused without being written out)."""
    if number.is_zero():
        return 0
    if (number.is_finite() and number.adjusted() < digits
            and number == number.to_integral_value()):
        return int(number)
    return None


class UnsupportedMediaType(HTTPException):
    status_code = HTTP_415_UNSUPPORTED_MEDIA_TYPE


def require_json(content_type: str | None) -> None:
    media_type, *params = (content_type or "").split(";")
    kind, _, subtype = media_type.strip().lower().partition("/")
    json_type = kind == "application" and (subtype == "json" or subtype.endswith("+json"))
    charset = [p.split("=", 1)[1].strip().strip('"').lower() for p in params
               if p.strip().lower().startswith("charset=")]
    if not json_type or any(c not in ("utf-8", "utf8") for c in charset):
        # JSON is UTF-8 (RFC 8259); a body declared otherwise would be misread.
        got = repr(content_type) if content_type else "none"
        raise UnsupportedMediaType(f"Content-Type: expected {ACCEPTED}, got {got}")


class JsonBody(MsgspecDTO[T], Generic[T]):
    """Decode the body straight into the route's Struct, without lenient conversion."""

    many = False  # True: the body is a JSON array of the schema (the route takes list[T])
    max_items: int | None = None  # with `many`, at most this many

    def decode_bytes(self, value: bytes) -> Any:
        require_json(self.asgi_connection.headers.get("content-type"))
        try:
            return self._checked(msgspec.json.decode(value, type=self._body_type()))
        except msgspec.ValidationError as exc:
            refused = exc
        except msgspec.DecodeError as exc:
            raise ClientException(f"malformed JSON body: {exc}") from None
        except RecursionError:  # msgspec's own depth guard, not a crash
            raise ClientException("malformed JSON body: nested too deeply") from None
        if (whole := with_whole_numbers(value)) is not None:
            try:
                return self._checked(msgspec.json.decode(whole, type=self._body_type()))
            except msgspec.ValidationError as exc:
                refused = exc
        found = invalid_field(refused)
        raise ValidationException(
            f"{found.path}: {found.reason}",
            extra=[{"key": found.path, "message": found.reason, "source": "body"}],
        ) from refused

    def _body_type(self) -> Any:
        if not self.many:
            return self.model_type
        return Annotated[list[self.model_type], msgspec.Meta(  # type: ignore[name-defined]
            min_length=1, max_length=self.max_items)]

    def _checked(self, decoded: Any) -> Any:
        return decoded

    @classmethod
    def create_openapi_schema(
        cls, field_definition: FieldDefinition, handler_id: str, schema_creator: Any
    ) -> Any:
        # The Struct's own schema (and its name), as a route without a DTO documents it.
        schema = schema_creator.for_field_definition(field_definition)
        if cls.many:  # the array's bounds, which the annotation list[T] does not carry
            schema.min_items, schema.max_items = 1, cls.max_items
        return schema
