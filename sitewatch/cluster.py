"""A clustered MQTT broker on loopback: N NATS servers with JetStream and their MQTT listeners.

One Mosquitto is one machine: when it dies, gateways cannot publish and the services' persistent
sessions wait on its disk. NATS keeps every MQTT session, subscription, retained message and QoS 1
message in JetStream streams replicated by Raft to `replicas` nodes, so a cluster of 3 loses one
node and carries on (docs/scaling.md, "Beyond one machine"). This module starts such a cluster on
free 127.0.0.1 ports under one directory for tests and benchmarks, and kills a node by index.

Why NATS and not RabbitMQ's MQTT plugin: measured in bench/cluster_broker.py and told in
docs/scaling.md.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion

from sitewatch.broker_auth import SERVICE_USERS

HOST = "127.0.0.1"  # every listener (MQTT, client, routes, monitoring) binds loopback only
CLUSTER_NAME = "sitewatch"
ACCOUNT = "SITEWATCH"
READY_TIMEOUT_S = 60.0


class ClusterError(RuntimeError):
    pass


@dataclass(frozen=True, slots=True)
class BrokerUser:
    """An MQTT user and the MQTT topic filters it may publish and subscribe to."""

    name: str
    password: str
    publish: tuple[str, ...] = ()
    subscribe: tuple[str, ...] = ()


def service_users(passwords: dict[str, str]) -> list[BrokerUser]:
    """The platform's users, `sitewatch-<service>`, with the rights broker_auth gives them on Mosquitto."""
    return [
        BrokerUser(f"sitewatch-{name}", passwords[name], publish=tuple(write), subscribe=tuple(read))
        for name, (read, write) in SERVICE_USERS.items()
        if name in passwords
    ]


def gateway_user(site: str, gateway: str, password: str) -> BrokerUser:
    """A gateway as PROTOCOL.md section 3 has it: its own topics, and its site's alerts."""
    return BrokerUser(
        f"{site}/{gateway}", password, publish=(f"sw/v1/{site}/{gateway}/#",), subscribe=(f"sw/v1/{site}/alerts",)
    )


def nats_subjects(topic_filter: str) -> list[str]:
    """NATS subjects covering an MQTT topic filter: `/` separates tokens, `+` is `*`, `#` is `>`.

    MQTT's `a/#` also matches `a` itself; NATS's `a.>` does not, so both are given.
    """
    levels = topic_filter.split("/")
    out = [".".join("*" if lv == "+" else ">" if lv == "#" else lv for lv in levels)]
    if levels[-1] == "#" and len(levels) > 1:
        out.append(".".join("*" if lv == "+" else lv for lv in levels[:-1]))
    return out


