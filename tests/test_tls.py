"""Transport security: `stack up --tls` on a data dir of its own. Mosquitto's own clients publish and
subscribe through the TLS listener with the stack's CA; plain MQTT, clients that do not trust the
CA and weak TLS are refused; the API is HTTPS only; the choice and the CA outlive `stack up`."""

from __future__ import annotations

import asyncio
import getpass
import json
import os
import socket
import ssl
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import paho.mqtt.client as paho
import pytest
from cryptography import x509
from paho.mqtt.enums import CallbackAPIVersion

from sitewatch.stack import free_port
from sitewatch.tls import client_context, local_ca
from tests.conftest import SITEWATCH, StackHandle, sw, threshold_site, traversable, unique

PASSWORD = "gw-secret-1"  # threshold_site's gateway GW-1


@pytest.fixture(scope="module")
def tls_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[StackHandle]:
    data = tmp_path_factory.mktemp("tls")
    traversable(data)
    first = json.loads(sw("stack", "up", "--tls", "--no-simulators", "--json", data_dir=data).stdout)
    handle = StackHandle(data)  # `stack up` again, without the flag
    try:
        assert handle.api == first["api"] and handle.api.startswith("https://127.0.0.1:")
        assert first["mqtt"] == {"host": "127.0.0.1", "port": handle.mqtt_port, "tls": True, "cafile": handle.cafile}
        yield handle
    finally:
        sw("stack", "down", data_dir=data, check=False)


def mqtt_args(port: int, site: str, *tls: str) -> list[str]:
    return ["-h", "127.0.0.1", "-p", str(port), "-u", f"{site}/GW-1", "-P", PASSWORD, "-q", "1", *tls]


def publish(port: int, site: str, value: float, *tls: str, seq: int = 1) -> subprocess.CompletedProcess[str]:
    body = json.dumps({"seq": seq, "readings": [{"point": "P0", "ts": int(time.time() * 1000), "value": value}]})
    return subprocess.run(
        ["mosquitto_pub", *mqtt_args(port, site, *tls), "-t", f"sw/v1/{site}/GW-1/telemetry", "-m", body],
        capture_output=True,
        text=True,
        timeout=20,
        check=False,
    )


def stored(stack: StackHandle, site: str, expect: int = 0, timeout: float = 10) -> int:
    """The site's stored readings, once they are `expect` or `timeout` has passed."""

    async def count() -> int:
        conn = await asyncpg.connect(stack.dsn)
        try:
            return int(
                await conn.fetchval(
                    "SELECT count(*) FROM readings r JOIN points p ON p.id = r.point_id"
                    " JOIN sites s ON s.id = p.site_id WHERE s.code = $1",
                    site,
                )
            )
        finally:
            await conn.close()

    deadline = time.monotonic() + timeout
    while (n := asyncio.run(count())) != expect and time.monotonic() < deadline:
        time.sleep(0.2)
    return n


def handshake(port: int, ctx: ssl.SSLContext) -> str:
    """The TLS version negotiated with 127.0.0.1:`port`, or raises ssl.SSLError."""
    with (
        socket.create_connection(("127.0.0.1", port), timeout=5) as raw,
        ctx.wrap_socket(raw, server_hostname="127.0.0.1") as tls,
    ):
        version = tls.version()
        assert version is not None
        return version


def tls12(cafile: str | None, ciphers: str) -> ssl.SSLContext:
    """A client that offers only TLS 1.2 with `ciphers`."""
    ctx = client_context(cafile)
    ctx.maximum_version = ssl.TLSVersion.TLSv1_2
    ctx.set_ciphers(ciphers)
    return ctx


