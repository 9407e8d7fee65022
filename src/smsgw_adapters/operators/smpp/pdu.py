"""SMPP 3.4 PDUs: the values a session exchanges, their wire form, and a stream reader.

A PDU is a 16-octet header (command_length, command_id, command_status,
sequence_number: big-endian 32-bit integers) and a body of mandatory fields
(1-octet integers and NUL-terminated C-octet strings, each with a maximum
length that counts its NUL) followed by optional TLVs (2-octet tag, 2-octet
length, value).

C-octet strings are read and written as Latin-1 (ASCII in practice), so
whatever a peer sent can be written back as read. Encoding is strict (a
field too long or out of range raises `PduError`: it is our bug). Decoding
is lenient where peers are known to stray, and never raises for a frame the
stream could carry: a C-octet string longer than its maximum is accepted, a
response whose body is left out (as the spec allows on an error status)
decodes with empty fields, a TLV of a known tag but an unexpected length is
kept raw in `Tlvs.other`, an unknown command id decodes to `Unknown` (answer
it with `generic_nack`) and a body that cannot be read to `Malformed`. Only
the framing itself can break a stream: `PduReader` raises `FramingError` for
a command_length under 16 or over its cap, and the session must then drop
the link.
"""

from __future__ import annotations

import enum
import struct
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from typing import Any, TypeAlias

HEADER = struct.Struct(">IIII")
HEADER_LENGTH = HEADER.size
MAX_PDU_LENGTH = 64 * 1024
INTERFACE_VERSION = 0x34
MAX_SEQUENCE_NUMBER = 0x7FFFFFFF  # sequence numbers run 1..0x7FFFFFFF, then wrap
MAX_SHORT_MESSAGE = 254  # octets; longer content goes in message_payload
REGISTERED_DELIVERY_FINAL = 0x01  # ask for a receipt of the final outcome
RESPONSE_BIT = 0x80000000


class CommandId(enum.IntEnum):
    GENERIC_NACK = 0x80000000
    BIND_RECEIVER = 0x00000001
    BIND_RECEIVER_RESP = 0x80000001
    BIND_TRANSMITTER = 0x00000002
    BIND_TRANSMITTER_RESP = 0x80000002
    QUERY_SM = 0x00000003
    QUERY_SM_RESP = 0x80000003
    SUBMIT_SM = 0x00000004
    SUBMIT_SM_RESP = 0x80000004
    DELIVER_SM = 0x00000005
    DELIVER_SM_RESP = 0x80000005
    UNBIND = 0x00000006
    UNBIND_RESP = 0x80000006
    REPLACE_SM = 0x00000007
    REPLACE_SM_RESP = 0x80000007
    CANCEL_SM = 0x00000008
    CANCEL_SM_RESP = 0x80000008
    BIND_TRANSCEIVER = 0x00000009
    BIND_TRANSCEIVER_RESP = 0x80000009
    OUTBIND = 0x0000000B
    ENQUIRE_LINK = 0x00000015
    ENQUIRE_LINK_RESP = 0x80000015
    SUBMIT_MULTI = 0x00000021
    SUBMIT_MULTI_RESP = 0x80000021
    ALERT_NOTIFICATION = 0x00000102
    DATA_SM = 0x00000103
    DATA_SM_RESP = 0x80000103


