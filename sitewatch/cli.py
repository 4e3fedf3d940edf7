"""The `sitewatch` command: operate the local stack, load catalogs, create tokens."""

from __future__ import annotations

import asyncio
import json
import os
import signal
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Annotated, Any, TypeVar

import asyncpg
import httpx
import typer

from simulators.runner import Checker, Target, play
from simulators.scenarios import SCENARIOS
from sitewatch import auth, broker_auth, supervise
from sitewatch.stack import Stack, StackError
from sitewatch.store import db
from sitewatch.store.migrate import migrate
from sitewatch.tls import TlsFiles, verify

app = typer.Typer(
    help="Sitewatch: telemetry ingestion and early warning for safety monitoring.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
stack_app = typer.Typer(help="Run PostgreSQL, Mosquitto and the services locally.", no_args_is_help=True)
catalog_app = typer.Typer(help="Enterprises, sites, gateways, zones, points and tags.", no_args_is_help=True)
token_app = typer.Typer(help="API bearer tokens.", no_args_is_help=True)
db_app = typer.Typer(help="Database schema.", no_args_is_help=True)
broker_app = typer.Typer(help="A deployment's MQTT broker.", no_args_is_help=True)
report_app = typer.Typer(help="Reports on the alert store.", no_args_is_help=True)
app.add_typer(stack_app, name="stack")
app.add_typer(catalog_app, name="catalog")
app.add_typer(token_app, name="token")
app.add_typer(db_app, name="db")
app.add_typer(broker_app, name="broker")
app.add_typer(report_app, name="report")

DataDir = Annotated[Path, typer.Option("--data-dir", envvar="SITEWATCH_DATA_DIR", help="Where the local stack lives.")]
AsJson = Annotated[bool, typer.Option("--json", help="Machine-readable output.")]
DEFAULT_DATA_DIR = Path("./var")
T = TypeVar("T")


def _fail(message: str) -> typer.Exit:
    typer.secho(message, err=True, fg=typer.colors.RED)
    return typer.Exit(1)


def _interrupt(_signum: int, _frame: object) -> None:
    raise KeyboardInterrupt


def _running_stack(data_dir: Path) -> dict[str, Any]:
    """The status of the stack in `data_dir`, which must be running."""
    status = Stack(data_dir).status()
    if not status["running"]:
        raise _fail(f"the stack in {status['data_dir']} is not running: start it with `sitewatch stack up`")
    return status


@stack_app.command("up")
def stack_up(
    data_dir: DataDir = DEFAULT_DATA_DIR,
    as_json: AsJson = False,
    no_simulators: Annotated[
        bool,
        typer.Option(
            "--no-simulators",
            help="Start no simulated sites (by default a quiet site of each kind and every scenario in turn, looping).",
        ),
    ] = False,
    tls: Annotated[
        bool | None,
        typer.Option(
            "--tls/--no-tls",
            help="MQTT over TLS only and the API over HTTPS, with a local CA made in DATA_DIR/tls/; "
            "the choice is kept for later `stack up`s.",
        ),
    ] = None,
    workers: Annotated[
        int | None,
        typer.Option(
            "--workers",
            min=1,
            help="Site-sharded ingest and alerting workers (docs/scaling.md); kept for later `stack up`s.",
        ),
    ] = None,
) -> None:
    """Start everything that is not running yet; return once all of it is ready."""
    try:
        stack = Stack(data_dir)
        stack.use_tls(tls)
        stack.use_workers(workers)
        info = stack.up(simulators=not no_simulators)
    except StackError as exc:
        raise _fail(str(exc)) from exc
    info["ui"] = f"{info['api']}/ui/"
    if as_json:
        typer.echo(json.dumps(info))
        return
    typer.echo(f"Dispatch room {info['ui']}  (log in with the admin token below)")
    typer.echo(f"API         {info['api']}  (OpenAPI docs: {info['api']}/docs)")
    typer.echo(f"MQTT        {info['mqtt']['host']}:{info['mqtt']['port']}")
    if info["mqtt"].get("tls"):
        typer.echo(f"TLS         MQTT over TLS only, the API over HTTPS; trust {info['mqtt']['cafile']}")
    typer.echo(f"Admin token {info['token']}")
    typer.echo(f"Data        {Path(data_dir).resolve()}  (logs in logs/)")
    if not no_simulators:
        typer.echo(
            "Simulated   a quiet site of each kind, and every scenario in turn: the first alerts arrive within a minute"
        )
        typer.echo(
            "            (sitewatch simulate; its log is logs/simulators.log; `stack up --no-simulators` for none)"
        )


@stack_app.command("status")
def stack_status(data_dir: DataDir = DEFAULT_DATA_DIR, as_json: AsJson = False) -> None:
    """What runs, where."""
    status = Stack(data_dir).status()
    if as_json:
        typer.echo(json.dumps(status))
        return
    if not status["components"]:
        typer.echo(f"no stack in {status['data_dir']}")
        return
    for name, c in status["components"].items():
        where = f"port {c['port']}" if "port" in c else ""
        typer.echo(f"{name:<10} {'running' if c['running'] else 'stopped':<8} pid {c['pid'] or '-':<8} {where}")
    if "supervisor" in status:
        sup = status["supervisor"]
        typer.echo(f"{'supervisor':<10} {'running' if sup['running'] else 'stopped':<8} pid {sup['pid'] or '-':<8}")
    if status["running"]:
        typer.echo(f"API {status['api']}  MQTT {status['mqtt']['host']}:{status['mqtt']['port']}")


@stack_app.command("supervise", hidden=True)
def stack_supervise(data_dir: DataDir = DEFAULT_DATA_DIR) -> None:
    """The watchdog `stack up` starts: restarts a dead component within a second or so."""
    supervise.main(data_dir)


@stack_app.command("down")
def stack_down(
    data_dir: DataDir = DEFAULT_DATA_DIR,
    components: Annotated[
        list[str] | None,
        typer.Argument(help="Stop only these (api, ingest, mosquitto, postgres); `stack up` starts them again."),
    ] = None,
) -> None:
    """Stop what `stack up` started. Data is kept."""
    try:
        stopped = Stack(data_dir).down(components or None)
    except StackError as exc:
        raise _fail(str(exc)) from exc
    typer.echo("stopped: " + (", ".join(stopped) if stopped else "nothing was running"))


@catalog_app.command("load")
def catalog_load(
    file: Annotated[Path, typer.Argument(exists=True, dir_okay=False, help="JSON or YAML catalog document.")],
    data_dir: DataDir = DEFAULT_DATA_DIR,
) -> None:
    """Load a catalog document, as PUT /api/v1/catalog does."""
    status = _running_stack(data_dir)
    yaml = file.suffix.lower() in (".yaml", ".yml")
    r = httpx.put(
        f"{status['api']}/api/v1/catalog",
        content=file.read_bytes(),
        headers={
            "Authorization": f"Bearer {status['token']}",
            "Content-Type": "application/yaml" if yaml else "application/json",
        },
        timeout=60,
        verify=verify(status["mqtt"].get("cafile")),
    )
    body = r.json()
    if r.status_code == 422:
        typer.secho(f"{file}: the catalog was not loaded:", err=True, fg=typer.colors.RED)
        for problem in body.get("detail", {}).get("problems", []):
            typer.echo(f"  {problem['path']}: {problem['message']}", err=True)
        raise typer.Exit(1)
    if r.status_code >= 400:
        raise _fail(f"{r.status_code}: {body.get('detail', body)}")
    typer.echo(json.dumps(body, ensure_ascii=False))


def _on_database(data_dir: Path, work: Callable[[asyncpg.Connection[Any]], Awaitable[T]]) -> T:
    """Run `work` on a connection to $SITEWATCH_DSN, or else the running stack's database."""
    dsn = os.environ.get("SITEWATCH_DSN") or _running_stack(data_dir)["components"]["postgres"]["dsn"]

    async def run() -> T:
        conn = await db.connect(dsn)
        try:
            return await work(conn)
        finally:
            await conn.close()

    try:
        return asyncio.run(run())
    except (ValueError, LookupError) as exc:
        raise _fail(str(exc)) from exc


@token_app.command("create")
def token_create(
    role: Annotated[str, typer.Option(help="admin, operator or enterprise")],
    sites: Annotated[str | None, typer.Option(help="Comma-separated site codes the token is limited to.")] = None,
    enterprise: Annotated[str | None, typer.Option(help="The enterprise an enterprise token belongs to.")] = None,
    name: Annotated[str, typer.Option(help="Who or what the token is for.")] = "",
    expires_in: Annotated[str | None, typer.Option(help="Lifetime: 90s, 30m, 8h, 30d, 2w; default none.")] = None,
    data_dir: DataDir = DEFAULT_DATA_DIR,
) -> None:
    """Print a new API token (only a salted hash of it is stored)."""
    try:
        lifetime = auth.parse_duration(expires_in) if expires_in else None
    except ValueError as exc:
        raise _fail(str(exc)) from exc
    scope = sites.split(",") if sites else None
    typer.echo(
        _on_database(
            data_dir,
            lambda conn: auth.create_token(
                conn, role, name=name, enterprise=enterprise, sites=scope, expires_in=lifetime
            ),
        )
    )


@token_app.command("list")
def token_list(data_dir: DataDir = DEFAULT_DATA_DIR, as_json: AsJson = False) -> None:
    """Every token without its secret: id, name, role, scope, expiry and state."""
    tokens = [t.to_json() for t in _on_database(data_dir, auth.list_tokens)]
    if as_json:
        typer.echo(json.dumps(tokens, ensure_ascii=False))
        return
    for t in tokens:
        scope = t["enterprise"] or "-"
        scope += f" sites {','.join(t['sites'])}" if t["sites"] is not None else ""
        until = t["revoked_at"] or t["expires_at"] or "-"
        typer.echo(f"{t['id']:>5}  {t['state']:<8} {t['role']:<10} {t['name'] or '-':<20} {scope:<24} {until}")


@token_app.command("revoke")
def token_revoke(
    token: Annotated[str, typer.Argument(help="The token's id, or its name when one token not revoked has it.")],
    data_dir: DataDir = DEFAULT_DATA_DIR,
) -> None:
    """Revoke a token at once: its next API request answers 401."""

    async def revoke(conn: asyncpg.Connection[Any]) -> str:
        found = await auth.revoke(conn, (await auth.resolve(conn, token)).id)
        if found is None or found.revoked_at is None:
            raise LookupError(f"no token {token}")
        return (
            f"token {found.id} ({found.name or 'no name'}) revoked at {found.revoked_at.isoformat(timespec='seconds')}"
        )

    typer.echo(_on_database(data_dir, revoke))


@db_app.command("migrate")
def db_migrate(
    dsn: Annotated[str, typer.Option(envvar="SITEWATCH_DSN", help="PostgreSQL DSN of the deployment.")],
    retention_days: Annotated[int, typer.Option(envvar="SITEWATCH_RETENTION_DAYS")] = 90,
) -> None:
    """Apply pending migrations (TimescaleDB when the extension is available); prints the storage mode."""

    async def run() -> str:
        conn = await db.connect(dsn)
        try:
            return await migrate(conn, retention_days=retention_days)
        finally:
            await conn.close()

    typer.echo(f"storage mode: {asyncio.run(run())}")


@broker_app.command("init")
def broker_init(
    directory: Annotated[Path, typer.Option("--dir", help="The broker's configuration directory.")],
    dsn: Annotated[str, typer.Option(envvar="SITEWATCH_DSN", help="PostgreSQL DSN of the deployment.")],
    port: Annotated[int | None, typer.Option(help="Listener port; default 8883 with TLS, else 1883.")] = None,
    host: Annotated[str, typer.Option(help="Listener address.")] = "0.0.0.0",
    user: Annotated[str, typer.Option(help="The user Mosquitto drops to when started as root.")] = "mosquitto",
    certfile: Annotated[
        Path | None, typer.Option(help="The broker's certificate chain (PEM, leaf first): the listener is TLS only.")
    ] = None,
    keyfile: Annotated[Path | None, typer.Option(help="The certificate's private key (PEM).")] = None,
    cafile: Annotated[
        Path | None, typer.Option(help="CA certificates (PEM) of the chain, written as the listener's cafile.")
    ] = None,
) -> None:
    """Write mosquitto.conf, the service users and the catalog's gateways for a deployment's broker.

    Service passwords come from SITEWATCH_MQTT_PASSWORD_INGEST, _ALERTING, _API and _ADMIN. With
    --certfile and --keyfile the one listener is MQTT over TLS (1.2 and up), on 8883 by default.
    """
    if (certfile is None) != (keyfile is None) or (cafile is not None and certfile is None):
        raise _fail("TLS needs both --certfile and --keyfile (and --cafile only with them)")
    tls = None
    if certfile and keyfile:
        tls = TlsFiles(certfile.absolute(), keyfile.absolute(), cafile.absolute() if cafile else None)
    names = list(broker_auth.SERVICE_USERS)
    passwords = {n: os.environ.get(f"SITEWATCH_MQTT_PASSWORD_{n.upper()}", "") for n in names}
    missing = [f"SITEWATCH_MQTT_PASSWORD_{n.upper()}" for n, pw in passwords.items() if not pw]
    if missing:
        raise _fail(f"set {', '.join(missing)}")

    async def write() -> None:
        broker_auth.write_service_files(directory, broker_auth.service_users(passwords))
        conn = await db.connect(dsn)
        try:
            await broker_auth.write_gateway_files(conn, directory)
        finally:
            await conn.close()

    (directory / "data").mkdir(parents=True, exist_ok=True)
    asyncio.run(write())
    listen = port or (8883 if tls else 1883)
    (directory / "mosquitto.conf").write_text(
        broker_auth.broker_config(directory, listen, user=user, host=host, tls=tls)
    )
    typer.echo(f"wrote {directory / 'mosquitto.conf'}, passwd and acl")


@report_app.command("daily")
def report_daily(
    date: Annotated[str | None, typer.Option(help="YYYY-MM-DD (each site's local date); default today")] = None,
    site: Annotated[str | None, typer.Option(help="One site only.")] = None,
    as_csv: Annotated[bool, typer.Option("--csv", help="CSV instead of a table.")] = False,
    data_dir: DataDir = DEFAULT_DATA_DIR,
) -> None:
    """Alerts raised that day per site: closed on time, closed late, open, overdue, time to act."""
    status = _running_stack(data_dir)
    params = {k: v for k, v in {"date": date, "site": site, "format": "csv" if as_csv else "json"}.items() if v}
    r = httpx.get(
        f"{status['api']}/api/v1/reports/daily",
        params=params,
        headers={"Authorization": f"Bearer {status['token']}"},
        timeout=60,
        verify=verify(status["mqtt"].get("cafile")),
    )
    if r.status_code != 200:
        raise _fail(f"{r.status_code}: {r.json().get('detail', r.text)}")
    if as_csv:
        typer.echo(r.text, nl=False)
        return
    report = r.json()
    head = (
        f"{'site':<16}{'raised':>8}{'on time':>9}{'late':>6}{'open':>6}{'overdue':>9}{'ack p90':>10}{'close p90':>11}"
    )
    typer.echo(f"Daily report {report['date']}")
    typer.echo(head)
    for row in [*report["sites"], {"site": "TOTAL", **report["total"]}]:
        ack = "-" if row["ack_p90_s"] is None else f"{row['ack_p90_s']:.0f}s"
        close = "-" if row["close_p90_s"] is None else f"{row['close_p90_s']:.0f}s"
        typer.echo(
            f"{row['site']:<16}{row['raised']:>8}{row['closed_on_time']:>9}{row['closed_late']:>6}"
            f"{row['open']:>6}{row['overdue']:>9}{ack:>10}{close:>11}"
        )


@app.command("loadtest")
def loadtest(
    sites: Annotated[int, typer.Option("--sites", min=1, help="Simulated sites, one gateway each.")] = 10,
    points_per_site: Annotated[int, typer.Option("--points-per-site", min=1, help="Load points per site.")] = 100,
    rate: Annotated[float, typer.Option("--rate", min=0.001, help="Readings per second per point.")] = 1.0,
    duration: Annotated[float, typer.Option("--duration", min=1, help="Seconds of publishing.")] = 30.0,
    probes: Annotated[
        float, typer.Option("--probes", min=0, help="Threshold crossings per second (ground truth).")
    ] = 5.0,
    out: Annotated[Path | None, typer.Option("--out", help="Report directory; default DATA_DIR/loadtest/TIME.")] = None,
    quiet: Annotated[bool, typer.Option("--quiet", help="No progress bar.")] = False,
    prefix: Annotated[str, typer.Option("--prefix", help="Site codes are PREFIX-0000, PREFIX-0001, …")] = "LT",
    profile: Annotated[
        str,
        typer.Option(
            "--profile",
            help="Phases FACTOR:SECONDS,… of --rate instead of --duration, e.g. 1.5:60,0.5:90 (an overload).",
        ),
    ] = "",
    drain: Annotated[float, typer.Option("--drain", min=1, help="Seconds to wait for storage to catch up.")] = 120.0,
    flush: Annotated[
        float,
        typer.Option("--flush", min=0.05, help="Each load gateway publishes what is due every FLUSH seconds."),
    ] = 0.05,
    data_dir: DataDir = DEFAULT_DATA_DIR,
) -> None:
    """Publish SITES × POINTS × RATE readings/s through the stack of --data-dir (or a temporary one
    when none is up) and report rates, evaluator lag, alert latency, loss and precision/recall."""
    from rich.console import Console
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    from simulators import loadtest as lt

    try:
        phases = tuple((float(f), float(t)) for f, t in (p.split(":") for p in profile.split(",") if p))
    except ValueError:
        raise typer.BadParameter(f"expected FACTOR:SECONDS,… not {profile!r}", param_hint="--profile") from None
    if any(f <= 0 or t <= 0 for f, t in phases):
        raise typer.BadParameter("factors and seconds must be positive", param_hint="--profile")
    plan = lt.LoadPlan(
        sites,
        points_per_site,
        rate,
        duration,
        probes_per_s=probes,
        prefix=prefix,
        drain_timeout=drain,
        profile=phases,
        flush_s=flush,
    )
    duration = plan.seconds
    console = Console(stderr=True)
    with lt.target_stack(data_dir) as (info, dsn, temporary):
        console.print(
            f"{'temporary stack' if temporary else 'stack of ' + str(data_dir)}: {info['api']}, "
            f"target {plan.readings_per_s:,.0f} readings/s"
        )
        columns = (TextColumn("loadtest"), BarColumn(), TimeElapsedColumn(), TextColumn("{task.fields[stats]}"))
        with Progress(*columns, console=console, disable=quiet) as progress:
            task = progress.add_task("load", total=duration, stats="connecting")

            def show(s: lt.Sample) -> None:
                p99 = "-" if s.latency_p99_ms is None else f"{s.latency_p99_ms:.0f} ms"
                progress.update(
                    task,
                    completed=min(s.t, duration),
                    stats=f"publish {s.published_per_s:,.0f}/s  ingest {s.stored_per_s:,.0f}/s  "
                    f"lag {s.lag_s:.2f} s  alert p99 {p99}  {s.status}",
                )

            report = asyncio.run(lt.run(plan, info, dsn, show))
    stamp = report.started_at.replace(":", "").replace("+0000", "Z")
    paths = lt.write(report, out or Path(data_dir) / "loadtest" / stamp)
    typer.echo(report.text())
    typer.echo(f"report: {paths['json']}  {paths['text']}  {paths['plot']}")
    if not report.sustained:
        raise typer.Exit(1)


@app.command("simulate")
def simulate(
    scenario: Annotated[
        str,
        typer.Option(help="A scenario (see docs/simulators.md), `all` (each in turn) or `none` (quiet sites only)."),
    ] = "none",
    sites: Annotated[int, typer.Option(help="Quiet sites to run beside the scenarios, the kinds in turn.")] = 4,
    duration: Annotated[
        float | None,
        typer.Option(
            help="Seconds to run: the quiet sites' run (default 60), or how long to --loop (default: forever)."
        ),
    ] = None,
    loop: Annotated[bool, typer.Option("--loop", help="Run the scenarios again and again.")] = False,
    seed: Annotated[int, typer.Option(help="Seed of every random choice: the same seed, the same sites.")] = 0,
    prefix: Annotated[str, typer.Option(help="Site codes begin with it.")] = "SIM",
    data_dir: DataDir = DEFAULT_DATA_DIR,
) -> None:
    """Drive the local stack with simulated sites and check the alerts against the scenarios'
    ground truth; exits 1 when a ground-truth alert was missed or late, or another alert came."""
    names = list(SCENARIOS) if scenario == "all" else [] if scenario == "none" else [scenario]
    if any(n not in SCENARIOS for n in names):
        raise _fail(f"unknown scenario {scenario!r}: choose from all, none, {', '.join(SCENARIOS)}")
    if not names and sites < 1:
        raise _fail("nothing to run: give --sites N or a --scenario")
    status = _running_stack(data_dir)
    admin = Stack(data_dir).secrets.get("mqtt_admin")
    if not admin:
        raise _fail(f"no broker credentials in {status['data_dir']}: is it a stack started by `sitewatch stack up`?")
    target = Target.of(status)
    checker = Checker(target.mqtt_host, target.mqtt_port, target.mqtt_cafile)
    checker.subscribe("sitewatch-admin", admin, "sw/v1/+/alerts")
    if duration is None and not names:
        duration = 60.0
    signal.signal(signal.SIGTERM, _interrupt)  # `stack down` stops the demo's simulators in order
    try:
        session = play(
            target,
            names,
            checker=checker,
            sites=sites,
            seed=seed,
            prefix=prefix,
            duration_s=duration,
            loop=loop,
            out=typer.echo,
        )
    except ValueError as exc:
        raise _fail(str(exc)) from exc
    finally:
        checker.close()
    total = session.total
    for r in session.rounds:
        typer.echo(f"{r.incident.scenario:<14} {r.incident.sim.code:<24} {r.report.summary()}")
        for step in r.report.unexpected:
            typer.echo(f"  unexpected: {step}  {step.message}")
    if session.quiet.unexpected:
        typer.echo(f"quiet sites: {session.quiet.summary()}")
        for step in session.quiet.unexpected:
            typer.echo(f"  unexpected: {step}  {step.message}")
    typer.echo(f"TOTAL {total.summary()}")
    if not total.ok:
        raise typer.Exit(1)
