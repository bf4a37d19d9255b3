"""What the operators' commands share on the command line: one-line errors, tenant and time
arguments."""

from __future__ import annotations

import argparse
from typing import NoReturn

from service.tenants import TenantKey, parse_tenant_key


class OneLineErrors(argparse.ArgumentParser):
    """The operators' commands end a bad argument with one line, not a usage block."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: {message}\n")


def tenant_option(command: argparse.ArgumentParser) -> None:
    command.add_argument(
        "--tenant",
        type=tenant_key,
        default=None,
        metavar="C/CO",
        help="CUSTOMER/COMPANY (default: the default tenant)",
    )


def tenant_key(text: str) -> TenantKey:
    try:
        return parse_tenant_key(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def time_arg(text: str) -> object:
    """An ISO 8601 time (UTC without an offset), as the dead-letter filters compare it."""
    from service.tools.dead_letters import parse_time

    try:
        return parse_time(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def count(text: str) -> int:
    if not text.isdigit():
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}")
    return int(text)