class CommandStatus(enum.IntEnum):
    """SMPP 3.4 command_status values (section 5.1.3); a peer may send others."""

    ESME_ROK = 0x00
    ESME_RINVMSGLEN = 0x01
    ESME_RINVCMDLEN = 0x02
    ESME_RINVCMDID = 0x03
    ESME_RINVBNDSTS = 0x04
    ESME_RALYBND = 0x05
    ESME_RINVPRTFLG = 0x06
    ESME_RINVREGDLVFLG = 0x07
    ESME_RSYSERR = 0x08
    ESME_RINVSRCADR = 0x0A
    ESME_RINVDSTADR = 0x0B
    ESME_RINVMSGID = 0x0C
    ESME_RBINDFAIL = 0x0D
    ESME_RINVPASWD = 0x0E
    ESME_RINVSYSID = 0x0F
    ESME_RCANCELFAIL = 0x11
    ESME_RREPLACEFAIL = 0x13
    ESME_RMSGQFUL = 0x14
    ESME_RINVSERTYP = 0x15
    ESME_RINVNUMDESTS = 0x33
    ESME_RINVDLNAME = 0x34
    ESME_RINVDESTFLAG = 0x40
    ESME_RINVSUBREP = 0x42
    ESME_RINVESMCLASS = 0x43
    ESME_RCNTSUBDL = 0x44
    ESME_RSUBMITFAIL = 0x45
    ESME_RINVSRCTON = 0x48
    ESME_RINVSRCNPI = 0x49
    ESME_RINVDSTTON = 0x50
    ESME_RINVDSTNPI = 0x51
    ESME_RINVSYSTYP = 0x53
    ESME_RINVREPFLAG = 0x54
    ESME_RINVNUMMSGS = 0x55
    ESME_RTHROTTLED = 0x58
    ESME_RINVSCHED = 0x61
    ESME_RINVEXPIRY = 0x62
    ESME_RINVDFTMSGID = 0x63
    ESME_RX_T_APPN = 0x64
    ESME_RX_P_APPN = 0x65
    ESME_RX_R_APPN = 0x66
    ESME_RQUERYFAIL = 0x67
    ESME_RINVOPTPARSTREAM = 0xC0
    ESME_ROPTPARNOTALLWD = 0xC1
    ESME_RINVPARLEN = 0xC2
    ESME_RMISSINGOPTPARM = 0xC3
    ESME_RMISSINGOPTPARAM = 0xC3  # the spelling some libraries use
    ESME_RINVOPTPARAMVAL = 0xC4
    ESME_RDELIVERYFAILURE = 0xFE
    ESME_RUNKNOWNERR = 0xFF
    # Not in 3.4 (SMPP 5.0 added it), but 3.4 SMSCs are seen to answer it.
    ESME_RINVDCS = 0x104


def status_name(status: int) -> str:
    """The status's SMPP name, or its hex value for one 3.4 does not define."""
    try:
        return CommandStatus(status).name
    except ValueError:
        return f"0x{status:08X}"


class SubmitOutcome(enum.Enum):
    OK = "ok"
    SLOW_DOWN = "slow_down"
    PERMANENT = "permanent"
    TRANSIENT = "transient"


_S = CommandStatus
_SUBMIT_OUTCOMES: dict[int, SubmitOutcome] = {
    _S.ESME_ROK: SubmitOutcome.OK,
    _S.ESME_RTHROTTLED: SubmitOutcome.SLOW_DOWN,
    _S.ESME_RMSGQFUL: SubmitOutcome.SLOW_DOWN,
    **dict.fromkeys(
        (
            _S.ESME_RINVMSGLEN, _S.ESME_RINVDSTADR, _S.ESME_RINVDSTTON, _S.ESME_RINVDSTNPI,
            _S.ESME_RINVSRCADR, _S.ESME_RINVSRCTON, _S.ESME_RINVSRCNPI, _S.ESME_RINVESMCLASS,
            _S.ESME_RINVDCS, _S.ESME_RINVEXPIRY, _S.ESME_RX_P_APPN, _S.ESME_RX_R_APPN,
        ),
        SubmitOutcome.PERMANENT,
    ),
}


def classify_submit_status(status: int) -> SubmitOutcome:
    """What a submit_sm_resp's command_status means for the message and the bind.

    - ok: ESME_ROK (0x00) — the SMSC took the message; its message_id is in the response.
    - slow_down: ESME_RTHROTTLED (0x58), ESME_RMSGQFUL (0x14) — the bind sends too fast;
      wait and resend the same part. Neither a failure of the message nor of the breaker.
    - permanent: what is wrong with this message itself, so resending cannot help (fail
      it now, refund): ESME_RINVMSGLEN (0x01), ESME_RINVDSTADR (0x0B), ESME_RINVDSTTON
      (0x50), ESME_RINVDSTNPI (0x51), ESME_RINVSRCADR (0x0A), ESME_RINVSRCTON (0x48),
      ESME_RINVSRCNPI (0x49), ESME_RINVESMCLASS (0x43), ESME_RINVDCS (0x104, SMPP 5.0),
      ESME_RINVEXPIRY (0x62), ESME_RX_P_APPN (0x65), ESME_RX_R_APPN (0x66).
    - transient: everything else, including ESME_RSYSERR (0x08), ESME_RSUBMITFAIL (0x45),
      ESME_RX_T_APPN (0x64), ESME_RUNKNOWNERR (0xFF), the bind errors (ESME_RINVBNDSTS,
      ESME_RBINDFAIL, ESME_RINVPASWD, ESME_RINVSYSID, ESME_RALYBND), the flags and
      optional parameters the adapter sets the same way for every message (priority,
      registered delivery, service type, schedule, TLVs: a refusal there is the bind's
      set-up, not the message) and every vendor-specific status — try another operator
      or later.
    """
    return _SUBMIT_OUTCOMES.get(status, SubmitOutcome.TRANSIENT)


