"""An SMPP operator's URL: its options and defaults, and one line for what is wrong."""

from __future__ import annotations

from datetime import UTC, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest

from smsgw_adapters.operators.smpp.url import (
    Address,
    BindPlan,
    SmppOptions,
    address,
    parse,
    problem,
)
from smsgw_app.config import ConfigError, Settings
from smsgw_app.operator_kinds import KINDS, OperatorSpec, url_forms


def test_every_option_is_read() -> None:
    options = parse(
        "smpps://mci%40gw:p%3Ass@smsc.example:2776?system_type=VMA&window=20&binds=4"
        "&bind=transmitter+receiver&source=+9810001&source_ton=1&source_npi=1&dest_ton=0"
        "&dest_npi=1&enquire_link_s=15&receipt_zone=+03:30")
    assert options == SmppOptions(
        host="smsc.example", port=2776, tls=True, system_id="mci@gw", password="p:ss",
        system_type="VMA", window=20, binds=4, bind=BindPlan.TRANSMITTER_RECEIVER,
        source="+9810001", source_ton=1, source_npi=1, dest_ton=0, dest_npi=1,
        enquire_link_s=15.0, receipt_zone=timezone(timedelta(hours=3, minutes=30)),
    )
    assert "p:ss" not in repr(options)


def test_the_defaults() -> None:
    assert parse("smpp://gw:secret@smsc") == SmppOptions(
        host="smsc", port=2775, tls=False, system_id="gw", password="secret",
        system_type="", window=10, binds=1, bind=BindPlan.TRANSCEIVER, source="",
        source_ton=None, source_npi=None, dest_ton=None, dest_npi=None,
        enquire_link_s=30.0, receipt_zone=UTC,
    )
    assert (parse("smpps://gw@smsc").port, parse("smpps://gw@smsc").tls) == (3550, True)
    assert parse("smpp://gw@smsc").password == ""


@pytest.mark.parametrize(("zone", "read"), [
    ("UTC", UTC), ("Z", UTC), ("-0500", timezone(-timedelta(hours=5))),
    ("%2B04:00", timezone(timedelta(hours=4))), ("Asia/Tehran", ZoneInfo("Asia/Tehran")),
])
def test_a_receipt_zone_is_utc_an_offset_or_a_named_zone(zone: str, read: object) -> None:
    assert parse(f"smpp://gw@smsc?receipt_zone={zone}").receipt_zone == read


@pytest.mark.parametrize(("number", "read"), [
    ("+989121234567", Address(1, 1, "989121234567")),
    ("09121234567", Address(0, 1, "09121234567")),
    ("3000", Address(0, 1, "3000")),
    ("ACME Bank", Address(5, 0, "ACME Bank")),
])
def test_an_address_s_ton_and_npi_come_from_its_form(number: str, read: Address) -> None:
    assert address(number) == read
    assert address(number, ton=2, npi=8) == Address(2, 8, read.addr)


@pytest.mark.parametrize(("url", "said"), [
    ("smpp://gw@smsc?window=0", "window='0': expected a whole number from 1 to 1000"),
    ("smpp://gw@smsc?window=ten", "window='ten': expected a whole number from 1 to 1000"),
    ("smpp://gw@smsc?binds=33", "binds='33': expected a whole number from 1 to 32"),
    ("smpp://gw@smsc?bind=trx", "bind='trx': expected transceiver or transmitter+receiver"),
    ("smpp://gw@smsc?source=TooLongASender", "source='TooLongASender': expected +digits"),
    ("smpp://gw@smsc?source=%2B98-1", "source='+98-1': expected +digits"),
    ("smpp://gw@smsc?dest_ton=256", "dest_ton='256': expected a whole number from 0 to 255"),
    ("smpp://gw@smsc?enquire_link_s=0", "enquire_link_s='0': expected seconds from 1 to 3600"),
    ("smpp://gw@smsc?receipt_zone=Mars/Base", "receipt_zone='Mars/Base': expected UTC"),
    ("smpp://gw@smsc?system_type=ABCDEFGHIJKLM",
     "system_type='ABCDEFGHIJKLM': system_type: expected at most 12"),
    ("smpp://gw@smsc?windows=2", "unknown option 'windows' (known: system_type, window,"),
    ("smpp://gw:secret@:2775", "no host"),
    ("smpp://gw@smsc:99999", "the port is not a number from 1 to 65535"),
    ("smpp://smsc:2775", "no system_id (the URL's user)"),
    ("smpp://a-system-id-too-long@smsc", "system_id (the URL's user): expected at most 15"),
    ("smpp://gw:longer-than-8@smsc", "password: expected at most 8"),
    ("smpp://gw@smsc/path", "an SMPP URL has no path"),
])
def test_what_is_wrong_is_one_line_without_the_password(url: str, said: str) -> None:
    found = problem(url)
    assert found is not None and found.startswith(said), found
    assert "\n" not in found and "longer-than-8" not in found and "secret" not in found
    assert KINDS["smpp"].problem(OperatorSpec("MCI", url)) == found


def test_the_gateway_reads_its_own_options_out_and_leaves_a_plus_a_plus() -> None:
    settings = Settings.from_env({"SMSGW_OPERATORS":
        "MCI=smpp://gw:secret@smsc:2775?tps=100&source=+9810001&receipt_zone=+03:30"
        "&receipt_token=T0ken&bind=transmitter+receiver,B=sim://"})
    mci = settings.operators[0]
    assert (mci.tps, mci.receipt_token) == (100.0, "T0ken")
    options = parse(mci.url)
    assert options.source == "+9810001"
    assert options.bind is BindPlan.TRANSMITTER_RECEIVER
    assert options.receipt_zone == timezone(timedelta(hours=3, minutes=30))
    assert "smpp(s)://SYSTEM_ID:PASSWORD@HOST" in url_forms()


def test_a_bad_smpp_url_is_a_configuration_error() -> None:
    with pytest.raises(ConfigError) as raised:
        Settings.from_env({"SMSGW_OPERATORS": "MCI=smpp://gw@smsc?window=0"})
    assert "window='0': expected a whole number from 1 to 1000" in str(raised.value)
    assert "expected smpp(s)://SYSTEM_ID:PASSWORD@HOST" in str(raised.value)
