"""The `hookd` command line: run, check, render, send, replay, status, schema."""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TextIO

import orjson

from hookd import __version__
from hookd.cli.selection import Selection
from hookd.config import Config, host_port
from hookd.config.durations import parse_duration
from hookd.delivery.retries import ErrorKind
from hookd.errors import EX_CONFIG, ConfigError, DecodeError, RenderError, SpecError
from hookd.events.catalogue import events_schema
from hookd.events.decode import decode_event, make_meta
from hookd.kafka.outcomes import outcomes_schema
from hookd.pipeline.runtime import Runtime, default_config_path, load_config
from hookd.telemetry.redact import Redactor


def _listen(value: str) -> str:
    try:
        return host_port(value)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _seconds(value: str) -> float:
    try:
        seconds = float(value)
    except ValueError:
        try:
            seconds = parse_duration(value)
        except SpecError as exc:
            raise argparse.ArgumentTypeError(exc.message) from None
    if seconds <= 0:
        raise argparse.ArgumentTypeError(f"must be more than zero, got {value!r}")
    return seconds


def _positive(value: str) -> int:
    try:
        number = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {value!r}") from None
    if number <= 0:
        raise argparse.ArgumentTypeError(f"must be more than zero, got {value!r}")
    return number


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="hookd", description="Webhook dispatcher for "
                                     "contact-center events: Kafka in, signed HTTP out.")
    parser.add_argument("--version", action="version", version=f"hookd {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    cfg_help = "main config file (default: $HOOKD_CONFIG, else /etc/hookd/hookd.yaml)"

    run = sub.add_parser("run", help="run the daemon")
    run.add_argument("-c", "--config", help=cfg_help)
    run.add_argument("--health-listen", type=_listen, metavar="HOST:PORT",
                     help="serve health here instead of at health.listen: one config for "
                          "several processes on one host (see hookd@.service)")

    check = sub.add_parser(
        "check", help="validate the configuration and list its hooks",
        epilog=f"exit status: 0 the config is valid (and, with --connect, every check passed); "
               f"{EX_CONFIG} (EX_CONFIG, as from `hookd run`) the config is invalid, one line "
               f"per error on stderr (FILE:LINE: path: message); 1 with --connect, the config "
               f"is valid but a check failed (a broker unreachable, a topic missing, an "
               f"endpoint not allowed): something outside the config, which may pass later")
    check.add_argument("-c", "--config", help=cfg_help)
    check.add_argument("--connect", action="store_true",
                       help="also connect: brokers, topics, consumer groups, and whether each "
                            "hook endpoint resolves to an allowed address")
    check.add_argument("--timeout", type=_seconds, default=5.0, metavar="DURATION",
                       help="with --connect: longest wait for each answer (default 5s)")

    render = sub.add_parser("render", help="print the request(s) an event would cause")
    render.add_argument("-c", "--config", help=cfg_help)
    render.add_argument("--event", required=True, help="file holding one event (JSON object)")
    render.add_argument("--hook", help="only this hook")
    render.add_argument("--json", action="store_true", help="one JSON object per request")
    render.add_argument("--show-secrets", action="store_true",
                        help="print credentials in full (by default each shows its first "
                             "4 characters and …(redacted))")

    send = sub.add_parser(
        "send", help="send one hook's request for an event, for real, and show the answer",
        epilog="exit status: 0 delivered; 1 the daemon would retry (5xx, 408, 425, 429, "
               "no answer); 2 it would fail (dead-letter), the hook would be disabled by a "
               "410, or nothing was sent (no such hook, no match, a render error, not "
               f"confirmed); {EX_CONFIG} the config is invalid")
    send.add_argument("-c", "--config", help=cfg_help)
    send.add_argument("--hook", required=True, help="the hook whose request is sent")
    send.add_argument("--event", required=True, help="file holding one event (JSON object)")
    send.add_argument("--yes", action="store_true",
                      help="send without asking (needed when not on a terminal)")

    replay = sub.add_parser(
        "replay", help="move the selected dead letters back for delivery",
        description="Move the dead letters selected (all, without a selection option) back "
                    "for delivery, each once: a letter moved by an earlier replay is not "
                    "moved again, also after a replay was interrupted. Each option may be "
                    "repeated; a letter is selected when it matches every option given.",
        epilog="T is ISO-8601 (2026-12-07T14:00, UTC unless it names its zone, or a date) "
               "or a duration back from now (2h, 90m, 1d); compared with the letter's last "
               "attempt, --since inclusive, --until exclusive. exit status: 0 done; 1 an "
               f"unknown --hook, or Kafka refused (what was moved stays moved); {EX_CONFIG} "
               "the config is invalid; 2 a bad option")
    replay.add_argument("-c", "--config", help=cfg_help)
    replay.add_argument("--hook", action="append", metavar="ID",
                        help="only dead letters of this hook")
    replay.add_argument("--since", metavar="T", help="last attempt at or after T")
    replay.add_argument("--until", metavar="T", help="last attempt before T")
    replay.add_argument("--error-kind", action="append", metavar="KIND",
                        help="error.kind: " + ", ".join(k.value for k in ErrorKind)
                             + " (or a comma list)")
    replay.add_argument("--status", action="append", metavar="N",
                        help="the HTTP status of the last attempt: 503, or a class: 5xx "
                             "(or a comma list)")
    replay.add_argument("--event-id", action="append", metavar="ID",
                        help="only the dead letters of this event")
    replay.add_argument("--limit", type=_positive, metavar="N",
                        help="move at most this many")
    replay.add_argument("--dry-run", action="store_true",
                        help="count what would be moved, by hook, kind and status, with the "
                             "time span of their last attempts; move nothing")

    status = sub.add_parser("status", help="the running daemon's hooks: state, deliveries, "
                            "last error (read from its health listener)")
    status.add_argument("-c", "--config", help=cfg_help + "; only health.listen is read")
    status.add_argument("--health-listen", type=_listen, metavar="HOST:PORT",
                        help="ask the daemon listening here instead of at health.listen")
    status.add_argument("--json", action="store_true", help="one JSON document")
    status.add_argument("--timeout", type=_seconds, default=5.0, metavar="DURATION",
                        help="longest wait for the answer (default 5s)")

    schema = sub.add_parser("schema", help="print a JSON Schema")
    schema.add_argument("what", choices=["config", "events", "outcomes"])
    schema.add_argument("--markdown", action="store_true", help="config: the reference page "
                        "instead (every setting, its default, reload or restart), as in "
                        "docs/configuration.md")
    return parser


def _load(path: str | None, err: TextIO) -> Runtime | None:
    try:
        return load_config(path or default_config_path())
    except ConfigError as exc:
        for issue in exc.issues:
            print(issue, file=err)
        print(f"{len(exc.issues)} error(s)", file=err)
        return None


def cmd_check(path: str | None, out: TextIO, err: TextIO, connect: bool = False,
              timeout: float = 5.0) -> int:
    runtime = _load(path, err)
    if runtime is None:
        return EX_CONFIG
    redact = Redactor(runtime.secrets)
    rows = [("ID", "EVENT", "METHOD", "URL", "ENABLED")]
    rows += [(h.id, ",".join(h.config.event), h.config.request.method,
              redact(h.config.request.url), "yes" if h.config.enabled else "no")
             for h in runtime.hooks]
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]) - 1)]
    for row in rows:
        print("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=False)) + "  " + row[-1],
              file=out)
    raw = [h.id for h in runtime.hooks if h.url.raw]
    if raw:
        print("not encoded: the url of " + ", ".join(raw) + " uses |url_raw (that value must "
              "come from trusted config, never from events)", file=out)
    print(f"ok: {len(runtime.hooks)} hook(s) from {len(runtime.files)} file(s)", file=out)
    if connect:
        from hookd.cli.doctor import check_connect

        return check_connect(runtime, timeout, out)
    return 0


