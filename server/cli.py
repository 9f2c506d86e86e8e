"""Flask commands: ``flask sectors``, ``flask users``, ``flask demo``, ``flask serve``."""

from __future__ import annotations

import os
import random
import sys
from pathlib import Path

import click
from flask import Flask, current_app
from flask.cli import AppGroup, with_appcontext
from sqlalchemy import func, select

from geo import SectorFileError
from server.extensions import db, socketio
from server.models import ROLES, Appeal, AuditEntry, Staff, Topic, Unit
from server.models.types import utcnow
from server.services import apikeys as apikey_service
from server.services import audit, routing
from server.services import sectors as sector_service
from server.services import staff as staff_service
from server.services.errors import ServiceError

sectors_cli = AppGroup("sectors", help="Validate and load sector files (GeoJSON).")
users_cli = AppGroup("users", help="Manage staff accounts.")
demo_cli = AppGroup("demo", help="Demo data for the embedded default.")
apikeys_cli = AppGroup("apikeys", help="Open311 API keys: issue, list, revoke.")
audit_cli = AppGroup("audit", help="The hash-chained audit log.")

DEMO_PASSWORD = "jauap-demo-109"  # noqa: S105 - printed on purpose: demo accounts only, refused in production


def _progress(label: str, done: int, total: int) -> None:
    width = 30
    filled = int(width * done / max(total, 1))
    sys.stderr.write(f"\r{label} [{'#' * filled}{'.' * (width - filled)}] {done}/{total}")
    if done >= total:
        sys.stderr.write("\n")
    sys.stderr.flush()


@sectors_cli.command("validate")
@click.argument("path", type=click.Path(exists=True, dir_okay=False))
def sectors_validate(path: str) -> None:
    """Check a sector file: structure, valid rings, unique codes, overlaps and gaps."""
    try:
        report = sector_service.validate_file(path)
    except SectorFileError as exc:
        raise click.ClickException(str(exc)) from None
    for line in report.summary():
        click.echo(line)
    if not report.ok:
        raise click.ClickException(f"{len(report.errors)} error(s) in {path}")
    click.echo(f"OK: {len(report.sectors)} sectors")


@sectors_cli.command("load")
@click.argument("path", type=click.Path(exists=True, dir_okay=False))
def sectors_load(path: str) -> None:
    """Load a sector file as the next version of the sector set."""
    try:
        sector_set = sector_service.load_sector_set(path, utcnow(), loaded_by="cli")
    except SectorFileError as exc:
        raise click.ClickException(str(exc)) from None
    except ServiceError as exc:
        raise click.ClickException(f"{exc.code}: {exc.params.get('errors', '')}") from None
    db.session.commit()
    click.echo(f"loaded {Path(path).name} as sector set version {sector_set.version}: "
               f"{', '.join(s.code for s in routing.current_sectors())}")


@sectors_cli.command("list")
def sectors_list() -> None:
    """Show the current sector set."""
    for sector in routing.current_sectors():
        area_km2 = sector.area_m2 / 1e6
        click.echo(f"{sector.code}\tv{sector.version}\t{sector.unit.code}\t{sector.name_en}\t{area_km2:.2f} km²")


@users_cli.command("create")
@click.option("--username", required=True)
@click.option("--role", required=True, type=click.Choice(ROLES))
@click.option("--password", required=True, prompt=True, hide_input=True, confirmation_prompt=True)
@click.option("--unit", "unit_code", default=None, help="Unit code, for unit_head and field_staff.")
@click.option("--name", "full_name", default="")
@click.option("--language", default="ru", type=click.Choice(["kk", "ru", "en"]))
def users_create(username, role, password, unit_code, full_name, language) -> None:
    """Create a staff account."""
    try:
        staff = staff_service.create_staff(username, role, password, unit_code=unit_code, full_name=full_name,
                                           language=language, now=utcnow(), actor=audit.Who("system", None, "cli"))
    except ServiceError as exc:
        raise click.ClickException(f"{exc.code} ({exc.field})") from None
    db.session.commit()
    click.echo(f"created {staff.username} ({staff.role})")


