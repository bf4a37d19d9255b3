"""``sagebridge`` commands: run, sandbox, demo, validate, dlt, ledger, tenant, xref, asyncapi."""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, NoReturn, TextIO

from service.config import load_settings
from service.errors import StartupError, ToolError
from service.ops import gc as gctuning
from service.tenants import TenantDirectory, TenantKey, known_secrets, parse_tenant_key


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    try:
        code: int = args.handler(args)
    except StartupError as exc:
        print(f"sagebridge: {exc.what}: {exc}", file=sys.stderr)
        return 2
    except ToolError as exc:
        print(f"sagebridge {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    return code


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="sagebridge",
        description="Kafka -> Sage 100 Contractor Cloud Connector bridge.",
    )
    commands = parser.add_subparsers(dest="command", required=True)

    run = commands.add_parser("run", help="run the service until SIGTERM/SIGINT")
    run.set_defaults(handler=_run)

    sandbox = commands.add_parser("sandbox", help="run the Cloud Connector emulator")
    sandbox.add_argument("--host", default="127.0.0.1")
    sandbox.add_argument("--port", type=int, default=8080)
    sandbox.add_argument("--latency-ms", type=int, default=0)
    sandbox.add_argument(
        "--fail-rate", type=float, default=0.0, help="share of calls answered HTTP 500"
    )
    sandbox.add_argument(
        "--error-rate",
        type=float,
        default=0.0,
        help="share of calls answered with an ERROR envelope",
    )
    sandbox.add_argument(
        "--hang-rate",
        type=float,
        default=0.0,
        help="share of calls that answer only when released (they keep running, and keep "
        "their company occupied, after the client gives up)",
    )
    sandbox.add_argument(
        "--slow-rate", type=float, default=0.0, help="share of calls that take --slow-ms longer"
    )
    sandbox.add_argument("--slow-ms", type=int, default=0, help="extra time of a slow call")
    sandbox.add_argument(
        "--store-then-fail-rate",
        type=float,
        default=0.0,
        help="share of calls that store their records, then answer --store-then-fail-status",
    )
    sandbox.add_argument(
        "--store-then-fail-status",
        type=int,
        choices=(500, 502, 504),
        default=502,
        help="500 (ERROR envelope), 502 or 504 (a proxy's page, no envelope)",
    )
    sandbox.add_argument(
        "--check-fencing",
        action="store_true",
        help="refuse stale X-Fencing-Token values (the real Cloud Connector ignores the header)",
    )
    sandbox.add_argument(
        "--token",
        action="append",
        dest="tokens",
        metavar="T",
        help="accepted Auth-Token; T or T=CUSTOMER/COMPANY (repeatable)",
    )
    sandbox.set_defaults(handler=_sandbox)

    demo = commands.add_parser("demo", help="the whole pipeline on this machine, with a summary")
    demo.add_argument("--events", type=int, default=3000)
    demo.set_defaults(handler=_demo)

    validate = commands.add_parser("validate", help="check JSON-lines events offline")
    validate.add_argument("file", nargs="?", type=Path)
    validate.add_argument(
        "--explain", action="store_true", help="also print the record each valid event becomes"
    )
    validate.set_defaults(handler=_validate)

    _add_dlt(commands)
    _add_ledger(commands)

    tenant = commands.add_parser(
        "tenant",
        help="pause or resume calls to one Sage company, on every replica",
        description="A paused tenant's records wait (no retries used, no dead letters) until "
        "it is resumed; other tenants flow. The pause is kept in Redis and survives restarts.",
    )
    tenant_commands = tenant.add_subparsers(dest="tenant_command", required=True)
    for action, text in (
        ("pause", "every replica stops calling this tenant's Cloud Connector within a second"),
        ("resume", "calls to this tenant start again"),
    ):
        command = tenant_commands.add_parser(action, help=text)
        command.add_argument(
            "tenant",
            type=_tenant_key,
            metavar="CUSTOMER/COMPANY",
            help="a configured tenant, e.g. 1001/ACME",
        )
        command.set_defaults(handler=_tenant_command, action=action)
    status = tenant_commands.add_parser("status", help="list the paused tenants")
    status.set_defaults(handler=_tenant_command, action="status", tenant=None)

    xref = commands.add_parser("xref", help="cross-reference tables of CRM ids (mappings)")
    xref_commands = xref.add_subparsers(dest="xref_command", required=True)
    xref_load = xref_commands.add_parser(
        "load", help="check a CSV as contracts/xref/TABLE.csv against the mappings, install it"
    )
    xref_load.add_argument("table", help="the table's name, e.g. salesforce_accounts")
    xref_load.add_argument("file", type=Path, help="CSV: header row, CRM id in the first column")
    xref_load.set_defaults(handler=_xref_load)

    asyncapi = commands.add_parser(
        "asyncapi", help="print the AsyncAPI document of the channels (for these settings)"
    )
    asyncapi.add_argument("--out", type=Path, default=None, help="write it to FILE instead")
    asyncapi.set_defaults(handler=_asyncapi)
    return parser


