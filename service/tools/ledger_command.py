"""``sagebridge ledger show`` and ``ledger resolve``: their arguments, and the calls they make."""

from __future__ import annotations

import argparse
import asyncio
from typing import Any

from service.config import load_settings
from service.tools.arguments import OneLineErrors, tenant_option


def add_ledger(commands: Any) -> None:
    ledger = commands.add_parser("ledger", help="what the ledger knows; resolve unknown outcomes")
    ledger_commands = ledger.add_subparsers(
        dest="ledger_command", required=True, parser_class=OneLineErrors
    )
    show = ledger_commands.add_parser(
        "show", help="state (in_doubt, delivered, none), attempts, when"
    )
    show.add_argument("event_id", metavar="EVENT_ID")
    tenant_option(show)
    show.set_defaults(handler=_ledger_show)
    resolve = ledger_commands.add_parser(
        "resolve", help="the verdict on an unknown_outcome, after checking Sage"
    )
    resolve.add_argument("event_id", metavar="EVENT_ID")
    tenant_option(resolve)
    verdict = resolve.add_mutually_exclusive_group(required=True)
    verdict.add_argument(
        "--delivered",
        dest="delivered",
        action="store_true",
        help="Sage has it: a replay is answered SUCCESS without a call",
    )
    verdict.add_argument(
        "--not-delivered",
        dest="delivered",
        action="store_false",
        help="Sage does not have it: clear the intent, so a replay sends it (refused until "
        "SETTLE_AFTER_UNKNOWN_S after the record's last possible attempt)",
    )
    resolve.add_argument(
        "--force",
        action="store_true",
        help="accept --not-delivered before then (the last call may still land in Sage)",
    )
    resolve.set_defaults(handler=_ledger_resolve)


def _ledger_show(args: argparse.Namespace) -> int:
    from service.tools.ledger import show

    return asyncio.run(show(load_settings(), args.event_id, args.tenant))


def _ledger_resolve(args: argparse.Namespace) -> int:
    from service.tools.ledger import resolve

    return asyncio.run(
        resolve(
            load_settings(), args.event_id, args.tenant, delivered=args.delivered, force=args.force
        )
    )
