"""``sagebridge`` commands: run, sandbox, demo, validate, dlt, ledger, tenant, xref, crm,
asyncapi, console."""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TextIO

from service.config import load_settings
from service.errors import StartupError, ToolError
from service.ops import gc as gctuning
from service.tenants import TenantDirectory, known_secrets
from service.tools.arguments import tenant_key
from service.tools.dlt_command import add_dlt
from service.tools.ledger_command import add_ledger


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
    sandbox.add_argument("--tls-cert", type=Path, help="serve HTTPS with this PEM certificate")
    sandbox.add_argument("--tls-key", type=Path, help="the certificate's key, if not in it")
    sandbox.add_argument(
        "--tls-client-ca", type=Path, help="require client certificates signed by this CA"
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

    add_dlt(commands)
    add_ledger(commands)

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
            type=tenant_key,
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

    _add_crm(commands)

    asyncapi = commands.add_parser(
        "asyncapi", help="print the AsyncAPI document of the channels (for these settings)"
    )
    asyncapi.add_argument("--out", type=Path, default=None, help="write it to FILE instead")
    asyncapi.set_defaults(handler=_asyncapi)

    console = commands.add_parser(
        "console", help="serve the operators' web console (SAGEBRIDGE_CONSOLE_* settings)"
    )
    console.set_defaults(handler=_console)
    return parser


def _add_crm(commands: Any) -> None:
    crm = commands.add_parser("crm", help="CRM record images (mappings with `image:`)")
    crm_commands = crm.add_subparsers(dest="crm_command", required=True)
    crm_seed = crm_commands.add_parser(
        "seed",
        help="load a CRM export (Data Loader CSV or JSON lines) as record images; sends nothing",
    )
    crm_seed.add_argument("mapping", help="a mapping with images, e.g. salesforce_contact")
    crm_seed.add_argument("file", type=Path, help="CSV (header of API field names) or .jsonl")
    crm_seed.add_argument(
        "--replace",
        action="store_true",
        help="overwrite existing images (default: keep them, they may hold later changes)",
    )
    crm_seed.set_defaults(handler=_crm_seed)


def _run(args: argparse.Namespace) -> int:
    from service.app import create_app
    from service.dev.testhooks import sigkill_on_marker  # off unless its variable is set
    from service.ops import logs

    settings = load_settings()
    tenants = TenantDirectory.from_settings(settings)
    logs.configure(settings.log_level, secrets=known_secrets(settings, tenants))

    async def serve() -> None:
        # aiokafka clients must be built inside the loop
        app, _ = create_app(settings, tenants, wrap_intake=sigkill_on_marker)
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
            tls_cert=args.tls_cert,
            tls_key=args.tls_key,
            tls_client_ca=args.tls_client_ca,
        )
    )
    return 0


def _demo(args: argparse.Namespace) -> int:
    from service.dev.demo import run_demo

    return run_demo(events=args.events)


def _validate(args: argparse.Namespace) -> int:
    from service.tools.stored_images import stored_images
    from service.tools.validate import validate_lines

    settings = load_settings()
    images = stored_images(settings)
    if args.file is None:
        return validate_lines(sys.stdin, sys.stdout, settings, args.explain, images)
    try:
        stream = args.file.open(encoding="utf-8", errors="surrogateescape")
    except OSError as exc:
        print(f"sagebridge validate: cannot read {args.file}: {exc.strerror}", file=sys.stderr)
        return 2
    with stream:
        return validate_lines(stream, sys.stdout, settings, args.explain, images)


def _crm_seed(args: argparse.Namespace) -> int:
    from service.tools.crm_seed import seed

    return asyncio.run(
        seed(
            load_settings(),
            args.mapping,
            args.file,
            replace=args.replace,
            out=sys.stdout,
            progress_to=sys.stderr,
        )
    )


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


def _console(args: argparse.Namespace) -> int:
    from service.console.app import serve

    serve()
    return 0


def _write(stream: TextIO, line: str) -> None:
    stream.write(line + "\n")


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
