"""Run the local exchange until interrupted: ``python -m otelres._testing.exchange [--port N]``.

Prints the base URL on the first line, then serves Kraken and Binance REST on 127.0.0.1.
With ``--scenario demo`` it plays :data:`DEMO_SCENARIO` in a loop (healthy, 503 storm,
429 burst, maintenance, recovery).
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading

from otelres._testing.exchange._faults import DEMO_SCENARIO
from otelres._testing.exchange._server import ExchangeServer


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m otelres._testing.exchange",
        description="A local Kraken + Binance REST exchange for ccxt clients.",
    )
    parser.add_argument("--port", type=int, default=0, help="TCP port on 127.0.0.1 (0: any free)")
    parser.add_argument("--scenario", choices=("none", "demo"), default="none",
                        help="fault scenario to play in a loop")
    args = parser.parse_args(argv)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    with ExchangeServer(port=args.port) as server:
        if args.scenario == "demo":
            server.play(DEMO_SCENARIO, loop=True)
        print(server.url, flush=True)
        try:
            stop.wait()
        except KeyboardInterrupt:
            pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