class Tag(enum.IntEnum):
    """The TLV tags this codec reads into typed fields; any other is kept raw."""

    RECEIPTED_MESSAGE_ID = 0x001E
    SAR_MSG_REF_NUM = 0x020C
    SAR_TOTAL_SEGMENTS = 0x020E
    SAR_SEGMENT_SEQNUM = 0x020F
    SC_INTERFACE_VERSION = 0x0210
    NETWORK_ERROR_CODE = 0x0423
    MESSAGE_PAYLOAD = 0x0424
    MESSAGE_STATE = 0x0427


class MessageState(enum.IntEnum):
    """The message_state TLV (section 5.3.2.35)."""

    ENROUTE = 1
    DELIVERED = 2
    EXPIRED = 3
    DELETED = 4
    UNDELIVERABLE = 5
    ACCEPTED = 6
    UNKNOWN = 7
    REJECTED = 8


class PduError(ValueError):
    """A PDU this codec cannot write, or a body it cannot read."""


class FramingError(PduError):
    """The stream no longer splits into PDUs: the link must be dropped."""


@dataclass(frozen=True, slots=True)
class NetworkErrorCode:
    network_type: int  # 1 ANSI-136, 2 IS-95, 3 GSM
    error_code: int


@dataclass(frozen=True, slots=True, kw_only=True)
class Tlvs:
    """The optional parameters of a PDU: those the gateway uses typed, the rest raw."""

    receipted_message_id: str | None = None
    message_state: int | None = None
    network_error_code: NetworkErrorCode | None = None
    sar_msg_ref_num: int | None = None
    sar_total_segments: int | None = None
    sar_segment_seqnum: int | None = None
    message_payload: bytes | None = None
    sc_interface_version: int | None = None
    other: tuple[tuple[int, bytes], ...] = ()  # (tag, value) in the order received


NO_TLVS = Tlvs()


class BindMode(enum.Enum):
    TRANSMITTER = CommandId.BIND_TRANSMITTER
    RECEIVER = CommandId.BIND_RECEIVER
    TRANSCEIVER = CommandId.BIND_TRANSCEIVER


@dataclass(frozen=True, slots=True, kw_only=True)
class Bind:
    mode: BindMode
    sequence_number: int
    command_status: int = 0
    system_id: str = ""
    password: str = ""
    system_type: str = ""
    interface_version: int = INTERFACE_VERSION
    addr_ton: int = 0
    addr_npi: int = 0
    address_range: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class BindResp:
    mode: BindMode
    sequence_number: int
    command_status: int = 0
    system_id: str = ""
    tlvs: Tlvs = NO_TLVS


@dataclass(frozen=True, slots=True, kw_only=True)
class _HeaderOnly:
    sequence_number: int
    command_status: int = 0


class Unbind(_HeaderOnly):
    __slots__ = ()


class UnbindResp(_HeaderOnly):
    __slots__ = ()


class EnquireLink(_HeaderOnly):
    __slots__ = ()


class EnquireLinkResp(_HeaderOnly):
    __slots__ = ()


class GenericNack(_HeaderOnly):
    __slots__ = ()


@dataclass(frozen=True, slots=True, kw_only=True)
class _ShortMessage:
    """The body submit_sm and deliver_sm share (sections 4.4.1 and 4.6.1)."""

    sequence_number: int
    command_status: int = 0
    service_type: str = ""
    source_addr_ton: int = 0
    source_addr_npi: int = 0
    source_addr: str = ""
    dest_addr_ton: int = 0
    dest_addr_npi: int = 0
    destination_addr: str = ""
    esm_class: int = 0
    protocol_id: int = 0
    priority_flag: int = 0
    schedule_delivery_time: str = ""
    validity_period: str = ""
    registered_delivery: int = 0
    replace_if_present_flag: int = 0
    data_coding: int = 0
    sm_default_msg_id: int = 0
    short_message: bytes = b""
    tlvs: Tlvs = NO_TLVS


class SubmitSm(_ShortMessage):
    __slots__ = ()