def cmd_render(path: str | None, event_file: str, hook_id: str | None, as_json: bool,
               out: TextIO, err: TextIO, show_secrets: bool = False) -> int:
    runtime = _load(path, err)
    if runtime is None:
        return EX_CONFIG
    try:
        raw = Path(event_file).read_bytes()
        event = decode_event(raw, make_meta("render", 0, 0, None, None, None),
                             runtime.config.events.name_field)
    except (OSError, DecodeError) as exc:
        print(f"{event_file}: {exc}", file=err)
        return 1
    hooks = runtime.index.match(event.name, event.payload)
    if hook_id is not None:
        if runtime.hook(hook_id) is None:
            print(f"no hook {hook_id!r}", file=err)
            return 1
        hooks = [h for h in hooks if h.id == hook_id]
    if not hooks:
        print(f"no enabled hook matches event {event.name!r}", file=err)
        return 1
    status = 0
    now = int(time.time())
    redactor = Redactor(runtime.secrets, keep=4)
    mask: Callable[[str], str] = (lambda text: text) if show_secrets else redactor
    for hook in hooks:
        try:
            req = hook.render(event)
        except RenderError as exc:
            print(f"{hook.id}: render error: {mask(str(exc))}", file=err)
            status = 1
            continue
        headers = req.signed_headers(hook.signer, now)
        if hook.config.auth is not None and hook.config.auth.type == "oauth2":
            headers["authorization"] = "Bearer <token from oauth2 token_url at send time>"
        url = mask(req.url)
        headers = {name: mask(value) for name, value in headers.items()}
        body = mask(req.body.decode("utf-8", errors="replace"))
        if as_json:
            print(json.dumps({"hook": hook.id, "method": req.method, "url": url,
                              "headers": headers, "body": body}, ensure_ascii=False), file=out)
        else:
            print(f"# hook {hook.id}", file=out)
            print(f"{req.method} {url}", file=out)
            for name, value in headers.items():
                print(f"{name}: {value}", file=out)
            print(f"\n{body}\n" if body else "", file=out)
    return status


