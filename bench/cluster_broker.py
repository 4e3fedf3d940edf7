"""QoS 1 through a 3-node clustered broker beside one Mosquitto measured in the same run.

    .venv/bin/python bench/cluster_broker.py [--messages 4000] [--readings 50] [--brokers mosquitto,nats]

For each broker it starts a fresh instance on loopback (Mosquitto: one process, configured as the
stack does; NATS: sitewatch.cluster, 3 nodes, JetStream R3 for the MQTT streams and consumers),
then, with a gateway publishing on node 1 and a persistent, manually acknowledging subscriber (as
ingest) on node 2:

  flood     --messages telemetry batches of --readings readings, QoS 1, 1,000 in flight (as the
            simulator's gateways): rate = messages / (last delivery - first publish)
  latency   400 batches paced at 100/s: publish -> delivery, p50 and p99
  kill      for the clusters: the flood again, node 3 SIGKILLed halfway; lost = batches the broker
            PUBACKed to the gateway that the subscriber never received (0 is the requirement)

and prints each against Mosquitto. Why NATS and not RabbitMQ's MQTT plugin: docs/scaling.md.
"""

from __future__ import annotations

import argparse
import contextlib
import getpass
import json
import os
import platform
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion

from sitewatch import broker_auth
from sitewatch.catalog.broker import (
    GatewayCredential,
    ServiceUser,
    hash_password,
    render_acl_file,
    render_password_file,
)
from sitewatch.cluster import HOST, NatsCluster, free_ports, gateway_user, service_users

SITE, GATEWAY, GW_PASSWORD = "BENCH", "GW-1", "bench-gw-password"
SERVICE_PASSWORD = "bench-ingest-password"
TOPIC = f"sw/v1/{SITE}/{GATEWAY}/telemetry"


class Broker(Protocol):
    """Where the gateway publishes and the subscriber listens; kill(2) drops the third node."""

    name: str
    publish_port: int
    subscribe_port: int

    def kill(self, index: int) -> None: ...
    def stop(self) -> None: ...


