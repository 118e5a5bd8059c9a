"""The `tinbao` command: init, run, chat, db upgrade, keys rotate/retire/status, related reindex."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import shutil
import sys
from pathlib import Path

from bot.config import ConfigError, load_config
from bot.logs import setup_logging
from storage.crypto import DecryptionError, Keyring, KeyringError

EXAMPLE_CONFIG = Path(__file__).parent / "config.example.toml"
log = logging.getLogger("tinbao")


def _config(args):
    return load_config(args.config)


def cmd_init(args) -> int:
    """Create config.toml (from the example), the data folder and the keyring, refusing to overwrite."""
    path = Path(args.config or "config.toml")
    if path.exists():
        print(f"{path} exists; keeping it")
    else:
        shutil.copyfile(EXAMPLE_CONFIG, path)
        provinces = getattr(args, "province", None)
        print(f"wrote {path}" if provinces else
              f"wrote {path}; its [[areas]] are an example: `tinbao areas import --province <code or name> "
              f"--replace` writes your province's official communes and wards, with a police unit for each")
        if provinces:
            cmd_areas_import(argparse.Namespace(config=str(path), province=provinces, all=False, output=None,
                                                replace=True))
    config = load_config(path)
    config.bot.data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    keyring = config.bot.keyring
    if keyring.exists():
        Keyring.load(keyring)  # still worth checking it opens
        print(f"{keyring} exists; keeping it")
    else:
        Keyring.create(keyring)
        print(f"wrote {keyring} (mode 0600). Back it up apart from the database: without it no tip can be read.")
    print("next: `tinbao chat` to try it in this terminal, or TINBAO_TELEGRAM_TOKEN=… tinbao run")
    return 0


def cmd_run(args) -> int:
    """Serve until SIGTERM or SIGINT, then stop cleanly: 0. A config or start problem: one line, 2."""
    from bot import runtime
    config = _config(args)
    setup_logging(config.bot.log_level, secrets=[config.telegram.token.get_secret_value(),
                                                 config.telegram.webhook_secret.get_secret_value()])
    try:
        asyncio.run(runtime.run(config, webhook=True if args.webhook else None, stop_grace=args.stop_within,
                                database_wait=args.wait_for_database))
    except KeyboardInterrupt:
        pass  # Ctrl-C before the bot set up its own signal handling: nothing had started yet
    return 0


def cmd_chat(args) -> int:
    from bot import runtime
    from bot.channels.console import chat
    from handlers.router import TipLine
    config = _config(args)
    setup_logging("WARNING")

    async def main() -> None:
        services = await runtime.open_services(config)
        try:
            await chat(TipLine(services), chat_id=args.name, language=args.language,
                       out_dir=config.bot.data_dir / "chat-out")
        finally:
            await services.db.dispose()
    asyncio.run(main())
    return 0


def cmd_db_upgrade(args) -> int:
    from bot.startup import reach_database
    from storage.migrate import upgrade_sync
    config = _config(args)
    if args.wait_for_database:
        setup_logging("WARNING")  # the lines saying it is being tried again
    asyncio.run(reach_database(config.database_url(), wait=args.wait_for_database))
    upgrade_sync(config.database_url())  # however many run at once, the schema is migrated once (a lock)
    print("database schema is up to date")
    return 0


class Progress:
    """A one-line progress bar on stderr for long operator jobs."""

    def __init__(self, label: str, total: int) -> None:
        self.label, self.total, self.done = label, total, 0

    def advance(self, n: int) -> None:
        self.done += n
        total = max(self.total, self.done)
        filled = int(30 * self.done / total) if total else 30
        sys.stderr.write(f"\r{self.label} [{'#' * filled}{'.' * (30 - filled)}] {self.done}/{total}")
        sys.stderr.flush()

    def finish(self) -> None:
        sys.stderr.write("\n")


def _database(config, job):
    """Run ``job(db)`` once the database answers (before anything changes: nothing does if it cannot)."""
    from bot.startup import reach_database
    from storage.db import Database

    async def main():
        await reach_database(config.database_url())
        db = Database(config.database_url())
        try:
            return await job(db)
        finally:
            await db.dispose()
    return asyncio.run(main())


def cmd_keys_rotate(args) -> int:
    from handlers.operations import keys
    config = _config(args)
    keyring = Keyring.load(config.bot.keyring)
    progress = Progress("re-wrapping data keys", 0)

    def start(total: int) -> None:
        progress.total = total
        progress.advance(0)
    new_id, count = _database(config, lambda db: keys.rotate(db=db, keyring=keyring, batch=args.batch,
                                                             on_total=start, progress=progress.advance))
    progress.finish()
    print(f"key {new_id} is active; {count} data keys re-wrapped. Retire an old key with `tinbao keys retire KEY`.")
    return 0


def cmd_keys_status(args) -> int:
    from handlers.operations import keys
    config = _config(args)
    keyring = Keyring.load(config.bot.keyring)
    counts = _database(config, lambda db: keys.data_keys_by_key(db=db))
    for line in keys.key_states(keyring=keyring, counts=counts):
        print(f"{line.key_id}\t{line.data_keys} data keys\t{line.state}")
    return 0


def cmd_keys_retire(args) -> int:
    """Remove an old key from the keyring, only once no data key needs it."""
    from handlers.operations import keys
    config = _config(args)
    keyring = Keyring.load(config.bot.keyring)
    counts = _database(config, lambda db: keys.data_keys_by_key(db=db))
    keys.retire(keyring=keyring, counts=counts, key_id=args.key_id)
    print(f"key {args.key_id} removed from {keyring.path}")
    return 0


def cmd_related_reindex(args) -> int:
    """A new related-index key and every tip indexed again under it (or, --same-key, under the active one)."""
    from handlers.related.reindex import reindex
    config = _config(args)
    progress = Progress("re-indexing tips", 0)

    def start(total: int) -> None:
        progress.total = total
        progress.advance(0)
    done = _with_services(config, lambda s: reindex(s, new_key=not args.same_key, batch=args.batch,
                                                    on_total=start, progress=progress.advance))
    progress.finish()
    retired = ", ".join(done.retired) or "none"
    print(f"related-index key {done.key_id} is active; {done.tips} tips re-indexed ({done.rows} identifiers); "
          f"old keys removed from the keyring: {retired}")
    return 0


def _with_services(config, job):
    """Run ``job(services)`` with the database and keyring open, as the bot would."""
    from bot import runtime

    async def main():
        services = await runtime.open_services(config)
        try:
            return await job(services)
        finally:
            await services.db.dispose()
    return asyncio.run(main())


def cmd_officers_invite(args) -> int:
    from handlers.officer.accounts import InviteError, create_invite_code
    config = _config(args)
    try:
        code = _with_services(config, lambda s: create_invite_code(s, unit_id=args.unit, role=args.role, name=args.name))
    except InviteError as exc:
        raise ConfigError(str(exc)) from None
    hours = config.triage.invite_ttl_hours
    print(f"one-time code for {args.name} ({args.role}, {args.unit}), valid {hours} h:\n\n    {code}\n")
    print("The officer sends /enroll followed by this code to the bot, from their own account.")
    return 0


def cmd_officers_list(args) -> int:
    from handlers.operations.officers import enrolled
    config = _config(args)
    units = config.tipline_settings().unit_tree
    for officer in _with_services(config, enrolled):
        state = f"revoked {officer.revoked_at:%Y-%m-%d}" if officer.revoked_at else "active"
        print(f"{officer.id}\t{officer.name}\t{officer.role}\t{officer.unit_id} ({units.name(officer.unit_id)})\t"
              f"{officer.channel}\tenrolled {officer.enrolled_at:%Y-%m-%d}\t{state}")
    return 0


def cmd_officers_revoke(args) -> int:
    from handlers.operations.officers import revoke
    config = _config(args)
    revoked = _with_services(config, lambda services: revoke(services, officer_id=args.officer_id))
    if revoked is None:
        raise ConfigError(f"no active officer with id {args.officer_id} (see `tinbao officers list`)")
    officer = revoked.officer
    print(f"officer {officer.id} ({officer.name}) can no longer use officer commands")
    print(f"{revoked.released} open tip(s) they held are back in the queue")
    return 0


def cmd_audit_verify(args) -> int:
    from handlers.operations.audit import verify
    from storage.audit import AnchorError
    config = _config(args)
    progress = Progress("verifying the audit log", 0)

    def start(total: int) -> None:
        progress.total = total
    try:
        check, head = _with_services(config, lambda s: verify(s, on_total=start, progress=progress.advance))
    except AnchorError as exc:
        raise ConfigError(str(exc)) from None
    progress.finish()
    if not check.ok:
        print(f"audit log BROKEN at entry {check.broken_at}: {check.reason} ({check.entries} entries verified before it)")
        return 1
    from bot.runtime import AUDIT_ANCHOR_FILE
    print(f"audit log intact: {check.entries} entries; head {head.hash[:16] if head else 'none'} (entry "
          f"{head.entry_id if head else 0}), recorded in {config.bot.data_dir / AUDIT_ANCHOR_FILE}")
    return 0


def cmd_purge(args) -> int:
    from handlers.officer.maintenance import STRAY_FILE_GRACE, purge_not_valuable, sweep_stray_files
    config = _config(args)
    progress = Progress("purging tips judged not valuable", 0)

    def advance(done: int, total: int) -> None:
        progress.total = total
        progress.advance(done - progress.done)
    done = _with_services(config, lambda s: purge_not_valuable(s, progress=advance))
    progress.finish()
    print(f"{done} tips purged (sealed content, files and keys deleted; their counts stay for the figures)")
    swept = _with_services(config, sweep_stray_files)
    print(f"{swept} evidence files deleted that no tip pointed to (left over for more than "
          f"{STRAY_FILE_GRACE.total_seconds() // 60:.0f} minutes)")
    return 0


def cmd_report(args) -> int:
    """The movement report of a unit and a period, as text, CSV or XLSX: the same figures as /report."""
    from handlers.figures.movement_report import Period, ReportError, cli_report, file_name, parse_date, rendered
    from storage.stats import STEPS
    config = _config(args)
    first, last = parse_date(args.date_from), parse_date(args.date_to)
    if first is None or last is None:
        raise ConfigError("--from and --to take dates as dd/mm/yyyy, e.g. --from 01/01/2026 --to 30/06/2026")
    if first > last:
        raise ConfigError(f"--from {args.date_from} is after --to {args.date_to}")
    bar: list[Progress] = []

    def start_bar(tips: int) -> None:  # only for a period long enough to make the operator wait
        bar.append(Progress(f"counting {tips:,} tips", STEPS))
        bar[0].advance(0)

    def advance(done: int, total: int) -> None:
        bar[0].advance(done - bar[0].done)
    try:
        figures = _with_services(config, lambda s: cli_report(s, unit_id=args.unit, period=Period(first, last),
                                                              lang=args.language, audience=args.audience,
                                                              progress=advance, on_large=start_bar))
    except ReportError as exc:
        raise ConfigError(str(exc)) from None
    if bar:
        bar[0].finish()
    data = rendered(figures, args.format)
    output = args.output or (file_name(figures, "xlsx") if args.format == "xlsx" else None)
    if output is None:
        # Bytes as they are, BOM included: `--format csv > h1.csv` must open in Excel on Windows with its
        # Vietnamese intact, and a terminal shows the BOM as nothing.
        sys.stdout.flush()
        sys.stdout.buffer.write(data)
        sys.stdout.buffer.flush()
    else:
        Path(output).write_bytes(data)
        print(f"wrote {output}", file=sys.stderr)
    return 0


def cmd_reminders_status(args) -> int:
    """Recent and coming broadcasts with their counts; a bar each for those still going out."""
    from handlers.operations.broadcasts_overview import broadcasts_overview
    from handlers.reminders.subscriptions import when_text
    config = _config(args)
    lines, unknown = _with_services(config, lambda s: broadcasts_overview(s, days=args.days, limit=args.limit))
    areas = config.tipline_settings().areas
    for line in lines:
        broadcast, n = line.broadcast, line.counts
        where = areas.display(broadcast.area_code) if broadcast.area_code else "everyone"
        skipped = ", ".join(f"{reason} {count}" for reason, count in line.skipped.items())
        print(f"#{broadcast.id}\t{broadcast.kind}\t{where}\t{when_text(broadcast.send_at)}\t{broadcast.status}\t"
              f"sent {n.get('sent', 0)}, failed {n.get('failed', 0)}, pending {line.pending}, "
              f"unknown {n.get('unknown', 0)}" + (f", skipped: {skipped}" if skipped else ""))
        if line.going_out:
            progress = Progress(f"  #{broadcast.id} going out", line.rows)
            progress.advance(line.finished_rows)
            progress.finish()
    if not lines:
        print(f"no reminders or announcements in the last {args.days} days")
    if unknown:
        print(f"{unknown} message(s) have an unknown outcome (a worker stopped while sending them); "
              "they are not sent again")
    return 0


def cmd_reminders_calendar(args) -> int:
    """The coming events (national days and local ones) and when their reminders go out, Vietnam time."""
    from handlers.operations.coming_events import coming_events
    from handlers.reminders.subscriptions import day_text, when_text
    config = _config(args)
    settings = config.reminder_settings()

    async def job(services):
        from bot.reminder_dispatcher import sync_calendar
        await sync_calendar(services, settings)  # what `tinbao run` would do first, so the file's edits show
        return await coming_events(services)
    areas = config.tipline_settings().areas
    for row in _with_services(config, job):
        event = row.event
        where = areas.display(event.area_code) if event.area_code else "everyone"
        print(f"#{event.id}\t{day_text(row.day)}{' ' + event.start_time if event.start_time else ''}\t{event.source}\t"
              f"{where}\t{event.title}\treminders: {', '.join(when_text(t) for t in row.reminders) or '-'}")
    return 0


def cmd_zalo_oa_connect(args) -> int:
    """The first grant of the unit's Zalo OA: permission URL (PKCE), the pasted code, the pair stored sealed."""
    from bot.channels.zalo_oa.connect import ConnectError, connect
    config = _config(args)
    try:
        _with_services(config, lambda services: connect(config.zalo_oa, services, ask=input, say=print))
    except ConnectError as exc:
        raise ConfigError(str(exc)) from None
    return 0