class DeliverSm(_ShortMessage):
    __slots__ = ()


@dataclass(frozen=True, slots=True, kw_only=True)
class _MessageIdResp:
    sequence_number: int
    command_status: int = 0
    message_id: str = ""


class SubmitSmResp(_MessageIdResp):
    __slots__ = ()


class DeliverSmResp(_MessageIdResp):
    __slots__ = ()


@dataclass(frozen=True, slots=True, kw_only=True)
class Unknown:
    """A PDU of a command this codec does not know (data_sm, query_sm, outbind, ...):
    answer it with `generic_nack`, unless it is a response (`is_response`)."""

    command_id: int
    sequence_number: int
    command_status: int = 0
    body: bytes = b""


@dataclass(frozen=True, slots=True, kw_only=True)
class Malformed:
    """A frame of a known command whose body could not be read (never encoded)."""

    command_id: int
    sequence_number: int
    command_status: int
    reason: str


Pdu: TypeAlias = (
    Bind | BindResp | Unbind | UnbindResp | EnquireLink | EnquireLinkResp | GenericNack
    | SubmitSm | SubmitSmResp | DeliverSm | DeliverSmResp | Unknown | Malformed
)

# --- the body layouts: (field, kind), kind an octet count for an integer, or a
# C-octet string's maximum length (its NUL counted) as a negative number ----------

_U8 = 1
_SHORT_MESSAGE = 0  # sm_length (1 octet) then that many octets


def _cstr(max_length: int) -> int:
    return -max_length


_BIND_BODY = (
    ("system_id", _cstr(16)), ("password", _cstr(9)), ("system_type", _cstr(13)),
    ("interface_version", _U8), ("addr_ton", _U8), ("addr_npi", _U8),
    ("address_range", _cstr(41)),
)
_SM_BODY = (
    ("service_type", _cstr(6)), ("source_addr_ton", _U8), ("source_addr_npi", _U8),
    ("source_addr", _cstr(21)), ("dest_addr_ton", _U8), ("dest_addr_npi", _U8),
    ("destination_addr", _cstr(21)), ("esm_class", _U8), ("protocol_id", _U8),
    ("priority_flag", _U8), ("schedule_delivery_time", _cstr(17)),
    ("validity_period", _cstr(17)), ("registered_delivery", _U8),
    ("replace_if_present_flag", _U8), ("data_coding", _U8), ("sm_default_msg_id", _U8),
    ("short_message", _SHORT_MESSAGE),
)
_MESSAGE_ID_BODY = (("message_id", _cstr(65)),)
_BIND_RESP_BODY = (("system_id", _cstr(16)),)

Layout = tuple[tuple[str, int], ...]


@dataclass(frozen=True, slots=True)
class _Kind:
    cls: type
    layout: Layout
    has_tlvs: bool
    response: bool  # a response's body may be left out on an error status
    mode: BindMode | None = None


_KINDS: dict[int, _Kind] = {
    CommandId.GENERIC_NACK: _Kind(GenericNack, (), False, True),
    CommandId.UNBIND: _Kind(Unbind, (), False, False),
    CommandId.UNBIND_RESP: _Kind(UnbindResp, (), False, True),
    CommandId.ENQUIRE_LINK: _Kind(EnquireLink, (), False, False),
    CommandId.ENQUIRE_LINK_RESP: _Kind(EnquireLinkResp, (), False, True),
    CommandId.SUBMIT_SM: _Kind(SubmitSm, _SM_BODY, True, False),
    CommandId.SUBMIT_SM_RESP: _Kind(SubmitSmResp, _MESSAGE_ID_BODY, False, True),
    CommandId.DELIVER_SM: _Kind(DeliverSm, _SM_BODY, True, False),
    CommandId.DELIVER_SM_RESP: _Kind(DeliverSmResp, _MESSAGE_ID_BODY, False, True),
}
for _mode in BindMode:
    _KINDS[_mode.value] = _Kind(Bind, _BIND_BODY, False, False, _mode)
    _KINDS[_mode.value | RESPONSE_BIT] = _Kind(BindResp, _BIND_RESP_BODY, True, True, _mode)
_COMMAND_IDS = {kind.cls: command_id for command_id, kind in _KINDS.items() if kind.mode is None}


def command_id_of(pdu: Pdu) -> int:
    if isinstance(pdu, Unknown | Malformed):
        return pdu.command_id
    if isinstance(pdu, Bind):
        return int(pdu.mode.value)
    if isinstance(pdu, BindResp):
        return int(pdu.mode.value) | RESPONSE_BIT
    return _COMMAND_IDS[type(pdu)]


