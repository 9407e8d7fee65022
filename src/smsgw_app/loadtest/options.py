"""`smsgw loadtest`'s options: the flags, their defaults and their checks."""

from __future__ import annotations

import argparse
import math
from dataclasses import dataclass, field

from smsgw_app.loadtest.client import Target

DEFAULT_URL = "http://127.0.0.1:8080"
DEFAULT_TEXT = "Load test message from smsgw"
ROUTE = "/sms/send"


class OptionError(ValueError):
    """A bad option: one line, exit 2."""


@dataclass(frozen=True, slots=True)
class Options:
    url: list[str] = field(default_factory=lambda: [DEFAULT_URL])
    rps: float = 1000.0
    duration: float = 30.0
    concurrency: int = 200
    users: int = 5000
    first_user: int = 1
    hot_share: float = 0.0
    recipients: int = 1
    express_ratio: float = 0.2
    text: str = DEFAULT_TEXT
    timeout: float = 10.0
    seed: int | None = None
    json: bool = False
    wait_delivery: bool = False
    delivery_timeout: float = 120.0

    def check(self) -> None:
        def need(ok: bool, message: str) -> None:
            if not ok:
                raise OptionError(message)

        need(bool(self.url), "--url: at least one")
        for url in self.url:
            Target.parse(url, ROUTE)  # raises ValueError naming the URL
        need(math.isfinite(self.rps) and self.rps >= 0, "--rps must be >= 0 (0: closed loop)")
        need(math.isfinite(self.duration) and self.duration > 0, "--duration must be > 0")
        need(self.concurrency >= 1, "--concurrency must be >= 1")
        need(self.users >= 1, "--users must be >= 1")
        need(self.first_user >= 1, "--first-user must be >= 1")
        need(0.0 <= self.hot_share <= 1.0, "--hot-share must be between 0 and 1")
        need(1 <= self.recipients <= 1000, "--recipients must be between 1 and 1000")
        need(0.0 <= self.express_ratio <= 1.0, "--express-ratio must be between 0 and 1")
        need(bool(self.text), "--text must not be empty")
        need(math.isfinite(self.timeout) and self.timeout > 0, "--timeout must be > 0")
        need(math.isfinite(self.delivery_timeout) and self.delivery_timeout >= 0,
             "--delivery-timeout must be >= 0")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    default = Options()
    parser.add_argument("--url", action="append", default=None, metavar="URL",
                        help=f"gateway base URL, repeatable; connections are spread "
                             f"round-robin (default {DEFAULT_URL})")
    parser.add_argument("--rps", type=float, metavar="R", default=default.rps,
                        help="target request rate, open loop; 0: closed loop, every "
                             "connection back to back (default %(default)g)")
    parser.add_argument("--duration", type=float, metavar="S", default=default.duration,
                        help="seconds of sending (default %(default)g)")
    parser.add_argument("--concurrency", type=int, metavar="C", default=default.concurrency,
                        help="connections (default %(default)d)")
    parser.add_argument("--users", type=int, metavar="U", default=default.users,
                        help="customers first-user .. first-user+users-1 (default %(default)d)")
    parser.add_argument("--first-user", type=int, metavar="F", default=default.first_user,
                        help="the first customer id (default %(default)d)")
    parser.add_argument("--hot-share", type=float, metavar="H", default=default.hot_share,
                        help="share of requests (0-1) from customer first-user; the rest "
                             "uniform over the others (default %(default)g)")
    parser.add_argument("--recipients", type=int, metavar="K", default=default.recipients,
                        help="distinct recipients per request (default %(default)d)")
    parser.add_argument("--express-ratio", type=float, metavar="E", default=default.express_ratio,
                        help="share of express requests (default %(default)g)")
    parser.add_argument("--text", default=default.text,
                        help="the message text (default: a short GSM-7 text)")
    parser.add_argument("--timeout", type=float, metavar="S", default=default.timeout,
                        help="seconds a request may take (default %(default)g)")
    parser.add_argument("--seed", type=int, metavar="N", default=None,
                        help="random seed of the request mix, for a repeatable run")
    parser.add_argument("--json", action="store_true",
                        help="print one JSON document on stdout instead of the report")
    parser.add_argument("--wait-delivery", action="store_true",
                        help="then wait until every accepted recipient is DONE or FAILED "
                             "(reads SMSGW_DATABASE_URL) and report delivery")
    parser.add_argument("--delivery-timeout", type=float, metavar="S",
                        default=default.delivery_timeout,
                        help="seconds to wait for delivery (default %(default)g)")


def options_from(args: argparse.Namespace) -> Options:
    options = Options(
        url=list(args.url or [DEFAULT_URL]), rps=args.rps, duration=args.duration,
        concurrency=args.concurrency, users=args.users, first_user=args.first_user,
        hot_share=args.hot_share, recipients=args.recipients, express_ratio=args.express_ratio,
        text=args.text, timeout=args.timeout, seed=args.seed, json=args.json,
        wait_delivery=args.wait_delivery, delivery_timeout=args.delivery_timeout,
    )
    try:
        options.check()
    except OptionError:
        raise
    except ValueError as exc:
        raise OptionError(str(exc)) from None
    return options
