"""SMPP 3.4: the codec an SMPP operator adapter and its simulator speak, free of I/O.

- `pdu`: the PDUs, their wire form, a reader for a TCP stream, the status table;
- `text`: a message's text as submit_sm parts (GSM-7 or UCS-2, a UDH when split);
- `receipt_text`: what a delivery receipt (a deliver_sm) says became of a message.
"""