# --- encoding ------------------------------------------------------------------------


def encode(pdu: Pdu) -> bytes:
    """The PDU's wire form, header included. Raises PduError for a value SMPP cannot carry."""
    command_id = command_id_of(pdu)
    if isinstance(pdu, Malformed):
        raise PduError("a malformed PDU has no wire form")
    if isinstance(pdu, Unknown):
        body = pdu.body
    else:
        kind = _KINDS[command_id]
        body = b"" if kind.response and pdu.command_status and _all_empty(pdu, kind) else (
            _encode_body(pdu, kind)
        )
    length = HEADER_LENGTH + len(body)
    if length > MAX_PDU_LENGTH:
        raise PduError(f"{length} octets exceed the PDU cap of {MAX_PDU_LENGTH}")
    for name in ("command_status", "sequence_number"):
        if not 0 <= getattr(pdu, name) <= 0xFFFFFFFF:
            raise PduError(f"{name} must fit 32 bits")
    return HEADER.pack(length, command_id, pdu.command_status, pdu.sequence_number) + body


def _all_empty(pdu: Any, kind: _Kind) -> bool:
    # The spec leaves an error response's body out; so do we, unless it says something.
    return all(not getattr(pdu, name) for name, _ in kind.layout) and (
        not kind.has_tlvs or pdu.tlvs == NO_TLVS
    )


def _encode_body(pdu: Any, kind: _Kind) -> bytes:
    out = bytearray()
    for name, size in kind.layout:
        value = getattr(pdu, name)
        if size == _U8:
            if not 0 <= value <= 0xFF:
                raise PduError(f"{name} must fit one octet, not {value}")
            out.append(value)
        elif size == _SHORT_MESSAGE:
            if len(value) > MAX_SHORT_MESSAGE:
                raise PduError(f"short_message of {len(value)} octets: at most 254")
            out.append(len(value))
            out += value
        else:
            out += _c_octet_string(name, value, -size)
    if kind.has_tlvs:
        out += encode_tlvs(pdu.tlvs)
    return bytes(out)


def _c_octet_string(name: str, value: str, max_length: int) -> bytes:
    try:
        raw = value.encode("latin-1")  # ASCII in practice; Latin-1 keeps what a peer sent
    except UnicodeEncodeError:
        raise PduError(f"{name} must be one octet a character: {value!r}") from None
    if len(raw) >= max_length or b"\0" in raw:
        raise PduError(f"{name} takes at most {max_length - 1} characters, no NUL: {value!r}")
    return raw + b"\0"


def encode_tlvs(tlvs: Tlvs) -> bytes:
    out = bytearray()

    def put(tag: int, value: bytes) -> None:
        if len(value) > 0xFFFF:
            raise PduError(f"TLV 0x{tag:04X} of {len(value)} octets: at most 65535")
        out.extend(struct.pack(">HH", tag, len(value)))
        out.extend(value)

    if tlvs.receipted_message_id is not None:
        put(Tag.RECEIPTED_MESSAGE_ID,
            _c_octet_string("receipted_message_id", tlvs.receipted_message_id, 65))
    for tag, number, size in (
        (Tag.SAR_MSG_REF_NUM, tlvs.sar_msg_ref_num, 2),
        (Tag.SAR_TOTAL_SEGMENTS, tlvs.sar_total_segments, 1),
        (Tag.SAR_SEGMENT_SEQNUM, tlvs.sar_segment_seqnum, 1),
        (Tag.SC_INTERFACE_VERSION, tlvs.sc_interface_version, 1),
        (Tag.MESSAGE_STATE, tlvs.message_state, 1),
    ):
        if number is not None:
            if not 0 <= number < 1 << (8 * size):
                raise PduError(f"TLV {tag.name.lower()} must fit {size} octet(s), not {number}")
            put(tag, number.to_bytes(size, "big"))
    if (error := tlvs.network_error_code) is not None:
        if not (0 <= error.network_type <= 0xFF and 0 <= error.error_code <= 0xFFFF):
            raise PduError(f"network_error_code out of range: {error}")
        put(Tag.NETWORK_ERROR_CODE, struct.pack(">BH", error.network_type, error.error_code))
    if tlvs.message_payload is not None:
        put(Tag.MESSAGE_PAYLOAD, tlvs.message_payload)
    for raw_tag, value in tlvs.other:
        if not 0 <= raw_tag <= 0xFFFF:
            raise PduError(f"TLV tag 0x{raw_tag:X} must fit 2 octets")
        put(raw_tag, value)
    return bytes(out)


