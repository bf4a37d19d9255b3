"""``sagebridge dlt list`` and ``dlt replay``: their arguments, and the calls they make."""

from __future__ import annotations

import argparse
import asyncio
from typing import Any

from service.config import load_settings
from service.tools.arguments import OneLineErrors, count, tenant_key, time_arg


def add_dlt(commands: Any) -> None:
    dlt = commands.add_parser("dlt", help="dead-letter tools")
    dlt_commands = dlt.add_subparsers(dest="dlt_command", required=True, parser_class=OneLineErrors)
    listing = dlt_commands.add_parser(
        "list",
        help="counts by stage, tenant and type, then the newest letters (reads the topic "
        "without consuming it for anyone)",
    )
    _letter_filters(listing)
    listing.add_argument("--type", default=None, metavar="T", help="only events of this type")
    listing.add_argument(
        "--limit", type=count, default=20, metavar="N", help="newest N letters (default 20)"
    )
    listing.add_argument("--json", action="store_true", help="one JSON object, for scripts")
    listing.set_defaults(handler=_dlt_list)
    replay = dlt_commands.add_parser(
        "replay",
        help="re-publish matching dead letters to their original topic; each at most once",
    )
    _letter_filters(replay)
    replay.add_argument(
        "--event-id",
        action="append",
        dest="event_ids",
        default=[],
        metavar="ID",
        help="only this event (repeatable)",
    )
    replay.add_argument(
        "--until", type=time_arg, default=None, metavar="TIME", help="only letters before TIME"
    )
    replay.add_argument("--limit", type=count, default=None, metavar="N", help="at most N")
    replay.add_argument(
        "--to", dest="to_topic", default=None, metavar="TOPIC", help="instead of their topic"
    )
    replay.add_argument("--dry-run", action="store_true", help="only list what would be replayed")
    replay.set_defaults(handler=_dlt_replay)


def _letter_filters(command: argparse.ArgumentParser) -> None:
    command.add_argument(
        "--stage",
        action="append",
        dest="stages",
        default=[],
        metavar="S",
        help="only this stage (repeatable)",
    )
    command.add_argument(
        "--tenant", type=tenant_key, default=None, metavar="C/CO", help="only this tenant"
    )
    command.add_argument(
        "--since", type=time_arg, default=None, metavar="TIME", help="only letters from TIME on"
    )


def _letter_filter(args: argparse.Namespace) -> Any:
    from service.tools.dead_letters import LetterFilter

    return LetterFilter(
        stages=frozenset(args.stages),
        tenant=args.tenant,
        type=getattr(args, "type", None),
        event_ids=frozenset(getattr(args, "event_ids", ())),
        since=args.since,
        until=getattr(args, "until", None),
    )


def _dlt_list(args: argparse.Namespace) -> int:
    from service.tools.dlt_list import list_dead_letters

    settings = load_settings()
    return asyncio.run(
        list_dead_letters(settings, _letter_filter(args), limit=args.limit, as_json=args.json)
    )


def _dlt_replay(args: argparse.Namespace) -> int:
    from service.tools.replay import replay_dead_letters

    settings = load_settings()
    return asyncio.run(
        replay_dead_letters(
            settings,
            letters=_letter_filter(args),
            limit=args.limit,
            to_topic=args.to_topic,
            dry_run=args.dry_run,
        )
    )
