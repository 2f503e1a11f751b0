r"""Place an order, follow it on the gateway's event stream until it fills or is cancelled.

    python examples/follow_order.py --url http://127.0.0.1:8000 --key gw_… \\
        --account upbit-demo --symbol KRW-BTC --side BUY --quantity 0.001 --price 95000000

Prints each fill as it comes and the order's final state. The stream is opened at the log's
latest event *before* the order is placed, so nothing about the order can be missed, and the
client resumes after the last event it received if the connection breaks. With
``--cancel-after S`` an order still open after S seconds is cancelled (and followed until the
cancel is final).
"""

from __future__ import annotations

import argparse
import os
import sys
import threading
from decimal import Decimal

from gateway_client import GatewayClient

FINAL = ("FILLED", "CANCELLED", "REJECTED", "EXPIRED")


def main(argv: list[str] | None = None) -> int:
    """Run the strategy; return the exit status (0: the order reached its end)."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--url", default=os.environ.get("GATEWAY_URL", "http://127.0.0.1:8000"))
    parser.add_argument("--key", default=os.environ.get("GATEWAY_API_KEY"), help="gw_… API key")
    parser.add_argument("--account", required=True, help="account id or name")
    parser.add_argument("--symbol", required=True)
    parser.add_argument("--side", choices=["BUY", "SELL"], default="BUY")
    parser.add_argument("--quantity", type=Decimal, required=True)
    parser.add_argument("--price", type=Decimal, help="limit price (omit for a market order)")
    parser.add_argument("--cancel-after", type=float, help="cancel if still open after S seconds")
    parser.add_argument("--timeout", type=float, default=120.0, help="give up after S seconds")
    args = parser.parse_args(argv)
    if not args.key:
        parser.error("--key (or GATEWAY_API_KEY) is required")

    with GatewayClient(args.url, args.key) as client:
        account = next(
            (a for a in client.accounts() if str(a.id) == args.account or a.name == args.account),
            None,
        )
        if account is None:
            print(f"no account {args.account!r} for this key", file=sys.stderr)
            return 2
        # Where the log is now: the stream starts here, so every event of the order follows.
        start = client.latest_event_id()
        order = client.place_order(
            account.id, args.symbol, args.side, args.quantity, limit_price=args.price
        )
        print(f"placed {order.id} {order.side} {order.quantity} {order.symbol}: {order.status}")
        done = threading.Event()
        timer = None
        if args.cancel_after is not None:

            def cancel() -> None:
                if not done.is_set():
                    with GatewayClient(args.url, args.key) as other:
                        state = other.cancel_order(order.id)
                        print(f"cancel asked: {state.status}")

            timer = threading.Timer(args.cancel_after, cancel)
            timer.start()
        giving_up = threading.Timer(args.timeout, done.set)
        giving_up.start()
        final = None
        try:
            for event in client.events(after=start, stop=done.is_set):
                if event.order_id != order.id:
                    continue
                if event.fill is not None:
                    print(f"fill: {event.fill.quantity} @ {event.fill.price}")
                print(f"event {event.id}: {event.type} -> {event.order.status}")
                if event.order.status in FINAL:
                    final = event.order
                    break
        finally:
            done.set()
            giving_up.cancel()
            if timer is not None:
                timer.cancel()
        if final is None:
            print("gave up waiting", file=sys.stderr)
            return 1
        print(
            f"final: {final.status}, filled {final.filled_quantity}"
            + (f" at {final.average_fill_price}" if final.average_fill_price else "")
        )
        return 0


if __name__ == "__main__":
    sys.exit(main())