# --- decoding ------------------------------------------------------------------------


class _Cursor:
    __slots__ = ("data", "offset")

    def __init__(self, data: bytes, offset: int) -> None:
        self.data, self.offset = data, offset

    @property
    def remaining(self) -> int:
        return len(self.data) - self.offset

    def octets(self, count: int, name: str) -> bytes:
        if count > self.remaining:
            raise PduError(f"{name}: {count} octets wanted, {self.remaining} left")
        start, self.offset = self.offset, self.offset + count
        return self.data[start : self.offset]

    def c_octet_string(self, name: str) -> str:
        end = self.data.find(b"\0", self.offset)
        if end < 0:
            raise PduError(f"{name} has no terminating NUL")
        value = self.data[self.offset : end].decode("latin-1")
        self.offset = end + 1
        return value


def decode(frame: bytes) -> Pdu:
    """One whole frame (header included) to its PDU; see the module's note on leniency."""
    if len(frame) < HEADER_LENGTH:
        raise FramingError(f"a frame of {len(frame)} octets is shorter than the header")
    length, command_id, status, sequence = HEADER.unpack_from(frame)
    if length != len(frame):
        raise FramingError(f"command_length {length} but the frame has {len(frame)} octets")
    kind = _KINDS.get(command_id)
    if kind is None:
        return Unknown(command_id=command_id, sequence_number=sequence, command_status=status,
                       body=bytes(frame[HEADER_LENGTH:]))
    fields: dict[str, object] = {"sequence_number": sequence, "command_status": status}
    if kind.mode is not None:
        fields["mode"] = kind.mode
    cursor = _Cursor(bytes(frame), HEADER_LENGTH)
    try:
        if not (kind.response and cursor.remaining == 0):
            fields.update(_decode_body(cursor, kind))
    except PduError as error:
        return Malformed(command_id=command_id, sequence_number=sequence,
                         command_status=status, reason=str(error))
    pdu: Pdu = kind.cls(**fields)
    return pdu


def _decode_body(cursor: _Cursor, kind: _Kind) -> dict[str, object]:
    fields: dict[str, object] = {}
    for name, size in kind.layout:
        if size == _U8:
            fields[name] = cursor.octets(1, name)[0]
        elif size == _SHORT_MESSAGE:
            fields[name] = cursor.octets(cursor.octets(1, "sm_length")[0], name)
        else:
            fields[name] = cursor.c_octet_string(name)
    if kind.has_tlvs:
        fields["tlvs"] = decode_tlvs(cursor.data[cursor.offset :])
    return fields  # octets after a body without TLVs are ignored


_TLV_INTEGERS = {
    Tag.SAR_MSG_REF_NUM: ("sar_msg_ref_num", 2),
    Tag.SAR_TOTAL_SEGMENTS: ("sar_total_segments", 1),
    Tag.SAR_SEGMENT_SEQNUM: ("sar_segment_seqnum", 1),
    Tag.SC_INTERFACE_VERSION: ("sc_interface_version", 1),
    Tag.MESSAGE_STATE: ("message_state", 1),
}


def decode_tlvs(data: bytes) -> Tlvs:
    typed: dict[str, object] = {}
    other: list[tuple[int, bytes]] = []
    cursor = _Cursor(data, 0)
    while cursor.remaining:
        tag, length = struct.unpack(">HH", cursor.octets(4, "TLV header"))
        value = cursor.octets(length, f"TLV 0x{tag:04X}")
        if tag in _TLV_INTEGERS and len(value) == _TLV_INTEGERS[tag][1]:
            typed[_TLV_INTEGERS[tag][0]] = int.from_bytes(value, "big")
        elif tag == Tag.RECEIPTED_MESSAGE_ID:  # some SMSCs leave its NUL out
            typed["receipted_message_id"] = value.split(b"\0", 1)[0].decode("latin-1")
        elif tag == Tag.NETWORK_ERROR_CODE and length == 3:
            typed["network_error_code"] = NetworkErrorCode(*struct.unpack(">BH", value))
        elif tag == Tag.MESSAGE_PAYLOAD:
            typed["message_payload"] = value
        else:
            other.append((tag, value))
    return Tlvs(**typed, other=tuple(other))  # type: ignore[arg-type]