def test_the_certificates(tls_stack: StackHandle) -> None:
    tls_dir = tls_stack.data_dir / "tls"
    ca = x509.load_pem_x509_certificate((tls_dir / "ca.crt").read_bytes())
    server = x509.load_pem_x509_certificate((tls_dir / "server.crt").read_bytes())
    san = server.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert set(san.get_values_for_type(x509.DNSName)) == {"localhost"}
    assert {str(ip) for ip in san.get_values_for_type(x509.IPAddress)} == {"127.0.0.1"}
    assert (
        server.issuer == ca.subject
        and server.extensions.get_extension_for_class(x509.BasicConstraints).value.ca is False
    )
    server.verify_directly_issued_by(ca)
    for key in ("ca.key", "server.key"):
        assert (tls_dir / key).stat().st_mode & 0o777 == 0o600
    assert tls_dir.stat().st_mode & 0o777 == 0o700
    conf = (tls_stack.data_dir / "mosquitto" / "mosquitto.conf").read_text()
    assert [line for line in conf.splitlines() if line.startswith("listener")] == [
        f"listener {tls_stack.mqtt_port} 127.0.0.1"
    ]  # one listener, TLS: no plain MQTT, not even for the services
    assert "certfile" in conf and "tls_version tlsv1.2" in conf


