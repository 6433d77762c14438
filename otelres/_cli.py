"""The ``otelres`` command (also ``python -m otelres``).

Never imported by ``import otelres``. Each subcommand lives in a module that provides
``add_parser(subparsers)``; the parser it adds sets ``func`` (called with the parsed
arguments, returning the exit status). Modules are listed in :data:`COMMAND_MODULES`.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable, Mapping, Sequence
from typing import Any, NoReturn

#: Modules that contribute subcommands, in ``--help`` order.
COMMAND_MODULES: tuple[str, ...] = (
    "otelres._cli", "otelres.health._cli", "otelres.backup._cli", "otelres._demo",
)

EXIT_CONFIG_ERROR = 2


class Parser(argparse.ArgumentParser):
    """An ArgumentParser whose usage errors exit with ``usage_status`` (2 unless a command sets it)."""

    usage_status = 2
    commands: Mapping[str, argparse.ArgumentParser] = {}
    """Subcommand name -> its parser (set by :func:`build_parser`)."""

    def error(self, message: str) -> NoReturn:
        self.print_usage(sys.stderr)
        self.exit(self.usage_status, f"{self.prog}: error: {message}\n")


def port_number(text: str) -> int:
    """argparse type for a TCP port (0 picks a free one), naming the bad value."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a port number, got {text!r}") from None
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"expected a port between 0 and 65535, got {text!r}")
    return value


def seconds(minimum: float = 0.0, *, why: str = "") -> Callable[[str], float]:
    """argparse type for a number of seconds: above 0 by default, else at least *minimum*.

    *why* ends the message (``" to show every phase"``).
    """

    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a number of seconds, got {text!r}") from None
        # Written so that NaN fails too.
        if not (value >= minimum if minimum > 0 else value > 0):
            bound = f"at least {minimum:g} seconds" if minimum > 0 else "a number of seconds > 0"
            raise argparse.ArgumentTypeError(f"expected {bound}{why}, got {text!r}")
        return value

    return parse


def add_parser(subparsers: Any) -> None:
    """``otelres config check [PATH]``."""
    config = subparsers.add_parser("config", help="inspect and validate config.toml")
    config_sub = config.add_subparsers(dest="config_command", required=True, parser_class=Parser)
    check = config_sub.add_parser(
        "check",
        help="validate a configuration and print the effective settings",
        description=(
            "Validate PATH (default: $OTELRES_CONFIG, else ./config.toml) with the OTEL_* "
            "environment variables applied, and print the effective configuration as JSON. "
            "Exit status 0 when valid, 2 with every problem listed when not."
        ),
    )
    check.add_argument("path", nargs="?", help="configuration file to check")
    check.set_defaults(func=_config_check)


def _config_check(args: argparse.Namespace) -> int:
    from otelres.config import ConfigError, load_config

    try:
        config = load_config(args.path)
    except ConfigError as exc:
        for problem in exc.problems:
            print(f"error: {problem}", file=sys.stderr)
        return EXIT_CONFIG_ERROR
    print(f"# {config.source or 'no configuration file: defaults'}", file=sys.stderr)
    # Names only: values such as OTEL_EXPORTER_OTLP_HEADERS can carry credentials.
    variables = sorted(
        name for name, value in os.environ.items()
        if value and (name.startswith("OTEL_") or name == "OTELRES_SPAN_MODE")
    )
    if variables:
        print(f"# environment (wins over the file): {', '.join(variables)}", file=sys.stderr)
    print(json.dumps(config.to_dict(), indent=2, sort_keys=True))
    return 0


def build_parser() -> Parser:
    import importlib

    from otelres._version import __version__

    parser = Parser(
        prog="otelres",
        description="OpenTelemetry-native resilience and observability toolkit.",
    )
    parser.add_argument("--version", action="version", version=f"otelres {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=Parser)
    for name in COMMAND_MODULES:
        importlib.import_module(name).add_parser(subparsers)
    parser.commands = subparsers.choices
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line and return its exit status."""
    parser = build_parser()
    args, extras = parser.parse_known_args(argv)
    if extras:  # reported by the subcommand's parser, so that its usage_status applies
        owner = parser.commands.get(getattr(args, "command", None) or "", parser)
        owner.error(f"unrecognized arguments: {' '.join(extras)}")
    func = getattr(args, "func", None)
    if func is None:
        parser.print_help()
        return 0
    try:
        return int(func(args))
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
