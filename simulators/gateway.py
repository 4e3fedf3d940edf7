"""A gateway client: its own credentials, a retained `online` status with an `offline` last will,
and QoS 1 batches numbered by a per-gateway `seq`."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion

from sitewatch.tls import client_context


class Gateway:
    def __init__(
        self,
        host: str,
        port: int,
        site: str,
        gateway: str,
        password: str,
        *,
        username: str | None = None,
        first_seq: int = 1,
        client_id: str | None = None,
        cafile: str | Path | None = None,
        tls: bool = False,
    ) -> None:
        """`cafile` (or `tls`, to trust the system's CAs) connects over TLS, verifying the broker's
        certificate and name."""
        self.site, self.gateway = site, gateway
        self.seq = first_seq
        self.prefix = f"sw/v1/{site}/{gateway}"
        self._connected = threading.Event()
        self.refused: str | None = None
        self._client = paho.Client(
            CallbackAPIVersion.VERSION2, client_id=client_id or f"gw-{site}-{gateway}", protocol=paho.MQTTv311
        )
        self._client.username_pw_set(username or f"{site}/{gateway}", password)
        if tls or cafile:
            self._client.tls_set_context(client_context(cafile))
        self._client.will_set(f"{self.prefix}/status", b'{"state": "offline"}', qos=1, retain=True)
        self._client.max_inflight_messages_set(1000)
        self._client.max_queued_messages_set(0)
        self._client.on_connect = self._on_connect
        self._client.on_subscribe = self._on_subscribe
        self._alerts: Callable[[bytes], None] | None = None
        self._subscribed = threading.Event()
        self._sub_refused = False
        self._host, self._port = host, port

    def _on_connect(self, client: paho.Client, _u: Any, _f: Any, reason: Any, _p: Any) -> None:
        if reason.is_failure:
            self.refused = str(reason)
        else:
            client.publish(f"{self.prefix}/status", b'{"state": "online"}', qos=1, retain=True)
            if self._alerts is not None:  # a reconnect resumes the subscription
                client.subscribe(f"sw/v1/{self.site}/alerts", qos=1)
        self._connected.set()

    def _on_subscribe(self, _c: paho.Client, _u: Any, _mid: int, reasons: list[Any], _p: Any) -> None:
        self._sub_refused = any(r.is_failure for r in reasons)
        self._subscribed.set()

    def subscribe_alerts(self, callback: Callable[[bytes], None], timeout: float = 10.0) -> None:
        """Receive the site's alert objects (raw payloads on paho's thread), as an enterprise's own
        system does with its gateway's credentials; returns once the broker granted it."""
        self._alerts = callback
        self._client.on_message = lambda _c, _u, msg: callback(bytes(msg.payload))
        self._subscribed.clear()
        self._client.subscribe(f"sw/v1/{self.site}/alerts", qos=1)
        if not self._subscribed.wait(timeout):
            raise TimeoutError("no SUBACK from the broker")
        if self._sub_refused:
            raise PermissionError(f"the broker refused {self.site}/{self.gateway} the alerts of {self.site}")

    def connect(self, timeout: float = 10.0) -> Gateway:
        self._client.connect(self._host, self._port, keepalive=30)
        self._client.loop_start()
        if not self._connected.wait(timeout):
            raise TimeoutError("no CONNACK from the broker")
        if self.refused:
            self._client.loop_stop()
            raise ConnectionRefusedError(self.refused)
        return self

    def publish_raw(self, channel: str, payload: bytes, *, topic: str | None = None) -> paho.MQTTMessageInfo:
        return self._client.publish(topic or f"{self.prefix}/{channel}", payload, qos=1)

    def telemetry(self, readings: Iterable[Mapping[str, Any]], *, seq: int | None = None) -> paho.MQTTMessageInfo:
        """Publish one telemetry batch; `seq` defaults to the next number (pass one to resend)."""
        if seq is None:
            seq, self.seq = self.seq, self.seq + 1
        body = json.dumps({"seq": seq, "readings": list(readings)}, separators=(",", ":")).encode()
        return self.publish_raw("telemetry", body)

    def positions(self, events: Iterable[Mapping[str, Any]]) -> paho.MQTTMessageInfo:
        seq, self.seq = self.seq, self.seq + 1
        body = json.dumps({"seq": seq, "events": list(events)}, separators=(",", ":")).encode()
        return self.publish_raw("positions", body)

    def flush(self, infos: Iterable[paho.MQTTMessageInfo], timeout: float = 30.0) -> None:
        """Wait until the broker has acknowledged every publish in `infos`, those handed over while
        the connection was down too: paho keeps a QoS 1 message and sends it once reconnected, but
        its `wait_for_publish` raises for it."""
        deadline = time.monotonic() + timeout
        pace = threading.Event()
        for info in infos:
            while not info._published:  # the acknowledgement flag, whatever the rc at hand-over
                if time.monotonic() > deadline:
                    raise TimeoutError(f"message {info.mid} not acknowledged within {timeout:g} s")
                pace.wait(0.01)  # paho offers no wait that survives a reconnect

    def close(self) -> None:
        self._client.disconnect()
        self._client.loop_stop()

    def leave(self, timeout: float = 10.0) -> None:
        """Shut down in order: announce `offline` as the last will would, then disconnect (which
        discards the will)."""
        self._client.publish(f"{self.prefix}/status", b'{"state": "offline"}', qos=1, retain=True).wait_for_publish(
            timeout
        )
        self.close()

    def die(self) -> None:
        """Drop the connection without DISCONNECT, as a gateway losing power does: the broker
        publishes the last will."""
        self._client.loop_stop()
        sock = self._client.socket()
        if sock is not None:
            sock.close()
