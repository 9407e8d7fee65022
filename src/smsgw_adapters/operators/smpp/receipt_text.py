"""What a delivery receipt says: the deliver_sm an SMSC sends about a message it took.

A receipt is a deliver_sm whose esm_class message type is 0x04 (SMSC delivery
receipt). Its text follows SMPP 3.4 appendix B by custom only:

    id:IIIIIIIIII sub:SSS dlvrd:DDD submit date:YYMMDDhhmm done date:YYMMDDhhmm
    stat:DDDDDDD err:E text:...

so it is read leniently: keys in any case and order, any of them missing,
spaces or "_" inside "submit date"/"done date", dates of 10 (YYMMDDhhmm), 12
(YYMMDDhhmmss) or 14 (YYYYMMDDhhmmss) digits, ids and err codes of any form
(decimal, hex, a uuid: kept as sent). Everything after "text:" is the text.

The TLVs complete it: `receipted_message_id` is the id to match (it wins over
the text's id: it is the field the spec defines as the submit_sm_resp's
message_id, where the text's id is vendor-formatted and some SMSCs print a
hex id in decimal there); `message_state` gives the state when the text has
no stat (or one this module does not know); `network_error_code` gives the
error, as "network_type:error_code" in decimal ("3:34"), when the text has no err.

States, text or TLV, and what they report (`None`: not final, nothing to apply):

    DELIVRD / DELIVERED (2)                          -> DELIVERED
    EXPIRED (3)                                      -> EXPIRED
    UNDELIV / UNDELIVERABLE (5), REJECTD / REJECTED (8),
    DELETED (4), UNKNOWN (7)                         -> UNDELIVERED
    ENROUTE (1), ACCEPTD / ACCEPTED (6), BUFFRED     -> None

ACCEPTD is final in 3.4 ("read on the subscriber's behalf by customer service")
but SMSCs widely send it as an intermediate "taken by the SMSC", so it applies
nothing; UNKNOWN is final in 3.4 and the SMSC does not claim delivery, so it
is undelivered (Kannel reads both the same way).

Dates carry no zone; they are read in `zone` (UTC unless the operator's SMSC
is known to report local time) and returned in UTC.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, tzinfo

from smsgw_adapters.operators.smpp.pdu import DeliverSm, MessageState
from smsgw_adapters.operators.smpp.text import DATA_CODING_UCS2
from smsgw_core.receipts import Reported

ESM_CLASS_TYPE_MASK = 0x3C
ESM_CLASS_RECEIPT = 0x04


def is_receipt(esm_class: int) -> bool:
    """Whether a deliver_sm with this esm_class is an SMSC delivery receipt (not an MO)."""
    return esm_class & ESM_CLASS_TYPE_MASK == ESM_CLASS_RECEIPT


_KEY = re.compile(
    r"(?<![A-Za-z0-9_])(id|sub|dlvrd|submit[\s_]*date|done[\s_]*date|stat|err|text)\s*:",
    re.IGNORECASE,
)


def receipt_fields(text: str) -> dict[str, str]:
    """The receipt text's fields by key (id, sub, dlvrd, submit_date, done_date, stat, err,
    text), each value stripped; a key named twice keeps its first value."""
    fields: dict[str, str] = {}
    match = _KEY.search(text)
    while match:
        key = re.sub(r"[\s_]+", "_", match.group(1).lower())
        if key == "text":
            fields.setdefault(key, text[match.end() :].strip())
            break
        following = _KEY.search(text, match.end())
        end = following.start() if following else len(text)
        fields.setdefault(key, text[match.end() : end].strip())
        match = following
    return fields


_DATE_FORMATS = {10: "%y%m%d%H%M", 12: "%y%m%d%H%M%S", 14: "%Y%m%d%H%M%S"}


def receipt_date(value: str, zone: tzinfo = UTC) -> datetime | None:
    """A receipt's date read in `zone`, in UTC; None when absent or not a date."""
    date_format = _DATE_FORMATS.get(len(value))
    if date_format is None or not value.isdigit():
        return None
    try:
        return datetime.strptime(value, date_format).replace(tzinfo=zone).astimezone(UTC)
    except ValueError:
        return None


_FINAL = {
    "DELIVRD": Reported.DELIVERED, "DELIVERED": Reported.DELIVERED,
    "EXPIRED": Reported.EXPIRED,
    "UNDELIV": Reported.UNDELIVERED, "UNDELIVERABLE": Reported.UNDELIVERED,
    "REJECTD": Reported.UNDELIVERED, "REJECTED": Reported.UNDELIVERED,
    "DELETED": Reported.UNDELIVERED, "UNKNOWN": Reported.UNDELIVERED,
}
_NOT_FINAL = frozenset({"ENROUTE", "ACCEPTD", "ACCEPTED", "BUFFRED", "BUFFERED"})
_STATE_WORDS: dict[int, str] = {
    MessageState.ENROUTE: "ENROUTE", MessageState.DELIVERED: "DELIVRD",
    MessageState.EXPIRED: "EXPIRED", MessageState.DELETED: "DELETED",
    MessageState.UNDELIVERABLE: "UNDELIV", MessageState.ACCEPTED: "ACCEPTD",
    MessageState.UNKNOWN: "UNKNOWN", MessageState.REJECTED: "REJECTD",
}


@dataclass(frozen=True, slots=True)
class SmppReceipt:
    message_id: str  # the SMSC's id of the receipted message, as its submit_sm_resp gave it
    reported: Reported | None  # None: not final (ENROUTE, ACCEPTD) or a state not known
    state: str  # the state word as read ("DELIVRD"), or the TLV's in the same words; "" if none
    error_code: str  # the SMSC's, as it sent it; "" when none
    done_at: datetime | None  # UTC


class UnreadableReceipt(ValueError):
    """A deliver_sm that is not a receipt, or one that names no message."""


def read_receipt(deliver: DeliverSm, zone: tzinfo = UTC) -> SmppReceipt:
    """What the receipt `deliver` reports. UnreadableReceipt when it is not a receipt or
    has no message id in its text or its TLVs: acknowledge it and count it all the same."""
    if not is_receipt(deliver.esm_class):
        raise UnreadableReceipt(f"esm_class 0x{deliver.esm_class:02X} is not a receipt")
    fields = receipt_fields(_text_of(deliver))
    tlvs = deliver.tlvs
    message_id = tlvs.receipted_message_id or fields.get("id", "")
    if not message_id:
        raise UnreadableReceipt("the receipt names no message id")
    state = fields.get("stat", "").upper()
    if state not in _FINAL and state not in _NOT_FINAL and tlvs.message_state is not None:
        state = _STATE_WORDS.get(tlvs.message_state, state)
    error_code = fields.get("err", "")
    if not error_code and (network := tlvs.network_error_code) is not None:
        error_code = f"{network.network_type}:{network.error_code}"
    return SmppReceipt(
        message_id=message_id,
        reported=_FINAL.get(state),
        state=state,
        error_code=error_code,
        done_at=receipt_date(fields.get("done_date", ""), zone),
    )


def _text_of(deliver: DeliverSm) -> str:
    raw = deliver.short_message or deliver.tlvs.message_payload or b""
    if deliver.data_coding == DATA_CODING_UCS2:
        return raw.decode("utf-16-be", errors="replace")
    return raw.decode("latin-1")  # the receipt's words are ASCII in every coding SMSCs use