def _quote(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _subject_list(filters: Sequence[str]) -> str:
    return "[" + ", ".join(_quote(s) for f in filters for s in nats_subjects(f)) + "]"


def free_ports(count: int) -> list[int]:
    """`count` distinct free ports on 127.0.0.1 (held open together, so they differ)."""
    socks = []
    try:
        for _ in range(count):
            s = socket.socket()
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            s.bind((HOST, 0))
            socks.append(s)
        return [int(s.getsockname()[1]) for s in socks]
    finally:
        for s in socks:
            s.close()


def nats_server() -> str:
    found = shutil.which("nats-server") or ("/usr/bin/nats-server" if Path("/usr/bin/nats-server").exists() else None)
    if found is None:
        raise ClusterError("nats-server not found: scripts/install-system-deps.sh --cluster installs it")
    return found


@dataclass(slots=True)
class Node:
    """One server of the cluster and its ports; `process` is None once stopped or killed."""

    index: int
    directory: Path
    mqtt_port: int
    client_port: int
    route_port: int
    http_port: int
    process: subprocess.Popen[bytes] | None = None

    @property
    def name(self) -> str:
        return f"n{self.index + 1}"

    @property
    def log(self) -> Path:
        return self.directory / "server.log"

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None


@dataclass(slots=True)
class NatsCluster:
    """`size` NATS servers on loopback forming one JetStream cluster, each with an MQTT listener.

    `replicas` is the replication factor of the MQTT streams (sessions, messages, retained) and of
    the consumers that hold each persistent session's QoS 1 subscriptions: 3 keeps every
    acknowledged message through the loss of any one node of three.
    """

    directory: Path
    users: Sequence[BrokerUser]
    size: int = 3
    replicas: int = 3
    max_ack_pending: int = 4096  # un-PUBACKed deliveries per subscription (ingest acks once durable)
    nodes: list[Node] = field(default_factory=list)

    def __post_init__(self) -> None:
        if not 1 <= self.replicas <= self.size:
            raise ClusterError(f"replicas must be between 1 and {self.size}")
        self.directory = self.directory.resolve()
        if not self.nodes:
            ports = free_ports(4 * self.size)
            self.nodes = []
            for i in range(self.size):
                mqtt, client, route, http = ports[4 * i : 4 * i + 4]
                self.nodes.append(Node(i, self.directory / f"n{i + 1}", mqtt, client, route, http))

    def config(self, node: Node) -> str:
        """The node's configuration file (NATS's own format)."""
        routes = ", ".join(f'"nats-route://{HOST}:{n.route_port}"' for n in self.nodes if n is not node)
        users = []
        for u in self.users:
            # a QoS 1 subscription is a JetStream consumer delivering on the account's $MQTT.sub subjects
            subscribe = _subject_list(u.subscribe)[:-1] + ', "$MQTT.sub.>"]' if u.subscribe else "[]"
            perms = f"publish: {_subject_list(u.publish)}, subscribe: {subscribe}"
            users.append(f"      {{user: {_quote(u.name)}, password: {_quote(u.password)}, permissions: {{{perms}}}}}")
        return "\n".join(
            [
                "# generated by sitewatch.cluster; edits are overwritten",
                f"server_name: {_quote(node.name)}",
                f"listen: {_quote(f'{HOST}:{node.client_port}')}",
                f"http: {_quote(f'{HOST}:{node.http_port}')}",
                "max_payload: 4MB",  # above PROTOCOL's 1 MiB, so oversize batches reach ingest's dead letters
                "jetstream {",
                f"  store_dir: {_quote(str(node.directory / 'jetstream'))}",
                "  max_memory_store: 256MB",
                "  max_file_store: 4GB",
                "}",
                "cluster {",
                f"  name: {_quote(CLUSTER_NAME)}",
                f"  listen: {_quote(f'{HOST}:{node.route_port}')}",
                f"  routes: [{routes}]",
                "}",
                "mqtt {",
                f"  listen: {_quote(f'{HOST}:{node.mqtt_port}')}",
                f"  stream_replicas: {self.replicas}",
                f"  consumer_replicas: {self.replicas}",
                "  consumer_memory_storage: false",
                f"  max_ack_pending: {self.max_ack_pending}",
                '  ack_wait: "30s"',
                "}",
                "accounts {",
                f"  {ACCOUNT}: {{",
                "    jetstream: enabled",
                "    users: [",
                *users,
                "    ]",
                "  }",
                "}",
                "",
            ]
        )

    # -- lifecycle --------------------------------------------------------------------------------
    def start(self, timeout: float = READY_TIMEOUT_S, probe: BrokerUser | None = None) -> NatsCluster:
        """Start every node that is not running and wait until each accepts an MQTT session.

        The probe connects with a persistent session and subscribes at QoS 1 on every node, which
        needs the JetStream meta leader and the account's MQTT streams: a cluster that answers it
        is ready for the services' sessions.
        """
        binary = nats_server()
        for node in self.nodes:
            if node.running:
                continue
            node.directory.mkdir(parents=True, exist_ok=True)
            conf = node.directory / "nats.conf"
            conf.write_text(self.config(node))
            conf.chmod(0o600)  # it holds the users' passwords
            log = open(node.log, "ab")  # noqa: SIM115 (handed to the child)
            node.process = subprocess.Popen(
                [binary, "-c", str(conf)],
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
                cwd=node.directory,
            )
            log.close()
        user = probe or next((u for u in self.users if u.subscribe), None)
        deadline = time.monotonic() + timeout
        for node in self.nodes:
            if not node.running:
                continue
            while not self._probe(node, user):
                if not node.running:
                    raise ClusterError(f"{node.name} exited: see {node.log}\n{self._tail(node)}")
                if time.monotonic() > deadline:
                    raise ClusterError(f"{node.name} not ready within {timeout:.0f} s\n{self._tail(node)}")
                time.sleep(0.2)
        return self

    @staticmethod
    def _tail(node: Node) -> str:
        return "\n".join(node.log.read_text(errors="replace").splitlines()[-20:]) if node.log.exists() else ""

    @staticmethod
    def _probe(node: Node, user: BrokerUser | None) -> bool:
        """True once the node grants a QoS 1 subscription on a persistent session."""
        client = paho.Client(CallbackAPIVersion.VERSION2, client_id=f"cluster-probe-{node.name}", clean_session=True)
        if user is not None:
            client.username_pw_set(user.name, user.password)
        granted: list[bool] = []
        client.on_subscribe = lambda _c, _u, _m, reasons, _p: granted.append(all(not r.is_failure for r in reasons))
        topic = user.subscribe[0].replace("#", "probe").replace("+", "probe") if user and user.subscribe else "probe"
        try:
            client.connect(HOST, node.mqtt_port, keepalive=5)
            deadline = time.monotonic() + 3.0
            while not client.is_connected() and time.monotonic() < deadline:
                client.loop(timeout=0.1)
            if not client.is_connected():
                return False
            client.subscribe(topic, 1)
            while not granted and client.is_connected() and time.monotonic() < deadline:
                client.loop(timeout=0.1)
            ok = bool(granted) and granted[0]
            client.unsubscribe(topic)
            client.loop(timeout=0.1)
            client.disconnect()
            return ok
        except OSError:
            return False

    def kill(self, index: int) -> None:
        """SIGKILL node `index` (0-based), as a machine losing power: no goodbye to its peers."""
        node = self.nodes[index]
        if node.process is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.kill(node.process.pid, signal.SIGKILL)
        node.process.wait()
        node.process = None

    def stop(self, timeout: float = 10.0) -> None:
        """Stop every node (SIGTERM, then SIGKILL after `timeout`)."""
        for node in self.nodes:
            if node.process is not None and node.process.poll() is None:
                node.process.terminate()
        for node in self.nodes:
            if node.process is None:
                continue
            try:
                node.process.wait(timeout)
            except subprocess.TimeoutExpired:
                node.process.kill()
                node.process.wait()
            node.process = None

    def __enter__(self) -> NatsCluster:
        return self.start()

    def __exit__(
        self, _type: type[BaseException] | None, _exc: BaseException | None, _tb: TracebackType | None
    ) -> None:
        self.stop()
