"""SMPP 3.4 operators: a codec free of I/O, the binds and adapter on it, and an SMSC to test with.

The codec, which the adapter and the simulator share:

- `pdu`: the PDUs, their wire form, a reader for a TCP stream, the status table;
- `text`: a message's text as submit_sm parts (GSM-7 or UCS-2, a UDH when split);
- `receipt_text`: what a delivery receipt (a deliver_sm) says became of a message.

On it, with I/O:

- `url`: an operator's smpp(s):// URL and its options (window, binds, source...);
- `session`: one bind kept bound, with its window of submit_sm, enquire_link,
  reconnects and throttling;
- `operator`: the Operator port over an operator's binds (sends, statuses, receipts
  acknowledged once recorded);
- `simulator`: `smsgw operator-sim --smpp`, an SMSC for demos, benchmarks and tests.

docs/operators.md ("SMPP") documents them for operators of the gateway.
"""