@users_cli.command("list")
def users_list() -> None:
    """List staff accounts."""
    for staff in db.session.scalars(select(Staff).order_by(Staff.role, Staff.username)):
        click.echo(f"{staff.username}\t{staff.role}\t{staff.unit.code if staff.unit else '-'}\t"
                   f"{'active' if staff.active else 'disabled'}")


def demo_staff(now) -> list[tuple[str, str, str | None]]:
    """Create one account per centre role and a head plus two field staff per unit (idempotent)."""
    created = []
    wanted = [(role, role, None) for role in ROLES if role not in ("unit_head", "field_staff")]
    for unit in db.session.scalars(select(Unit).order_by(Unit.code)):
        tag = unit.code.lower()
        wanted += [(f"head-{tag}", "unit_head", unit.code), (f"field-{tag}-a", "field_staff", unit.code),
                   (f"field-{tag}-b", "field_staff", unit.code)]
    shifts = ["A", "B", "C", "D"]
    for i, (username, role, unit_code) in enumerate(wanted):
        if db.session.scalar(select(Staff).where(Staff.username == username)) is None:
            staff = staff_service.create_staff(username, role, DEMO_PASSWORD, unit_code=unit_code, now=now,
                                               full_name=username.replace("-", " ").title())
            staff.shift_code = shifts[i % len(shifts)]
            staff.on_duty = role in ("field_staff", "unit_head", "operator", "dispatcher")
        created.append((username, role, unit_code))
    return created


@demo_cli.command("seed")
@click.option("--appeals", "count", default=300, show_default=True,
              help="Demo appeals to add; 1000 or more seed a realistic year (e.g. 42000).")
@click.option("--top-up", is_flag=True, help="Only add what is missing to reach --appeals in total.")
@click.option("--seed", "rng_seed", default=109, show_default=True)
def demo_seed(count: int, top_up: bool, rng_seed: int) -> None:
    """Load the sectors if none, create demo staff of every role, and add demo appeals."""
    from server.services.demo import YEAR_THRESHOLD, seed_appeals, seed_year

    if current_app.config["JAUAP_ENV"] == "production":
        raise click.ClickException("demo data is refused in production")
    now = utcnow()
    if routing.current_version() is None:
        sector_service.load_sector_set(current_app.config["JAUAP_SECTOR_FILE"], now, loaded_by="demo")
        db.session.commit()
        click.echo("loaded the demo sector set")
    demo_staff(now)
    db.session.commit()
    existing = db.session.scalar(select(func.count(Appeal.id))) or 0
    if top_up:
        count = max(0, count - existing)
    if count >= YEAR_THRESHOLD:
        # A big count is a demo year (12 months, bulk inserts); a small one, recent weeks through intake.
        seed_year(count, now=now, rng=random.Random(rng_seed + existing),
                  progress=lambda done, total: _progress("demo year", done, total))
    elif count > 0:
        seed_appeals(count, now=now, rng=random.Random(rng_seed + existing),
                     progress=lambda done, total: _progress("demo appeals", done, total))
    click.echo(f"appeals in the database: {db.session.scalar(select(func.count(Appeal.id)))}; "
               f"topics: {db.session.scalar(select(func.count(Topic.code)))}")


@click.command("serve")
@with_appcontext
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=5000, show_default=True)
def serve(host: str, port: int) -> None:
    """Run the embedded server and print where to go."""
    base = f"http://{host}:{port}"
    click.echo("\nJauap is running:")
    click.echo(f"  start page      {base}/")
    click.echo(f"  staff login     {base}/login")
    click.echo(f"  API docs        {base}/api/v1/docs")
    click.echo(f"  sectors         {base}/api/v1/sectors")
    click.echo(f"  dispatcher map  {base}/dispatch/")
    click.echo(f"  operator desk   {base}/operator/")
    click.echo(f"  field app       {base}/field/   (install it on a phone; works offline)")
    click.echo(f"  reply templates {base}/templates/")
    click.echo(f"  inspector / QC  {base}/inspector/")
    click.echo(f"  analytics       {base}/analytics/")
    click.echo(f"  citizen report  {base}/report")
    click.echo(f"  Open311         {base}/open311/v2/discovery.json")
    click.echo(f"  health          {base}/healthz  {base}/readyz")
    click.echo(f"\nDemo logins (password '{DEMO_PASSWORD}'): admin, operator, dispatcher, inspector, qc_analyst, "
               "analyst, methodologist, pr_manager, head-u1 .. head-u6, field-u1-a .. field-u6-b\n")
    from server.worker import start_in_process

    start_in_process(current_app._get_current_object())
    # The embedded default: one process, Socket.IO in threading mode on werkzeug (ARCHITECTURE.md §5).
    # Flask turns app.run() (which socketio.run calls) into a no-op under the flask CLI; lift that here.
    os.environ.pop("FLASK_RUN_FROM_CLI", None)
    socketio.run(current_app._get_current_object(), host=host, port=port, allow_unsafe_werkzeug=True,
                 use_reloader=False, debug=False)


