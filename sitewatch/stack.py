"""The local stack: a private PostgreSQL cluster, a Mosquitto broker and the services, under one
data dir, on free loopback ports.

`up` is idempotent and resumable: what already runs is left alone, what is missing is started, and
ports, passwords and data are kept in the data dir so `up` after `down` finds everything as it was.
Readiness is checked, never slept for: PostgreSQL by pg_ctl's wait and a query, the broker by an
MQTT CONNACK, ingest by its `ready` metric, the API by `/readyz`.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import getpass
import json
import os
import pwd
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion

from sitewatch import auth, broker_auth
from sitewatch.store import db
from sitewatch.store.migrate import migrate
from sitewatch.tls import TlsFiles, client_context, local_ca, verify

DB_NAME = "sitewatch"
DB_USER = "sitewatch"
SERVICES = ("ingest", "alerting", "api")
SHARDED = ("ingest", "alerting")  # run as N site-sharded workers with `stack up --workers N`


def service_module(name: str) -> str:
    """The module a service name runs: worker "ingest-2" is `services.ingest`."""
    return name.split("-", 1)[0]


def _marker(name: str) -> str:
    return f"services.{service_module(name)}"


SIMULATORS = "simulators"
# The demo's simulated sites: a quiet site of each kind, and every scenario in turn, again and again.
SIMULATE_ARGS = ("simulate", "--scenario", "all", "--sites", "4", "--loop")
READY_TIMEOUT_S = 60.0
# The watchdog that restarts a dead component (sitewatch/supervise.py), started by `up`.
SUPERVISOR = "supervisor"
SUPERVISE_ARGS = ("stack", "supervise")


class StackError(RuntimeError):
    pass


@dataclass(frozen=True, slots=True)
class Layout:
    root: Path

    @property
    def pg_data(self) -> Path:
        return self.root / "postgres"

    @property
    def broker(self) -> Path:
        return self.root / "mosquitto"

    @property
    def logs(self) -> Path:
        return self.root / "logs"

    @property
    def state_file(self) -> Path:
        return self.root / "stack.json"

    @property
    def secrets_file(self) -> Path:
        return self.root / "secrets.json"

    @property
    def tls(self) -> Path:
        """The local CA and the server certificate of `stack up --tls`."""
        return self.root / "tls"

    @property
    def lock_file(self) -> Path:
        return self.root / "stack.lock"


# -- small process helpers ------------------------------------------------------------------------
def free_port(preferred: int | None = None, wait_s: float = 3.0) -> int:
    """`preferred` when it can be bound on 127.0.0.1, else a fresh port from the kernel. The
    preferred port is tried for `wait_s`: a process killed a moment ago may still be releasing it,
    and its clients (and stack.json's readers) know that port."""
    deadline = time.monotonic() + wait_s
    while preferred:
        if (port := _bind(preferred)) is not None:
            return port
        if time.monotonic() > deadline:
            break
        time.sleep(0.05)  # the dying process closes its sockets
    if (port := _bind(0)) is None:
        raise StackError("no free port")
    return port


def _bind(port: int) -> int | None:
    with socket.socket() as s:
        # as the servers do, so a port left in TIME_WAIT by our own previous run is reused
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return None
        return int(s.getsockname()[1])


def _alive(pid: int | None, marker: str) -> bool:
    """True when `pid` runs and its command line contains `marker` (so a recycled pid is not ours)."""
    if not pid:
        return False
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return marker in cmdline and stat.split(") ", 1)[1][0] != "Z"


def _wait_for(what: str, check: Callable[[], bool], timeout: float = READY_TIMEOUT_S, log: Path | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.1)
    tail = ""
    if log is not None and log.exists():
        tail = "\n" + "\n".join(log.read_text(errors="replace").splitlines()[-20:])
    raise StackError(f"{what} did not become ready within {timeout:.0f} s{tail}")


def _terminate(pid: int, marker: str, timeout: float = 15.0) -> None:
    if not _alive(pid, marker):
        return
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and _alive(pid, marker):
        time.sleep(0.05)
    if _alive(pid, marker):
        os.kill(pid, signal.SIGKILL)
        # SIGKILL is delivered asynchronously: until it is gone, `up` would take it for running
        while time.monotonic() < deadline + 5 and _alive(pid, marker):
            time.sleep(0.01)


def _reap(pid: int) -> None:
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)