def cmd_zalo_oa_status(args) -> int:
    from bot.channels.zalo_oa.connect import status
    config = _config(args)
    print(_with_services(config, lambda services: status(config.zalo_oa, services)))
    return 0


def cmd_areas_import(args) -> int:
    """Write the official [[areas]] of whole provinces and a starting [[units]] tree into config.toml (or a file)."""
    from bot import areas_import
    provinces = areas_import.provinces_for(args.province or [], everything=args.all)
    if not provinces:
        raise ConfigError("areas import: name at least one --province (code or name), or --all")
    bar = Progress("writing areas", len(provinces)) if len(provinces) > 3 else None
    text = areas_import.areas_toml(provinces, progress=bar.advance if bar else lambda n: None)
    if bar:
        bar.finish()
    wards = sum(len(areas_import.national().wards_of(p.code)) for p in provinces)
    if args.output == "-":
        sys.stdout.write(text)
    elif args.output:
        Path(args.output).write_text(text, encoding="utf-8")
        print(f"wrote {len(provinces)} provinces and {wards} communes/wards to {args.output}", file=sys.stderr)
    else:
        path = Path(args.config or os.environ.get("TINBAO_CONFIG") or "config.toml")
        replaced = areas_import.write_into(path, text, replace=args.replace)
        print(f"{path}: {len(provinces)} provinces and {wards} communes/wards with their units"
              + (f" (replacing {replaced} areas)" if replaced else ""))
    return 0


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not 0 <= value <= 86400:
        raise argparse.ArgumentTypeError(f"must be a number of seconds from 0 to 86400 (got {text!r})")
    return value


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(prog="tinbao", description="A crime tip line for the police on Telegram and Zalo.")
    top.add_argument("--config", help="config file (default: $TINBAO_CONFIG or ./config.toml)")
    sub = top.add_subparsers(dest="command", required=True)
    init = sub.add_parser("init", help="create config.toml, the data folder and the keyring")
    init.add_argument("--province", action="append", help="the official areas of this province (code or name)")
    init.set_defaults(func=cmd_init)
    run = sub.add_parser("run", help="serve the bot (Telegram long polling, or --webhook)")
    run.add_argument("--webhook", action="store_true", help="serve Telegram by webhook (checks the secret token)")
    run.add_argument("--stop-within", type=_seconds, default=10.0, metavar="SECONDS",
                     help="on SIGTERM/SIGINT, how long the answers under way may take to go out (default 10)")
    run.add_argument("--wait-for-database", type=_seconds, default=60.0, metavar="SECONDS",
                     help="how long to keep trying a database that cannot be reached at start (default 60)")
    run.set_defaults(func=cmd_run)
    chat = sub.add_parser("chat", help="try the tip line in this terminal, no token needed")
    chat.add_argument("--name", default="console", help="who you are in the chat (each name has its own conversation)")
    chat.add_argument("--language", choices=["vi", "en"], default=None)
    chat.set_defaults(func=cmd_chat)
    db = sub.add_parser("db", help="database schema").add_subparsers(dest="db_command", required=True)
    db_upgrade = db.add_parser("upgrade", help="apply the migrations")
    db_upgrade.add_argument("--wait-for-database", type=_seconds, default=0.0, metavar="SECONDS",
                            help="keep trying a database that cannot be reached yet (default: give up at once)")
    db_upgrade.set_defaults(func=cmd_db_upgrade)
    keys = sub.add_parser("keys", help="encryption keys").add_subparsers(dest="keys_command", required=True)
    rotate = keys.add_parser("rotate", help="new active key; re-wrap every data key (safe while the bot runs)")
    rotate.add_argument("--batch", type=int, default=500)
    rotate.set_defaults(func=cmd_keys_rotate)
    retire = keys.add_parser("retire", help="remove an old key once nothing needs it")
    retire.add_argument("key_id")
    retire.set_defaults(func=cmd_keys_retire)
    keys.add_parser("status", help="which keys wrap how many data keys").set_defaults(func=cmd_keys_status)
    related = sub.add_parser("related", help="related tips: the blind index of the numbers, accounts, plates tips name")
    related_sub = related.add_subparsers(dest="related_command", required=True)
    reindex = related_sub.add_parser("reindex", help="new related-index key; every tip indexed again from its "
                                                     "sealed answers (safe while the bot runs)")
    reindex.add_argument("--same-key", action="store_true",
                         help="keep the active key: index tips sent before related tips, or finish a stopped run")
    reindex.add_argument("--batch", type=int, default=200)
    reindex.set_defaults(func=cmd_related_reindex)
    officers = sub.add_parser("officers", help="officers (cán bộ)").add_subparsers(dest="officers_command", required=True)
    invite = officers.add_parser("invite", help="print a one-time enrolment code")
    invite.add_argument("--unit", required=True, help="unit id from [[units]] in config.toml")
    invite.add_argument("--role", default="officer", choices=["officer", "supervisor", "admin"])
    invite.add_argument("--name", required=True, help="how the officer is named to colleagues and in the audit log")
    invite.set_defaults(func=cmd_officers_invite)
    officers.add_parser("list", help="enrolled officers").set_defaults(func=cmd_officers_list)
    revoke = officers.add_parser("revoke", help="take an officer's access away at once; "
                                                      "their open tips go back to the queue")
    revoke.add_argument("officer_id", type=int)
    revoke.set_defaults(func=cmd_officers_revoke)
    audit = sub.add_parser("audit", help="the audit log").add_subparsers(dest="audit_command", required=True)
    audit.add_parser("verify", help="check that no entry was changed or deleted").set_defaults(func=cmd_audit_verify)
    sub.add_parser("purge", help="delete tips judged not valuable after the retention period").set_defaults(func=cmd_purge)
    report = sub.add_parser("report", help="the movement report of a unit: the same figures as /report")
    report.add_argument("--from", dest="date_from", required=True, metavar="DD/MM/YYYY", help="first day (Vietnam time)")
    report.add_argument("--to", dest="date_to", required=True, metavar="DD/MM/YYYY", help="last day, included")
    report.add_argument("--unit", required=True, help="unit id from [[units]]; the units below it are counted too")
    report.add_argument("--format", choices=["text", "csv", "xlsx"], default="text")
    report.add_argument("--output", help="file to write (default: text and csv to stdout, xlsx to tinbao-UNIT-….xlsx)")
    report.add_argument("--language", choices=["vi", "en"], default="vi")
    report.add_argument("--audience", choices=["published", "supervisors"], default="published",
                        help="published (default): small counts hidden by [stats] min_cell; supervisors: by "
                             "min_cell_supervisors, for reports that stay within the force")
    report.set_defaults(func=cmd_report)
    reminders = sub.add_parser("reminders", help="festival reminders").add_subparsers(dest="reminders_command",
                                                                                      required=True)
    status = reminders.add_parser("status", help="broadcasts: sent, failed, pending, unknown, skipped")
    status.add_argument("--days", type=int, default=30)
    status.add_argument("--limit", type=int, default=20)
    status.set_defaults(func=cmd_reminders_status)
    reminders.add_parser("calendar", help="coming events and when their reminders go out").set_defaults(
        func=cmd_reminders_calendar)
    zalo_oa = sub.add_parser("zalo-oa", help="the unit's Zalo Official Account").add_subparsers(
        dest="zalo_oa_command", required=True)
    zalo_oa.add_parser("connect", help="grant tinbao access to the OA (an OA admin agrees in a browser)").set_defaults(
        func=cmd_zalo_oa_connect)
    zalo_oa.add_parser("status", help="the stored token pair: version, expiry, last refresh failure").set_defaults(
        func=cmd_zalo_oa_status)
    areas = sub.add_parser("areas", help="areas and units").add_subparsers(dest="areas_command", required=True)
    areas_import = areas.add_parser("import", help="the official communes and wards of whole provinces, with units")
    areas_import.add_argument("--province", action="append", help="code (79) or name (\"Hồ Chí Minh\"); repeatable")
    areas_import.add_argument("--all", action="store_true", help="all 34 provinces")
    areas_import.add_argument("--output", help="write to this file (- for stdout) instead of into config.toml")
    areas_import.add_argument("--replace", action="store_true", help="replace the existing [[areas]] and [[units]]")
    areas_import.set_defaults(func=cmd_areas_import)
    return top


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        return args.func(args)
    except (ConfigError, KeyringError, DecryptionError) as exc:
        # One clear line for the operator; never a traceback full of internals.
        print(f"tinbao: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