@click.command("worker")
@with_appcontext
@click.option("--interval", default=30.0, show_default=True, help="Seconds between passes.")
@click.option("--once", is_flag=True, help="Run one pass and exit.")
def worker(interval: float, once: bool) -> None:
    """Run the periodic work (escalations, position retention) for production deployments."""
    from server.worker import run_forever

    click.echo(f"worker: a pass every {interval:g} s")
    run_forever(current_app._get_current_object(), interval, iterations=1 if once else None)


@apikeys_cli.command("create")
@click.option("--name", required=True, help="Who the key is for, e.g. 'FixMyStreet Turkestan'.")
def apikeys_create(name: str) -> None:
    """Issue an Open311 API key; it is printed once and only its SHA-256 is stored."""
    try:
        issued = apikey_service.create_key(name, created_by_id=None, now=utcnow())
    except ServiceError as exc:
        raise click.ClickException(f"{exc.code} ({exc.field})") from None
    db.session.commit()
    click.echo(f"created key {issued.row.id} for {issued.row.name}; copy it now, it is not shown again:")
    click.echo(issued.key)


@apikeys_cli.command("list")
def apikeys_list() -> None:
    """List Open311 API keys (never their secrets)."""
    for row in apikey_service.list_keys():
        state = "revoked" if row.revoked_at or not row.active else "active"
        used = row.last_used_at.isoformat() if row.last_used_at else "never used"
        click.echo(f"{row.id}\t{state}\t{row.name}\t{used}")


@apikeys_cli.command("revoke")
@click.argument("key_id", type=int)
def apikeys_revoke(key_id: int) -> None:
    """Revoke an Open311 API key at once."""
    try:
        row = apikey_service.revoke_key(key_id, now=utcnow())
    except ServiceError as exc:
        raise click.ClickException(exc.code) from None
    db.session.commit()
    click.echo(f"revoked key {row.id} ({row.name})")


@audit_cli.command("verify")
def audit_verify() -> None:
    """Walk the audit chain; name the first broken entry and exit 1, or print the head to record elsewhere."""
    verdict = audit.verify()
    if not verdict.ok:
        click.echo(f"BROKEN at entry {verdict.entry_id}: {verdict.problem} ({verdict.checked} entries fine before it)",
                   err=True)
        sys.exit(1)
    head = db.session.execute(select(AuditEntry.id, AuditEntry.hash).order_by(AuditEntry.id.desc()).limit(1)).first()
    # Printing the head lets an operator notarise it: truncating the tail is only visible against such a copy.
    click.echo(f"ok: {verdict.checked} entries; head {head[0]} {head[1]}" if head else "ok: the log is empty")
    # Recorded but not yet chained (the worker seals them within seconds; `flask audit seal` by hand).
    click.echo(f"pending: {audit.pending_count()} entries not yet chained")


@audit_cli.command("seal")
def audit_seal() -> None:
    """Chain every pending audit entry now (the worker does it every few seconds)."""
    click.echo(f"sealed: {audit.seal_all()} entries")


def register_cli(app: Flask) -> None:
    """Attach the command groups to ``app``."""
    app.cli.add_command(sectors_cli)
    app.cli.add_command(users_cli)
    app.cli.add_command(demo_cli)
    app.cli.add_command(apikeys_cli)
    app.cli.add_command(audit_cli)
    app.cli.add_command(serve)
    app.cli.add_command(worker)