def cmd_replay(path: str | None, selection: Selection, limit: int | None, dry_run: bool,
               out: TextIO, err: TextIO) -> int:
    import asyncio

    from aiokafka.errors import KafkaError

    from hookd.cli.replay import ReplayStopped, replay

    runtime = _load(path, err)
    if runtime is None:
        return EX_CONFIG
    unknown = sorted(h for h in selection.hooks if runtime.hook(h) is None)
    if unknown:
        print(f"no hook {', '.join(map(repr, unknown))}", file=err)
        return 1
    try:
        tally = asyncio.run(replay(runtime, selection, limit, dry_run, out, err))
    except (ReplayStopped, KafkaError, RuntimeError) as exc:
        print(f"replay stopped: {exc}", file=err)
        return 1
    tally.print(dry_run, out)
    return 0


def cmd_schema(what: str, out: TextIO, markdown: bool = False) -> int:
    if markdown and what == "config":
        from hookd.config.reference import markdown as reference

        out.write(reference())
        return 0
    schema = (Config.model_json_schema() if what == "config" else
              events_schema() if what == "events" else outcomes_schema())
    out.write(orjson.dumps(schema, option=orjson.OPT_INDENT_2).decode() + "\n")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    out, err = sys.stdout, sys.stderr
    if args.command == "check":
        return cmd_check(args.config, out, err, args.connect, args.timeout)
    if args.command == "render":
        return cmd_render(args.config, args.event, args.hook, args.json, out, err,
                          args.show_secrets)
    if args.command == "schema":
        return cmd_schema(args.what, out, args.markdown)
    if args.command == "send":
        from hookd.cli.send import cmd_send

        return cmd_send(_load(args.config, err), args.hook, args.event, args.yes, out, err,
                        input if sys.stdin.isatty() and sys.stdout.isatty() else None)
    if args.command == "replay":
        try:
            selection = Selection.from_args(args)
        except ValueError as exc:
            parser.error(f"replay: {exc}")  # exits 2, as a bad option does
        return cmd_replay(args.config, selection, args.limit, args.dry_run, out, err)
    if args.command == "status":
        from hookd.cli.status import cmd_status

        return cmd_status(args.config or default_config_path(), args.health_listen, args.json,
                          out, err, args.timeout, explicit=args.config is not None)
    if args.command == "run":
        from hookd.service.process import run_daemon

        return run_daemon(args.config or default_config_path(), args.health_listen)
    raise AssertionError(args.command)  # pragma: no cover