class PduReader:
    """Splits a TCP byte stream into PDUs: feed it what arrives, get the whole PDUs back."""

    def __init__(self, max_length: int = MAX_PDU_LENGTH) -> None:
        self._buffer = bytearray()
        self._max_length = max_length

    @property
    def buffered(self) -> int:
        """Octets received that do not make a whole PDU yet."""
        return len(self._buffer)

    def feed(self, data: bytes) -> list[Pdu]:
        """The PDUs `data` completes, in order. FramingError: drop the link."""
        buffer = self._buffer
        buffer += data
        pdus: list[Pdu] = []
        while len(buffer) >= 4:
            length = int.from_bytes(buffer[:4], "big")
            if not HEADER_LENGTH <= length <= self._max_length:
                raise FramingError(
                    f"command_length {length} outside {HEADER_LENGTH}..{self._max_length}"
                )
            if len(buffer) < length:
                break
            pdus.append(decode(bytes(buffer[:length])))
            del buffer[:length]
        return pdus


def read_all(chunks: Iterable[bytes], max_length: int = MAX_PDU_LENGTH) -> list[Pdu]:
    """Every PDU in a sequence of chunks (tests, the simulator's replay)."""
    reader = PduReader(max_length)
    return [pdu for chunk in chunks for pdu in reader.feed(chunk)]


# --- replies -------------------------------------------------------------------------


def response_to(
    request: Bind | SubmitSm | DeliverSm | EnquireLink | Unbind,
    status: int = CommandStatus.ESME_ROK,
    *,
    message_id: str = "",
    system_id: str = "",
) -> BindResp | SubmitSmResp | DeliverSmResp | EnquireLinkResp | UnbindResp:
    """The response to `request`, with its sequence number."""
    seq = request.sequence_number
    match request:
        case Bind():
            return BindResp(mode=request.mode, sequence_number=seq, command_status=status,
                            system_id=system_id)
        case SubmitSm():
            return SubmitSmResp(sequence_number=seq, command_status=status, message_id=message_id)
        case DeliverSm():
            return DeliverSmResp(sequence_number=seq, command_status=status)
        case EnquireLink():
            return EnquireLinkResp(sequence_number=seq, command_status=status)
        case Unbind():
            return UnbindResp(sequence_number=seq, command_status=status)
    raise TypeError(f"no response to {type(request).__name__}")


def generic_nack(pdu: Unknown | Malformed) -> GenericNack:
    """The answer to a PDU this side cannot take: an unknown command, or an unreadable body."""
    status = (CommandStatus.ESME_RINVCMDID if isinstance(pdu, Unknown)
              else CommandStatus.ESME_RINVCMDLEN)
    return GenericNack(sequence_number=pdu.sequence_number, command_status=status)


def is_response(command_id: int) -> bool:
    return bool(command_id & RESPONSE_BIT)


# --- SMPP time (section 7.1.1) ----------------------------------------------------------


def smpp_time(moment: datetime) -> str:
    """An aware datetime in SMPP's absolute format, in UTC: "YYMMDDhhmmsst00+"."""
    if moment.tzinfo is None:
        raise ValueError("an SMPP time needs an aware datetime")
    utc = moment.astimezone(UTC)
    return f"{utc:%y%m%d%H%M%S}{utc.microsecond // 100_000}00+"


def parse_smpp_time(value: str) -> datetime | timedelta | None:
    """An SMPP time field: None when empty, an aware datetime when absolute, a timedelta
    when relative ("R"; a year taken as 365 days and a month as 30, as SMSCs do)."""
    if not value:
        return None
    if len(value) != 16 or not value[:15].isdigit() or value[15] not in "+-R":
        raise ValueError(f"not an SMPP time: {value!r}")
    yy, mo, dd, hh, mi, ss = (int(value[i : i + 2]) for i in range(0, 12, 2))
    tenths, quarters, sign = int(value[12]), int(value[13:15]), value[15]
    if sign == "R":
        return timedelta(days=365 * yy + 30 * mo + dd, hours=hh, minutes=mi, seconds=ss)
    offset = timedelta(minutes=15 * quarters) * (1 if sign == "+" else -1)
    local = datetime(2000 + yy, mo, dd, hh, mi, ss, tenths * 100_000, timezone(offset))
    return local.astimezone(UTC)

