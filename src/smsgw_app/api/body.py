"""Request bodies: JSON only, decoded strictly into their schema in one pass.

Litestar on its own decodes any body as JSON whatever its Content-Type, then
converts it leniently ("10" and 1.0 become 10). Both matter here: a page on
any site can make a browser POST text/plain or a form without a CORS
preflight, so accepting those would let it send SMS and top up; and money and
ids must be what they say. Routes taking a body name `JsonBody[Schema]` as
their DTO.
"""

from __future__ import annotations

import functools
from typing import Any, Generic, TypeVar, Union

import msgspec
from litestar.dto import MsgspecDTO
from litestar.exceptions import ClientException, HTTPException, ValidationException
from litestar.status_codes import HTTP_415_UNSUPPORTED_MEDIA_TYPE
from litestar.typing import FieldDefinition

T = TypeVar("T", bound=msgspec.Struct)

# application/json and the structured-syntax suffix (application/problem+json, …): none
# of them is a CORS "simple" type, so a browser must ask before sending one cross-site.
ACCEPTED = "application/json or application/*+json (charset utf-8, if any)"


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


@functools.cache
def _only(schema: type[msgspec.Struct], name: str, raw: bool) -> type[msgspec.Struct]:
    """`schema` reduced to its field `name`, which may be absent (UNSET); with
    `raw`, the field's value is kept as raw JSON."""
    field = next(f for f in msgspec.structs.fields(schema) if f.encode_name == name)
    kind: Any = Union[msgspec.Raw if raw else field.type, msgspec.UnsetType]  # noqa: UP007
    return msgspec.defstruct(f"{schema.__name__}_{name}", [(name, kind, msgspec.UNSET)])


def invalid_field(
    value: bytes, schema: type[msgspec.Struct], exc: msgspec.ValidationError
) -> tuple[str, str]:
    """Which field of `schema` made a (well-formed) body invalid, and why.

    msgspec says where only inside its message, so the field is found again by
    decoding the body into each field alone, in order: this runs only on a
    refused body, never on an accepted one.
    """
    if not value.lstrip().startswith(b"{"):
        return "body", str(exc)  # not an object
    for field in msgspec.structs.fields(schema):
        if (reason := _field_problem(value, schema, field)) is not None:
            return field.encode_name, reason
    return "body", str(exc)  # a rule across fields


def _field_problem(
    value: bytes, schema: type[msgspec.Struct], field: msgspec.structs.FieldInfo
) -> str | None:
    name = field.encode_name
    try:
        raw = getattr(msgspec.json.decode(value, type=_only(schema, name, raw=True)), name)
    except (msgspec.DecodeError, RecursionError):
        raw = None  # nested too deeply to be kept whole, here or in another field
    if raw is msgspec.UNSET:
        return "is required" if field.required else None
    try:
        if raw is None:  # decode the field in place: msgspec stops at its first problem
            msgspec.json.decode(value, type=_only(schema, name, raw=False))
        else:  # the value alone, so that the reason names no path but within it
            msgspec.json.decode(raw, type=field.type)
    except msgspec.ValidationError as invalid:
        return str(invalid)
    except (msgspec.DecodeError, RecursionError):
        return None  # a value too deep to skip is another field's problem
    return None


class JsonBody(MsgspecDTO[T], Generic[T]):
    """Decode the body straight into the route's Struct, without lenient conversion."""

    def decode_bytes(self, value: bytes) -> Any:
        require_json(self.asgi_connection.headers.get("content-type"))
        try:
            return msgspec.json.decode(value, type=self.model_type)
        except msgspec.ValidationError as exc:
            field, reason = invalid_field(value, self.model_type, exc)
            # The same shape as Litestar's own errors for query parameters, so that
            # errors.py reads one structure, never the words of a message.
            raise ValidationException(
                f"{field}: {reason}", extra=[{"key": field, "message": reason, "source": "body"}]
            ) from exc
        except msgspec.DecodeError as exc:
            raise ClientException(f"malformed JSON body: {exc}") from None
        except RecursionError:  # msgspec's own depth guard, not a crash
            raise ClientException("malformed JSON body: nested too deeply") from None

    @classmethod
    def create_openapi_schema(
        cls, field_definition: FieldDefinition, handler_id: str, schema_creator: Any
    ) -> Any:
        # The Struct's own schema (and its name), as a route without a DTO documents it.
        return schema_creator.for_field_definition(field_definition)