def _add_dlt(commands: Any) -> None:
    dlt = commands.add_parser("dlt", help="dead-letter tools")
    dlt_commands = dlt.add_subparsers(
        dest="dlt_command", required=True, parser_class=_OneLineErrors
    )
    listing = dlt_commands.add_parser(
        "list",
        help="counts by stage, tenant and type, then the newest letters (reads the topic "
        "without consuming it for anyone)",
    )
    _letter_filters(listing)
    listing.add_argument("--type", default=None, metavar="T", help="only events of this type")
    listing.add_argument(
        "--limit", type=_count, default=20, metavar="N", help="newest N letters (default 20)"
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
        "--until", type=_time, default=None, metavar="TIME", help="only letters before TIME"
    )
    replay.add_argument("--limit", type=_count, default=None, metavar="N", help="at most N")
    replay.add_argument(
        "--to", dest="to_topic", default=None, metavar="TOPIC", help="instead of their topic"
    )
    replay.add_argument("--dry-run", action="store_true", help="only list what would be replayed")
    replay.set_defaults(handler=_dlt_replay)


def _add_ledger(commands: Any) -> None:
    ledger = commands.add_parser("ledger", help="what the ledger knows; resolve unknown outcomes")
    ledger_commands = ledger.add_subparsers(
        dest="ledger_command", required=True, parser_class=_OneLineErrors
    )
    show = ledger_commands.add_parser(
        "show", help="state (in_doubt, delivered, none), attempts, when"
    )
    show.add_argument("event_id", metavar="EVENT_ID")
    _tenant_option(show)
    show.set_defaults(handler=_ledger_show)
    resolve = ledger_commands.add_parser(
        "resolve", help="the verdict on an unknown_outcome, after checking Sage"
    )
    resolve.add_argument("event_id", metavar="EVENT_ID")
    _tenant_option(resolve)
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


def _run(args: argparse.Namespace) -> int:
    from service.app import create_app
    from service.ops import logs

    settings = load_settings()
    tenants = TenantDirectory.from_settings(settings)
    logs.configure(settings.log_level, secrets=known_secrets(settings, tenants))

    async def serve() -> None:
        app, _ = create_app(settings, tenants)  # aiokafka clients must be built inside the loop
        collecting = asyncio.create_task(gctuning.collect_periodically(), name="sagebridge-gc")
        try:
            await app.run()
        finally:
            collecting.cancel()

    gctuning.tune()
    with asyncio.Runner(loop_factory=_fast_loop_factory()) as runner:
        runner.run(serve())
    return 0


def _fast_loop_factory() -> Callable[[], asyncio.AbstractEventLoop] | None:
    """uvloop where it is installed (Linux, macOS): the same asyncio API with a faster loop."""
    try:
        import uvloop
    except ImportError:
        return None
    return uvloop.new_event_loop


def _sandbox(args: argparse.Namespace) -> int:
    from service.dev.sandbox import SandboxOptions, serve

    serve(
        SandboxOptions(
            host=args.host,
            port=args.port,
            latency_ms=args.latency_ms,
            fail_rate=args.fail_rate,
            error_rate=args.error_rate,
            hang_rate=args.hang_rate,
            slow_rate=args.slow_rate,
            slow_ms=args.slow_ms,
            store_then_fail_rate=args.store_then_fail_rate,
            store_then_fail_status=args.store_then_fail_status,
            check_fencing=args.check_fencing,
            tokens=tuple(args.tokens or ("sandbox-token",)),
        )
    )
    return 0


def _demo(args: argparse.Namespace) -> int:
    from service.dev.demo import run_demo

    return run_demo(events=args.events)


def _validate(args: argparse.Namespace) -> int:
    from service.tools.validate import validate_lines

    settings = load_settings()
    if args.file is None:
        return validate_lines(sys.stdin, sys.stdout, settings, args.explain)
    try:
        stream = args.file.open(encoding="utf-8", errors="surrogateescape")
    except OSError as exc:
        print(f"sagebridge validate: cannot read {args.file}: {exc.strerror}", file=sys.stderr)
        return 2
    with stream:
        return validate_lines(stream, sys.stdout, settings, args.explain)


def _xref_load(args: argparse.Namespace) -> int:
    from service.tools.xref import load_table

    if not args.table.isidentifier():
        print(f"sagebridge xref load: bad table name {args.table!r}", file=sys.stderr)
        return 2
    try:
        return load_table(load_settings().contracts_dir, args.table, args.file, sys.stdout)
    except OSError as exc:
        print(f"sagebridge xref load: {exc.filename}: {exc.strerror}", file=sys.stderr)
        return 2


class _OneLineErrors(argparse.ArgumentParser):
    """The operators' commands end a bad argument with one line, not a usage block."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: {message}\n")


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
        "--tenant", type=_tenant_key, default=None, metavar="C/CO", help="only this tenant"
    )
    command.add_argument(
        "--since", type=_time, default=None, metavar="TIME", help="only letters from TIME on"
    )


def _tenant_option(command: argparse.ArgumentParser) -> None:
    command.add_argument(
        "--tenant",
        type=_tenant_key,
        default=None,
        metavar="C/CO",
        help="CUSTOMER/COMPANY (default: the default tenant)",
    )


def _time(text: str) -> object:
    from service.tools.dead_letters import parse_time

    try:
        return parse_time(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _count(text: str) -> int:
    if not text.isdigit():
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}")
    return int(text)


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


def _tenant_key(text: str) -> TenantKey:
    try:
        return parse_tenant_key(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _tenant_command(args: argparse.Namespace) -> int:
    from service.tools.tenant import tenant_command

    return asyncio.run(
        tenant_command(load_settings(), args.action, args.tenant, sys.stdout, sys.stderr)
    )


def _asyncapi(args: argparse.Namespace) -> int:
    from service.tools.asyncapi import build_document, render

    text = render(build_document(load_settings()))
    if args.out is None:
        sys.stdout.write(text)
    else:
        args.out.write_text(text, encoding="utf-8")
    return 0


def _write(stream: TextIO, line: str) -> None:
    stream.write(line + "\n")


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