def _pg_bin(tool: str) -> str:
    candidates = sorted(Path("/usr/lib/postgresql").glob(f"*/bin/{tool}"), key=lambda p: int(p.parts[-3]))
    if candidates:
        return str(candidates[-1])
    found = shutil.which(tool)
    if found is None:
        raise StackError(f"{tool} not found: install PostgreSQL (make demo does)")
    return found


# -- the stack ------------------------------------------------------------------------------------
class Stack:
    def __init__(self, data_dir: Path) -> None:
        self.layout = Layout(data_dir.resolve())
        self.state: dict[str, Any] = self._read(self.layout.state_file)
        self.secrets: dict[str, str] = self._read(self.layout.secrets_file)
        self._lock_depth = 0

    @contextlib.contextmanager
    def locked(self) -> Iterator[None]:
        """Hold the data dir's lock (re-entrant), so `up`, `down` and the supervisor never start or
        stop the same component at once; the state is re-read once the lock is held."""
        if self._lock_depth:
            self._lock_depth += 1
            try:
                yield
            finally:
                self._lock_depth -= 1
            return
        self.layout.root.mkdir(parents=True, exist_ok=True)
        with open(self.layout.lock_file, "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            self.state = self._read(self.layout.state_file)
            self._lock_depth = 1
            try:
                yield
            finally:
                self._lock_depth = 0
                fcntl.flock(lock, fcntl.LOCK_UN)

    @staticmethod
    def _read(path: Path) -> dict[str, Any]:
        return json.loads(path.read_text()) if path.exists() else {}

    def _save(self) -> None:
        # atomically: `status` and the supervisor read it without the lock
        tmp = self.layout.state_file.with_suffix(".tmp")
        tmp.write_text(json.dumps(self.state, indent=2))
        tmp.replace(self.layout.state_file)

    def _secret(self, name: str) -> str:
        if name not in self.secrets:
            self.secrets[name] = secrets.token_urlsafe(24)
            self.layout.secrets_file.touch(mode=0o600)
            self.layout.secrets_file.write_text(json.dumps(self.secrets, indent=2))
        return self.secrets[name]

    # -- transport security (docs/security.md#transport-security) ---------------------------------
    # -- site-sharded workers (docs/scaling.md) ----------------------------------------------------
    @property
    def workers(self) -> int:
        return int(self.state.get("workers", 1))

    @property
    def services(self) -> list[str]:
        """The services in start order: ingest and alerting workers ("ingest", "ingest-1", …), the API."""
        names = [f"{base}-{i}" if i else base for base in SHARDED for i in range(self.workers)]
        return [*names, "api"]

    def _known_services(self) -> list[str]:
        """`services` and any other the state still records (workers of an earlier `--workers`)."""
        names = self.services
        return [*(n for n in self.state.get("services", {}) if n not in names), *names]

    def use_workers(self, n: int | None) -> None:
        """Run `n` ingest and `n` alerting workers from now on (None keeps the data dir's choice). A
        change stops the services, so that `up` starts the new set; sites are dealt again."""
        if n is None or n == self.workers:
            return
        if n < 1:
            raise StackError("--workers must be at least 1")
        self.layout.root.mkdir(parents=True, exist_ok=True)
        with self.locked():
            self._stop(self._known_services())
            self.state["workers"] = n
            self.state["services"] = {k: v for k, v in self.state.get("services", {}).items() if k in self.services}
            self._save()

    @property
    def tls(self) -> TlsFiles | None:
        """The local CA's files when the data dir runs with TLS (`stack up --tls`), else None."""
        if not self.state.get("tls"):
            return None
        d = self.layout.tls
        return TlsFiles(d / "server.crt", d / "server.key", d / "ca.crt")

    def use_tls(self, on: bool | None) -> None:
        """Switch TLS on or off for good (None keeps the data dir's choice). A switch stops the
        broker, the services and the simulators, so that `up` starts them again in the new mode."""
        if on is None or bool(self.state.get("tls")) == on:
            return
        self.layout.root.mkdir(parents=True, exist_ok=True)
        with self.locked():
            self._stop([SIMULATORS, *self._known_services(), "mosquitto"])
            self.state["tls"] = on
            self._save()

    @property
    def api_url(self) -> str:
        scheme = "https" if self.tls else "http"
        return f"{scheme}://127.0.0.1:{self.state['services']['api']['port']}"

    @property
    def dsn(self) -> str:
        return f"postgresql://{DB_USER}:{self._secret('postgres')}@127.0.0.1:{self.state['postgres']['port']}/{DB_NAME}"

    # PostgreSQL refuses to run as root; under root the cluster belongs to the `postgres` user.
    @staticmethod
    def _pg_user() -> str | None:
        if os.geteuid() != 0:
            return None
        try:
            pwd.getpwnam("postgres")
        except KeyError as exc:
            raise StackError("running as root needs the 'postgres' system user (apt-get install postgresql)") from exc
        return "postgres"

    def _pg_run(self, *args: str) -> None:
        user = self._pg_user()
        proc = subprocess.run(list(args), user=user, capture_output=True, text=True, check=False, cwd=self.layout.root)
        if proc.returncode != 0:
            raise StackError(f"{Path(args[0]).name} failed: {proc.stderr.strip() or proc.stdout.strip()}")

    def _chown_pg(self, *paths: Path) -> None:
        user = self._pg_user()
        if user is None:
            return
        for path in paths:
            shutil.chown(path, user, user)

    def _start_postgres(self) -> None:
        lay = self.layout
        pg = self.state.setdefault("postgres", {})
        if self._postgres_pid() is not None:
            return
        pg["port"] = free_port(pg.get("port"))
        if not (lay.pg_data / "PG_VERSION").exists():
            lay.pg_data.mkdir(mode=0o700, parents=True, exist_ok=True)
            pwfile = lay.root / ".pgpass.init"
            pwfile.write_text(self._secret("postgres") + "\n")
            pwfile.chmod(0o600)
            self._chown_pg(lay.pg_data, pwfile)
            try:
                self._pg_run(
                    _pg_bin("initdb"),
                    "-D",
                    str(lay.pg_data),
                    "-U",
                    DB_USER,
                    "-E",
                    "UTF8",
                    "--no-locale",
                    "--auth=scram-sha-256",
                    f"--pwfile={pwfile}",
                )
            finally:
                pwfile.unlink()
            with open(lay.pg_data / "postgresql.conf", "a") as conf:
                conf.write(
                    "\n# sitewatch: a private, loopback-only cluster\n"
                    "listen_addresses = '127.0.0.1'\nunix_socket_directories = ''\n"
                    "shared_buffers = '512MB'\nmax_wal_size = '4GB'\nwal_buffers = '64MB'\n"
                    "checkpoint_timeout = '15min'\nmax_connections = 200\n"
                    "logging_collector = off\nlog_min_messages = warning\n"
                )
        log = lay.logs / "postgres.log"
        log.touch()
        self._chown_pg(log)
        self._pg_run(
            _pg_bin("pg_ctl"),
            "-D",
            str(lay.pg_data),
            "-l",
            str(log),
            "-w",
            "-t",
            "60",
            "-o",
            f"-p {pg['port']}",
            "start",
        )
        pg["pid"] = self._postgres_pid()
        self._save()
        asyncio.run(self._prepare_database())

    def _postgres_pid(self) -> int | None:
        pidfile = self.layout.pg_data / "postmaster.pid"
        if not pidfile.exists():
            return None
        pid = int(pidfile.read_text().split("\n", 1)[0])
        return pid if _alive(pid, "postgres") else None

    async def _prepare_database(self) -> None:
        port = self.state["postgres"]["port"]
        admin = await db.connect(f"postgresql://{DB_USER}:{self._secret('postgres')}@127.0.0.1:{port}/postgres")
        try:
            if not await admin.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", DB_NAME):
                await admin.execute(f"CREATE DATABASE {DB_NAME}")
        finally:
            await admin.close()
        conn = await db.connect(self.dsn)
        try:
            await migrate(conn)
            if await auth.lookup(conn, self.secrets.get("admin_token", "")) is None:  # none yet, revoked or expired
                self.secrets.pop("admin_token", None)
                self.secrets["admin_token"] = await auth.create_token(conn, "admin", name="stack admin")
                self.layout.secrets_file.write_text(json.dumps(self.secrets, indent=2))
        finally:
            await conn.close()

    async def _write_broker_auth(self) -> None:
        passwords = {name: self._secret(f"mqtt_{name}") for name in broker_auth.SERVICE_USERS}
        broker_auth.write_service_files(self.layout.broker, broker_auth.service_users(passwords))
        conn = await db.connect(self.dsn)
        try:
            await broker_auth.write_gateway_files(conn, self.layout.broker)
        finally:
            await conn.close()

    def _start_broker(self) -> None:
        lay = self.layout
        mq = self.state.setdefault("mosquitto", {})
        if _alive(mq.get("pid"), "mosquitto"):
            return
        mq["port"] = free_port(mq.get("port"))
        (lay.broker / "data").mkdir(parents=True, exist_ok=True)
        if self.tls:  # made once, renewed when due; the broker and the API present it
            local_ca(lay.tls)
        asyncio.run(self._write_broker_auth())
        conf = lay.broker / "mosquitto.conf"
        conf.write_text(
            broker_auth.broker_config(
                lay.broker,
                mq["port"],
                user=getpass.getuser(),
                queue_bytes=int(os.environ.get("SITEWATCH_BROKER_QUEUE_BYTES", broker_auth.QUEUE_BYTES)),
                tls=self.tls,
            )
        )
        log = open(lay.logs / "mosquitto.log", "ab")  # noqa: SIM115 (handed to the child)
        proc = subprocess.Popen(
            ["mosquitto", "-c", str(conf)],
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
            cwd=lay.broker,
        )
        log.close()
        mq["pid"] = proc.pid
        self._save()
        _wait_for("mosquitto", lambda: self._mqtt_ready(proc), log=lay.logs / "mosquitto.log")

    def _mqtt_ready(self, proc: subprocess.Popen[bytes]) -> bool:
        if proc.poll() is not None:
            raise StackError(f"mosquitto exited with {proc.returncode}: see {self.layout.logs / 'mosquitto.log'}")
        client = paho.Client(CallbackAPIVersion.VERSION2, client_id=f"stack-probe-{os.getpid()}")
        client.username_pw_set("sitewatch-admin", self._secret("mqtt_admin"))
        if self.tls:
            client.tls_set_context(client_context(self.tls.cafile))
        try:
            client.connect("127.0.0.1", self.state["mosquitto"]["port"], keepalive=5)
            deadline = time.monotonic() + 1.0
            while not client.is_connected() and time.monotonic() < deadline:  # TLS takes a few rounds
                client.loop(timeout=0.1)
            ok = client.is_connected()
            client.disconnect()
            return ok
        except OSError:
            return False

    def service_env(self, name: str) -> dict[str, str]:
        svc = self.state["services"][name]
        module = service_module(name)
        env = dict(os.environ)
        env.update(
            {
                "SITEWATCH_DSN": self.dsn,
                "SITEWATCH_MQTT_HOST": "127.0.0.1",
                "SITEWATCH_MQTT_PORT": str(self.state["mosquitto"]["port"]),
                "SITEWATCH_MQTT_USER": f"sitewatch-{module}",
                "SITEWATCH_MQTT_PASSWORD": self._secret(f"mqtt_{module}"),
                "SITEWATCH_SHARDS": str(self.workers),
                "SITEWATCH_WORKER": name.rpartition("-")[2] if "-" in name else "0",
                "SITEWATCH_DATA_DIR": str(self.layout.root),
                "SITEWATCH_PORT": str(svc["port"]),
                "SITEWATCH_BROKER_DIR": str(self.layout.broker),
                "SITEWATCH_BROKER_PID": str(self.state["mosquitto"]["pid"]),
                "SITEWATCH_SERVICE_METRICS": ",".join(
                    f"{other}=http://127.0.0.1:{self.state['services'][other]['port']}/metrics"
                    for other in self.services
                    if other != "api" and other in self.state["services"]
                ),
            }
        )
        if module == "ingest":  # bulk storage yields the CPU to alert evaluation (docs/reliability.md, Overload)
            env.setdefault("SITEWATCH_NICE", "10")
        # With TLS the broker has no plain listener: the services connect over TLS too, and the
        # API serves HTTPS with the same certificate.
        for key in ("MQTT_TLS", "MQTT_CAFILE", "API_CERTFILE", "API_KEYFILE"):
            env.pop(f"SITEWATCH_{key}", None)
        if self.tls:
            env.update({"SITEWATCH_MQTT_TLS": "1", "SITEWATCH_MQTT_CAFILE": str(self.tls.cafile)})
            if name == "api":
                env["SITEWATCH_API_CERTFILE"] = str(self.tls.certfile)
                env["SITEWATCH_API_KEYFILE"] = str(self.tls.keyfile)
        return env

    def _start_service(self, name: str, *, wait: bool = True) -> None:
        services = self.state.setdefault("services", {})
        svc = services.setdefault(name, {})
        log_path = self.layout.logs / f"{name}.log"
        marker = _marker(name)
        if not _alive(svc.get("pid"), marker):
            svc["port"] = free_port(svc.get("port"))
            log = open(log_path, "ab")  # noqa: SIM115 (handed to the child)
            proc = subprocess.Popen(
                [sys.executable, "-m", marker],
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
                env=self.service_env(name),
                cwd=self.layout.root,
            )
            log.close()
            svc["pid"] = proc.pid
            self._save()
        if not wait:  # the supervisor: a service that cannot get ready is restarted again later
            return
        # Wait even for a service already running: the supervisor may have started it a moment ago.
        pid = svc["pid"]

        def ready() -> bool:
            if not _alive(pid, marker):
                raise StackError(f"{name} exited: see {log_path}")
            try:
                if name == "api":
                    ca = self.tls.cafile if self.tls else None
                    return httpx.get(f"{self.api_url}/readyz", timeout=1, verify=verify(ca)).status_code == 200
                text = httpx.get(f"http://127.0.0.1:{svc['port']}/metrics", timeout=1).text
                return f"sitewatch_{service_module(name)}_ready 1.0" in text
            except httpx.HTTPError:
                return False

        _wait_for(name, ready, log=log_path)

    # -- public operations ------------------------------------------------------------------------
    def _start_helper(self, name: str, args: tuple[str, ...]) -> None:
        """A `sitewatch` command of the stack's own, in the background, logged to logs/NAME.log."""
        entry = self.state.setdefault(name, {})
        if _alive(entry.get("pid"), " ".join(args[:2])):
            return
        log = open(self.layout.logs / f"{name}.log", "ab")  # noqa: SIM115 (handed to the child)
        proc = subprocess.Popen(
            [sys.executable, "-m", "sitewatch", *args, "--data-dir", str(self.layout.root)],
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
        log.close()
        entry["pid"] = proc.pid
        self._save()

    def _start_simulators(self) -> None:
        """The demo's simulated sites, a client of the stack like any gateway: not part of the
        platform, so a simulator that stops does not make the stack "not running"."""
        self._start_helper(SIMULATORS, SIMULATE_ARGS)

    def _start_supervisor(self) -> None:
        self._start_helper(SUPERVISOR, SUPERVISE_ARGS)

    def _bring_up(self, skip: frozenset[str] = frozenset(), *, wait: bool = True) -> list[str]:
        """Start what is not running, but the `skip`ped components; the names started."""
        started = []
        before = {
            name: (self.state.get(name, {}).get("port"), self.state.get(name, {}).get("pid"))
            for name in ("postgres", "mosquitto")
        }
        if "postgres" not in skip and self._postgres_pid() is None:
            self._start_postgres()
            started.append("postgres")
        if "mosquitto" not in skip and not _alive(self.state.get("mosquitto", {}).get("pid"), "mosquitto"):
            self._start_broker()
            started.append("mosquitto")
        after = {name: (self.state.get(name, {}).get("port"), self.state.get(name, {}).get("pid")) for name in before}
        if any(before[n][0] != after[n][0] for n in before):
            self._stop(self._known_services())  # they were told the old addresses
        elif before["mosquitto"][1] != after["mosquitto"][1]:
            self._stop(["api"])  # it reloads the broker's credentials by signalling its pid
        for name in self.services:
            if name in skip:
                continue
            if not _alive(self.state.get("services", {}).get(name, {}).get("pid"), _marker(name)):
                started.append(name)
            self._start_service(name, wait=wait)  # `up` also waits for one the supervisor just started
        return started

    def up(self, *, simulators: bool = False) -> dict[str, Any]:
        with self.locked():
            self.layout.logs.mkdir(exist_ok=True)
            if self._pg_user():
                # the postgres user must reach the cluster directory through the data dir
                self.layout.root.chmod(self.layout.root.stat().st_mode | 0o711)
            self.state.pop("stopped", None)  # `up` wants everything running again
            self._save()
            self._bring_up()
            if simulators:
                self._start_simulators()
            self._start_supervisor()
            return self.summary()

    def heal(self) -> list[tuple[str, int | None]]:
        """The supervisor's round: start again whatever `up` started and has died since, but what
        `down` stopped on purpose; services are not waited for (a service that cannot get ready,
        say without its database, is started again on a later round). The names started, with the
        pids they had."""
        with self.locked():
            if not self.state.get("services"):
                return []
            before = self.status()["components"]
            started = self._bring_up(frozenset(self.state.get("stopped", [])), wait=False)
            return [(name, before.get(name, {}).get("pid")) for name in started]

    def summary(self) -> dict[str, Any]:
        mqtt: dict[str, Any] = {"host": "127.0.0.1", "port": self.state["mosquitto"]["port"]}
        if self.tls:  # the broker's only listener is TLS; the API is HTTPS; both certificates by this CA
            mqtt.update(tls=True, cafile=str(self.tls.cafile))
        return {"api": self.api_url, "mqtt": mqtt, "token": self.secrets["admin_token"]}

    def status(self) -> dict[str, Any]:
        components: dict[str, Any] = {}
        if "postgres" in self.state:
            pid = self._postgres_pid()
            components["postgres"] = {
                "running": pid is not None,
                "pid": pid,
                "port": self.state["postgres"]["port"],
                "dsn": self.dsn,
            }
        if "mosquitto" in self.state:
            mq = self.state["mosquitto"]
            components["mosquitto"] = {
                "running": _alive(mq.get("pid"), "mosquitto"),
                "pid": mq.get("pid"),
                "host": "127.0.0.1",
                "port": mq["port"],
            }
        for name, svc in self.state.get("services", {}).items():
            components[name] = {
                "running": _alive(svc.get("pid"), _marker(name)),
                "pid": svc.get("pid"),
                "port": svc["port"],
                "log": str(self.layout.logs / f"{name}.log"),
            }
        running = bool(components) and all(c["running"] for c in components.values())
        if SIMULATORS in self.state:
            pid = self.state[SIMULATORS].get("pid")
            components[SIMULATORS] = {
                "running": _alive(pid, SIMULATE_ARGS[0]),
                "pid": pid,
                "log": str(self.layout.logs / f"{SIMULATORS}.log"),
            }
        out: dict[str, Any] = {"data_dir": str(self.layout.root), "running": running, "components": components}
        if SUPERVISOR in self.state:
            pid = self.state[SUPERVISOR].get("pid")
            out[SUPERVISOR] = {
                "running": _alive(pid, " ".join(SUPERVISE_ARGS)),
                "pid": pid,
                "log": str(self.layout.logs / f"{SUPERVISOR}.log"),
            }
        if running:
            out.update(self.summary())
        return out

    def down(self, only: list[str] | None = None) -> list[str]:
        """Stop exactly what `up` started, the supervisor first, services next and PostgreSQL last,
        or only the named components: the supervisor leaves those alone until `up` starts them
        again. Data stays."""
        names = [SIMULATORS, *reversed(self._known_services()), "mosquitto", "postgres"]
        unknown = set(only or []) - set(names)
        if unknown:
            raise StackError(f"unknown component(s): {', '.join(sorted(unknown))}; choose from {', '.join(names)}")
        with self.locked():
            if only:
                self.state["stopped"] = sorted({*self.state.get("stopped", []), *only})
                self._save()
            else:
                entry = self.state.get(SUPERVISOR, {})
                if _alive(entry.get("pid"), " ".join(SUPERVISE_ARGS)):
                    _terminate(entry["pid"], " ".join(SUPERVISE_ARGS))
                    _reap(entry["pid"])
            return self._stop(only)

    def _stop(self, only: list[str] | None) -> list[str]:
        names = [SIMULATORS, *reversed(self._known_services()), "mosquitto", "postgres"]
        stopped = []
        for name in names:
            if only and name not in only:
                continue
            if name == "postgres":
                if self._postgres_pid() is not None:
                    self._pg_run(_pg_bin("pg_ctl"), "-D", str(self.layout.pg_data), "-m", "fast", "-w", "stop")
                    stopped.append(name)
                continue
            if name in ("mosquitto", SIMULATORS):
                entry = self.state.get(name, {})
                marker = SIMULATE_ARGS[0] if name == SIMULATORS else name
            else:
                entry, marker = self.state.get("services", {}).get(name, {}), _marker(name)
            if _alive(entry.get("pid"), marker):
                _terminate(entry["pid"], marker)
                _reap(entry["pid"])
                stopped.append(name)
        return stopped