def test_mosquitto_clients_over_tls_store_readings_and_receive_the_alert(tls_stack: StackHandle) -> None:
    site = threshold_site(tls_stack, "TLS")
    cafile = ("--cafile", str(tls_stack.cafile))
    topic = ["-t", f"sw/v1/{site}/alerts", "-C", "1", "-W", "30", "-d"]  # -d: tells when the SUBACK came
    sub = subprocess.Popen(
        ["stdbuf", "-oL", "mosquitto_sub", *mqtt_args(tls_stack.mqtt_port, site, *cafile), *topic],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        assert sub.stdout is not None
        for line in sub.stdout:
            if "SUBACK" in line:
                break
        else:
            raise AssertionError(f"mosquitto_sub over TLS did not subscribe: {sub.wait(10)}")
        pub = publish(tls_stack.mqtt_port, site, 99.0, *cafile)
        assert pub.returncode == 0, pub.stderr
        out, _ = sub.communicate(timeout=30)
    finally:
        sub.kill()
    alerts = [json.loads(line) for line in out.splitlines() if line.startswith("{")]
    assert len(alerts) == 1 and alerts[0]["site"] == site and alerts[0]["source"] == {"type": "point", "code": "P0"}, (
        out
    )
    assert stored(tls_stack, site, expect=1) == 1


def test_plain_weak_and_untrusted_mqtt_clients_are_refused(tls_stack: StackHandle, tmp_path: Path) -> None:
    site = threshold_site(tls_stack, "TLSNO")
    plain = publish(tls_stack.mqtt_port, site, 99.0, seq=1)
    assert plain.returncode != 0, plain.stderr
    other_ca = local_ca(tmp_path / "other").cafile
    wrong = publish(tls_stack.mqtt_port, site, 99.0, "--cafile", str(other_ca), seq=2)
    assert wrong.returncode != 0 and "TLS error" in wrong.stderr, wrong.stderr
    system = publish(tls_stack.mqtt_port, site, 99.0, "--capath", "/etc/ssl/certs", seq=3)  # trusts public CAs only
    assert system.returncode != 0
    trusted = publish(tls_stack.mqtt_port, site, 1.0, "--cafile", str(tls_stack.cafile), seq=4)
    assert trusted.returncode == 0, trusted.stderr
    assert stored(tls_stack, site, expect=1) == 1  # the trusted client's reading, none of the others'
    with pytest.raises(ssl.SSLCertVerificationError):  # paho with the system's trust store
        client = paho.Client(CallbackAPIVersion.VERSION2, client_id=unique("untrusted"))
        client.tls_set_context(client_context())
        client.connect("127.0.0.1", tls_stack.mqtt_port)
    # TLS 1.3, and TLS 1.2 with forward secrecy and AEAD, work; a TLS 1.2 CBC/SHA-1 suite is refused
    assert handshake(tls_stack.mqtt_port, client_context(tls_stack.cafile)) == "TLSv1.3"
    assert handshake(tls_stack.mqtt_port, tls12(tls_stack.cafile, "ECDHE-ECDSA-AES128-GCM-SHA256")) == "TLSv1.2"
    with pytest.raises(ssl.SSLError):
        handshake(tls_stack.mqtt_port, tls12(tls_stack.cafile, "ECDHE-ECDSA-AES128-SHA"))


def test_the_api_is_https_only(tls_stack: StackHandle) -> None:
    with tls_stack.http() as api:  # verify= the stack's CA
        assert api.get("/readyz").status_code == 200
        assert api.get("/api/v1/me").json()["role"] == "admin"
    with pytest.raises(httpx.ConnectError, match="CERTIFICATE_VERIFY_FAILED"):
        httpx.get(f"{tls_stack.api}/readyz")  # the system's trust store
    with pytest.raises(httpx.TransportError):
        httpx.get(f"{tls_stack.api.replace('https:', 'http:')}/readyz", timeout=5)
    port = int(tls_stack.api.rsplit(":", 1)[1])
    assert handshake(port, tls12(tls_stack.cafile, "ECDHE-ECDSA-AES128-GCM-SHA256")) == "TLSv1.2"
    with pytest.raises(ssl.SSLError):
        handshake(port, tls12(tls_stack.cafile, "ECDHE-ECDSA-AES128-SHA"))
    status = tls_stack.cli_json("stack", "status", "--json")
    assert status["api"] == tls_stack.api and status["mqtt"]["tls"] is True
    assert "site" in tls_stack.cli("report", "daily", "--csv").stdout  # the CLI's own HTTPS calls trust the CA


def test_broker_init_writes_a_tls_listener_from_given_certificates(tls_stack: StackHandle, tmp_path: Path) -> None:
    """A deployment's broker with certificates from elsewhere (here another CA): TLS only."""
    site = threshold_site(tls_stack, "TLSDEP")
    certs = local_ca(tmp_path / "certs")
    conf_dir, port = tmp_path / "mosquitto", free_port()
    passwords = {f"SITEWATCH_MQTT_PASSWORD_{n}": f"pw-{n.lower()}-123" for n in ("INGEST", "ALERTING", "API", "ADMIN")}
    base = [SITEWATCH, "broker", "init", "--dir", str(conf_dir), "--dsn", tls_stack.dsn, "--host", "127.0.0.1"]
    env = {**os.environ, **passwords}
    half = subprocess.run(
        [*base, "--keyfile", str(certs.keyfile)], capture_output=True, text=True, env=env, check=False
    )
    assert half.returncode == 1 and "--certfile" in half.stderr
    tls_args = ["--certfile", str(certs.certfile), "--keyfile", str(certs.keyfile), "--cafile", str(certs.cafile)]
    default = subprocess.run([*base, *tls_args], capture_output=True, text=True, env=env, check=True)
    assert "listener 8883 127.0.0.1" in (conf_dir / "mosquitto.conf").read_text(), default.stdout
    subprocess.run([*base, *tls_args, "--port", str(port), "--user", getpass.getuser()], env=env, check=True)
    proc = subprocess.Popen(["mosquitto", "-c", str(conf_dir / "mosquitto.conf")], stderr=subprocess.DEVNULL)
    try:
        for _ in range(50):
            ok = publish(port, site, 1.0, "--cafile", str(certs.cafile))
            if ok.returncode == 0:
                break
            time.sleep(0.1)
        assert ok.returncode == 0, ok.stderr
        assert publish(port, site, 1.0).returncode != 0
        assert publish(port, site, 1.0, "--cafile", str(tls_stack.cafile)).returncode != 0
    finally:
        proc.terminate()
        proc.wait(10)


def test_stack_up_keeps_tls_and_its_ca_and_no_tls_switches_back(tls_stack: StackHandle) -> None:
    ca = (tls_stack.data_dir / "tls" / "ca.crt").read_bytes()
    again: dict[str, Any] = tls_stack.cli_json("stack", "up", "--no-simulators", "--json")
    assert (
        again["api"] == tls_stack.api and again["mqtt"]["tls"] is True and again["mqtt"]["port"] == tls_stack.mqtt_port
    )
    plain = tls_stack.cli_json("stack", "up", "--no-tls", "--no-simulators", "--json")
    assert plain["api"].startswith("http://") and plain["mqtt"] == {"host": "127.0.0.1", "port": plain["mqtt"]["port"]}
    assert httpx.get(f"{plain['api']}/readyz", timeout=5).status_code == 200
    back = tls_stack.cli_json("stack", "up", "--tls", "--no-simulators", "--json")
    assert back["mqtt"]["tls"] is True and (tls_stack.data_dir / "tls" / "ca.crt").read_bytes() == ca
    tls_stack.refresh(back)
    with tls_stack.http() as api:
        assert api.get("/readyz").status_code == 200