# -- the brokers ------------------------------------------------------------------------------------
@dataclass
class Mosquitto:
    """One Mosquitto with the stack's own configuration (persistence, byte-bounded queues, ACLs)."""

    directory: Path
    name: str = "mosquitto (1 node)"
    publish_port: int = 0
    subscribe_port: int = 0
    process: subprocess.Popen[bytes] | None = None

    def start(self) -> Mosquitto:
        (self.directory / "data").mkdir(parents=True, exist_ok=True)
        self.publish_port = self.subscribe_port = free_ports(1)[0]
        gw = GatewayCredential(SITE, GATEWAY, hash_password(GW_PASSWORD))
        svc = ServiceUser("sitewatch-ingest", hash_password(SERVICE_PASSWORD), read=["sw/#"])
        (self.directory / "passwd").write_text(render_password_file([gw], [svc]))
        (self.directory / "acl").write_text(render_acl_file([gw], [svc]))
        conf = self.directory / "mosquitto.conf"
        conf.write_text(broker_auth.broker_config(self.directory, self.publish_port, user=getpass.getuser()))
        self.process = subprocess.Popen(
            ["mosquitto", "-c", str(conf)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=self.directory
        )
        wait_connectable(self.publish_port, "sitewatch-ingest", SERVICE_PASSWORD)
        return self

    def kill(self, index: int) -> None:
        raise NotImplementedError("one node: nothing to lose but everything")

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            self.process.wait(10)


@dataclass
class Nats:
    """sitewatch.cluster's 3-node NATS: JetStream R3 for MQTT streams and consumers."""

    directory: Path
    name: str = "nats 2.9 (3 nodes, R3)"
    publish_port: int = 0
    subscribe_port: int = 0
    cluster: NatsCluster | None = None

    def start(self) -> Nats:
        users = [*service_users({"ingest": SERVICE_PASSWORD}), gateway_user(SITE, GATEWAY, GW_PASSWORD)]
        self.cluster = NatsCluster(self.directory, users).start()
        self.publish_port, self.subscribe_port = self.cluster.nodes[0].mqtt_port, self.cluster.nodes[1].mqtt_port
        return self

    def kill(self, index: int) -> None:
        assert self.cluster is not None
        self.cluster.kill(index)

    def stop(self) -> None:
        if self.cluster is not None:
            self.cluster.stop()


# -- clients --------------------------------------------------------------------------------------
def wait_connectable(port: int, user: str, password: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        client = paho.Client(CallbackAPIVersion.VERSION2, client_id="bench-probe")
        client.username_pw_set(user, password)
        with contextlib.suppress(OSError):
            client.connect(HOST, port, keepalive=5)
            end = time.monotonic() + 2
            while not client.is_connected() and time.monotonic() < end:
                client.loop(0.1)
            if client.is_connected():
                client.disconnect()
                return
        time.sleep(0.2)
    raise TimeoutError(f"no CONNACK on {port}")


class Subscriber:
    """As ingest: a persistent session, QoS 1, each delivery PUBACKed by hand once recorded."""

    def __init__(self, port: int, client_id: str) -> None:
        self.received: dict[int, float] = {}  # seq -> delivery time
        self.sent: dict[int, float] = {}  # seq -> publish time carried in the payload
        self.duplicates = 0
        self._lock = threading.Lock()
        self._subscribed = threading.Event()
        c = paho.Client(
            CallbackAPIVersion.VERSION2,
            client_id=client_id,
            clean_session=False,
            protocol=paho.MQTTv311,
            manual_ack=True,
        )
        c.username_pw_set("sitewatch-ingest", SERVICE_PASSWORD)
        c.reconnect_delay_set(0.2, 2)
        c.on_connect = lambda cl, *_: cl.subscribe("sw/v1/+/+/telemetry", 1)
        c.on_subscribe = lambda *_: self._subscribed.set()
        c.on_message = self._on_message
        c.connect(HOST, port, keepalive=30)
        c.loop_start()
        if not self._subscribed.wait(30):
            raise TimeoutError("no SUBACK")
        self.client = c

    def _on_message(self, client: paho.Client, _u: Any, msg: paho.MQTTMessage) -> None:
        now = time.time()
        body = json.loads(msg.payload)
        with self._lock:
            if body["seq"] in self.received:
                self.duplicates += 1
            else:
                self.received[body["seq"]] = now
                self.sent[body["seq"]] = body["t"]
        client.ack(msg.mid, msg.qos)

    def wait_for(self, seqs: set[int], timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self._lock:
                if seqs <= self.received.keys():
                    return True
            time.sleep(0.02)
        return False

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


class Publisher:
    """As a gateway (simulators/gateway.py): QoS 1, 1,000 in flight, resends after a reconnect."""

    def __init__(self, port: int, readings: int) -> None:
        self.readings = readings
        self.infos: dict[int, paho.MQTTMessageInfo] = {}  # seq -> paho's handle, published once PUBACKed
        connected = threading.Event()
        c = paho.Client(CallbackAPIVersion.VERSION2, client_id=f"gw-{SITE}-{GATEWAY}", protocol=paho.MQTTv311)
        c.username_pw_set(f"{SITE}/{GATEWAY}", GW_PASSWORD)
        c.max_inflight_messages_set(1000)
        c.max_queued_messages_set(0)
        c.reconnect_delay_set(0.2, 2)
        c.on_connect = lambda *_: connected.set()
        c.connect(HOST, port, keepalive=30)
        c.loop_start()
        if not connected.wait(30):
            raise TimeoutError("no CONNACK")
        self.client = c

    @property
    def acked(self) -> set[int]:
        return {seq for seq, info in list(self.infos.items()) if info.is_published()}

    def publish(self, seq: int) -> None:
        t = time.time()
        readings = [{"point": f"P{i}", "ts": int(t * 1000) + i, "value": 20.5 + i} for i in range(self.readings)]
        body = json.dumps({"seq": seq, "t": t, "readings": readings}, separators=(",", ":")).encode()
        self.infos[seq] = self.client.publish(TOPIC, body, qos=1)

    def wait_acked(self, seqs: set[int], timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if seqs <= self.acked:
                return True
            time.sleep(0.05)
        return False

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else float("nan")


@contextlib.contextmanager
def clients(broker: Broker, readings: int, tag: str) -> Iterator[tuple[Publisher, Subscriber]]:
    sub = Subscriber(broker.subscribe_port, f"bench-ingest-{tag}")
    pub = Publisher(broker.publish_port, readings)
    try:
        yield pub, sub
    finally:
        pub.close()
        sub.close()


def measure(broker: Broker, args: argparse.Namespace, kill: bool) -> dict[str, Any]:
    out: dict[str, Any] = {"broker": broker.name}
    with clients(broker, args.readings, "flood") as (pub, sub):
        seqs = set(range(1, args.messages + 1))
        t0 = time.time()
        for seq in sorted(seqs):
            pub.publish(seq)
        ok = sub.wait_for(seqs, 120)
        last = max(sub.received.values()) if sub.received else t0
        out["flood_msgs_s"] = round(len(sub.received) / (last - t0), 1) if ok else None
        out["flood_readings_s"] = round(len(sub.received) * args.readings / (last - t0)) if ok else None
    with clients(broker, args.readings, "paced") as (pub, sub):
        seqs = set(range(1, 401))
        for seq in sorted(seqs):
            pub.publish(seq)
            time.sleep(0.01)
        sub.wait_for(seqs, 60)
        lat = [(sub.received[s] - sub.sent[s]) * 1000 for s in sub.received]
        out["latency_p50_ms"], out["latency_p99_ms"] = round(pct(lat, 0.5), 2), round(pct(lat, 0.99), 2)
    if kill:
        with clients(broker, args.readings, "kill") as (pub, sub):
            seqs = set(range(1, args.messages + 1))
            killed_at = None
            t0 = time.monotonic()
            for seq in sorted(seqs):
                pub.publish(seq)
                if seq == args.messages // 2:
                    broker.kill(2)
                    killed_at = time.monotonic() - t0
            acked_all = pub.wait_acked(seqs, 120)
            sub.wait_for(pub.acked, 120)
            lost = pub.acked - sub.received.keys()
            out["kill"] = {
                "killed_after_s": round(killed_at or 0, 2),
                "published": len(seqs),
                "acked_by_broker": len(pub.acked),
                "all_acked": acked_all,
                "received": len(sub.received),
                "lost_acked": len(lost),
                "duplicates": sub.duplicates,
                "took_s": round(time.monotonic() - t0, 2),
            }
    return out


def machine() -> str:
    cpu = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if "model name" in line
        ),
        platform.processor(),
    )
    return f"{os.cpu_count()} cores ({cpu}), Python {platform.python_version()}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--messages", type=int, default=4000)
    parser.add_argument("--readings", type=int, default=50, help="readings per telemetry batch")
    parser.add_argument("--brokers", default="mosquitto,nats")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    wanted = args.brokers.split(",")
    results = []
    with tempfile.TemporaryDirectory(prefix="sw-cluster-bench-") as tmp:
        for name in wanted:
            d = Path(tmp) / name
            t0 = time.monotonic()
            broker: Mosquitto | Nats = Mosquitto(d).start() if name == "mosquitto" else Nats(d).start()
            started = round(time.monotonic() - t0, 1)
            try:
                result = measure(broker, args, kill=name != "mosquitto")
            finally:
                broker.stop()
            result["ready_s"] = started
            results.append(result)
            if not args.json:
                print(json.dumps(result), flush=True)
    base = next((r for r in results if r["broker"].startswith("mosquitto")), None)
    if args.json:
        print(json.dumps({"machine": machine(), "args": vars(args), "results": results}))
        return
    print(f"\nmachine  {machine()}")
    print(f"batches  {args.messages} x {args.readings} readings, QoS 1, publish on node 1, persistent subscriber on 2")
    print(f"{'broker':34} {'ready s':>8} {'msgs/s':>9} {'vs mosq':>8} {'p50 ms':>8} {'p99 ms':>8}  node 3 killed")
    for r in results:
        ratio = f"{r['flood_msgs_s'] / base['flood_msgs_s']:.2f}x" if base and r["flood_msgs_s"] else "-"
        k = r.get("kill")
        killed = (
            f"lost {k['lost_acked']} of {k['acked_by_broker']} acked, {k['duplicates']} dup, {k['took_s']} s"
            if k
            else "-"
        )
        print(
            f"{r['broker']:34} {r['ready_s']:>8} {r['flood_msgs_s'] or '-':>9} {ratio:>8} "
            f"{r['latency_p50_ms']:>8} {r['latency_p99_ms']:>8}  {killed}"
        )


if __name__ == "__main__":
    main()
