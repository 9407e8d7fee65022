"""One FastStream broker (one robust aio-pika connection) per publisher or consumer.

Publishers and consumers get separate connections, as RabbitMQ advises: when
the broker throttles publishers (flow control, memory alarm) it blocks their
connection, and a consumer sharing it could no longer ack.
"""

from __future__ import annotations

import logging
from urllib.parse import parse_qs, urlencode, urlsplit, urlunsplit

from faststream.rabbit import Channel, RabbitBroker

log = logging.getLogger("smsgw.rabbit")


def make_broker(url: str, *, connection_name: str, reconnect_interval: float) -> RabbitBroker:
    return RabbitBroker(
        _named(url, connection_name),
        # Every publish waits for the broker's confirm; an unroutable mandatory
        # message raises instead of being handed to a return callback.
        default_channel=Channel(publisher_confirms=True, on_return_raises=True),
        reconnect_interval=reconnect_interval,
        app_id="smsgw",
        # Handlers take the raw message (they ack themselves): no DI, no pydantic.
        apply_types=False,
        # Our consumer drains its own in-flight handlers with the caller's timeout.
        graceful_timeout=None,
        logger=log,
        log_level=logging.DEBUG,  # "Received"/"Processed" for every message
    )


def _named(url: str, connection_name: str) -> str:
    # aiormq takes the client-provided connection name from the URL's `name`
    # (FastStream's client_properties do not reach it); it shows in the
    # management UI and `rabbitmqctl list_connections client_properties`.
    parts = urlsplit(url)
    if "name" in parse_qs(parts.query):
        return url
    query = "&".join(q for q in (parts.query, urlencode({"name": connection_name})) if q)
    return urlunsplit(parts._replace(query=query))
