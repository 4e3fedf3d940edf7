"""An asyncio face on paho-mqtt with manual acknowledgements.

aiomqtt acknowledges a QoS 1 message as soon as it is handed over, which would make a crash
between receipt and the database commit lose it. Paho's manual-ack mode lets a service send the
PUBACK only once the message is durable (committed, or fsynced to the spool): the broker keeps it
in the persistent session until then and redelivers it after a restart.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion

from sitewatch.settings import Settings
from sitewatch.tls import client_context

log = logging.getLogger(__name__)


class _Client(paho.Client):
    """paho's client whose network thread survives an exception in its loop. paho 2.1 iterates
    its outgoing packets while reconnecting without the lock `ack` takes, and a PUBACK queued from
    the event loop at that moment raised "deque mutated during iteration" and killed the thread:
    the session then never reconnected. Now the thread logs it and goes on."""

    def _thread_main(self) -> None:
        try:
            while not self._thread_terminate:
                try:
                    self.loop_forever(retry_first_connection=True)
                    break  # disconnect() was called
                except Exception:
                    log.exception("MQTT network loop failed; reconnecting")
                    time.sleep(1.0)
        finally:
            self._thread = None


@dataclass(frozen=True, slots=True)
class Delivery:
    topic: str
    payload: bytes
    mid: int
    qos: int
    received_ms: int
    retain: bool = False  # sent from the broker's retained store on subscribing, not published just now


class MqttSession:
    """A persistent (clean_session=False) subscriber session whose deliveries arrive on a queue."""

    def __init__(
        self,
        client_id: str,
        host: str,
        port: int,
        *,
        username: str | None,
        password: str | None,
        subscriptions: list[tuple[str, int]],
        persistent: bool = True,
        manual_ack: bool = True,
        tls: bool = False,
        cafile: Path | None = None,
    ) -> None:
        self.host, self.port = host, port
        self.subscriptions = subscriptions
        self.queue: asyncio.Queue[Delivery] = asyncio.Queue()
        self.connected = asyncio.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        # deliveries received by paho's thread, handed to the loop in bulk (one wake-up per burst,
        # not a self-pipe write per message: that was a tenth of alerting's CPU at 90k readings/s)
        self._incoming: list[Delivery] = []
        self._incoming_lock = threading.Lock()
        # sites whose messages this session acknowledges on arrival without handing them over
        # (another shard's, docs/scaling.md); replaced whole, read by paho's thread
        self.ignored_sites: frozenset[str] = frozenset()
        self._client = _Client(
            CallbackAPIVersion.VERSION2,
            client_id=client_id,
            clean_session=not persistent,
            protocol=paho.MQTTv311,
            manual_ack=manual_ack,
        )
        if username:
            self._client.username_pw_set(username, password)
        if tls or cafile:
            self._client.tls_set_context(client_context(cafile))
        self._client.reconnect_delay_set(min_delay=1, max_delay=5)
        self._client.on_connect = self._on_connect
        self._client.on_disconnect = self._on_disconnect
        self._client.on_message = self._on_message

    @classmethod
    def for_service(
        cls, client_id: str, settings: Settings, subscriptions: list[tuple[str, int]], **options: bool
    ) -> MqttSession:
        """A session on the broker and with the credentials of a service's settings."""
        return cls(
            client_id,
            settings.mqtt_host,
            settings.mqtt_port,
            username=settings.mqtt_user,
            password=settings.mqtt_password,
            subscriptions=subscriptions,
            tls=settings.mqtt_tls,
            cafile=settings.mqtt_cafile,
            **options,
        )

    def _on_connect(self, client: paho.Client, _u: Any, _f: Any, reason: Any, _p: Any) -> None:
        if reason.is_failure:
            log.error("MQTT connect refused: %s", reason)
            return
        for topic, qos in self.subscriptions:
            client.subscribe(topic, qos)
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self.connected.set)

    def _on_disconnect(self, _c: paho.Client, _u: Any, _f: Any, reason: Any, _p: Any) -> None:
        log.warning("MQTT disconnected: %s", reason)
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self.connected.clear)

    def _on_message(self, client: paho.Client, _u: Any, msg: paho.MQTTMessage) -> None:
        assert self._loop is not None
        if self.ignored_sites and msg.topic.split("/", 3)[2] in self.ignored_sites:
            if msg.qos:
                client.ack(msg.mid, msg.qos)  # on paho's own thread: no race with its reconnects
            return
        delivery = Delivery(msg.topic, bytes(msg.payload), msg.mid, msg.qos, int(time.time() * 1000), bool(msg.retain))
        with self._incoming_lock:
            self._incoming.append(delivery)
            if len(self._incoming) > 1:
                return  # a hand-over is already scheduled and will take this one too
        self._loop.call_soon_threadsafe(self._hand_over)

    def _hand_over(self) -> None:
        with self._incoming_lock:
            deliveries, self._incoming = self._incoming, []
        for delivery in deliveries:
            self.queue.put_nowait(delivery)

    async def start(self, timeout: float = 10.0) -> None:
        self._loop = asyncio.get_running_loop()
        self._client.connect_async(self.host, self.port, keepalive=30)
        self._client.loop_start()
        await asyncio.wait_for(self.connected.wait(), timeout)

    def ack(self, mid: int, qos: int) -> None:
        """PUBACK a delivery; safe from the event loop thread (paho queues the packet under a lock).
        Not while disconnected: the broker sends the message again on reconnecting, and a
        persistent session keeps it until then."""
        if qos and self.connected.is_set():
            self._client.ack(mid, qos)

    def publish(self, topic: str, payload: bytes, qos: int = 1, retain: bool = False) -> None:
        self._client.publish(topic, payload, qos=qos, retain=retain)

    async def stop(self) -> None:
        self._client.disconnect()
        await asyncio.to_thread(self._client.loop_stop)
