"""Transport security: the local stack's certificate authority, and TLS settings shared by the
broker's listener, the API's server and every client (services, simulators, the CLI).

`stack up --tls` makes a private CA once (`tls/ca.crt`, key `tls/ca.key`) and with it a server
certificate for 127.0.0.1 and localhost (`tls/server.crt`, `tls/server.key`) that both the broker
and the API present. Keys are ECDSA P-256 and written 0600. The server certificate is issued again,
by the same CA, when it is missing, names other hosts or has less than `RENEW_BEFORE` left, so
clients that trust `ca.crt` keep working. Deployments bring their own certificates
(`sitewatch broker init --certfile --keyfile`, docs/security.md).
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import os
import ssl
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

LOCAL_HOSTS = ("127.0.0.1", "localhost")
CA_LIFETIME = dt.timedelta(days=3650)
SERVER_LIFETIME = dt.timedelta(days=397)  # the longest a public CA may issue, so clients treat it alike
RENEW_BEFORE = dt.timedelta(days=30)
# TLS 1.2 and 1.3 only; under 1.2 only forward-secret AEAD suites (1.3 has nothing else).
MIN_VERSION = ssl.TLSVersion.TLSv1_2
CIPHERS_TLS12 = "ECDHE+AESGCM:ECDHE+CHACHA20"


@dataclass(frozen=True, slots=True)
class TlsFiles:
    """What a TLS listener needs: the server's certificate chain and key, and the CA clients trust."""

    certfile: Path
    keyfile: Path
    cafile: Path | None = None


def _key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def _write_key(path: Path, key: ec.EllipticCurvePrivateKey) -> None:
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(pem)
    tmp.chmod(0o600)  # whatever the umask
    tmp.rename(path)


def _write_cert(path: Path, cert: x509.Certificate) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    tmp.chmod(0o644)
    tmp.rename(path)


def _name(common_name: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Sitewatch"),
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
        ]
    )


def _san(hosts: tuple[str, ...]) -> x509.SubjectAlternativeName:
    names: list[x509.GeneralName] = []
    for host in hosts:
        try:
            names.append(x509.IPAddress(ipaddress.ip_address(host)))
        except ValueError:
            names.append(x509.DNSName(host))
    return x509.SubjectAlternativeName(names)


def _make_ca(directory: Path, now: dt.datetime) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    key = _key()
    name = _name(f"Sitewatch local CA {directory.parent.name}")
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + CA_LIFETIME)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    _write_key(directory / "ca.key", key)
    _write_cert(directory / "ca.crt", cert)
    return cert, key


def _load_ca(directory: Path) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey] | None:
    try:
        cert = x509.load_pem_x509_certificate((directory / "ca.crt").read_bytes())
        key = serialization.load_pem_private_key((directory / "ca.key").read_bytes(), password=None)
    except (OSError, ValueError):
        return None
    return (cert, key) if isinstance(key, ec.EllipticCurvePrivateKey) else None


def _server_current(path: Path, hosts: tuple[str, ...], ca: x509.Certificate, now: dt.datetime) -> bool:
    try:
        cert = x509.load_pem_x509_certificate(path.read_bytes())
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except (OSError, ValueError, x509.ExtensionNotFound):
        return False
    return (
        cert.issuer == ca.subject
        and cert.not_valid_after_utc - now > RENEW_BEFORE
        and set(san) == set(_san(hosts))
        and (path.with_suffix(".key")).exists()
    )


def local_ca(directory: Path, hosts: tuple[str, ...] = LOCAL_HOSTS) -> TlsFiles:
    """The stack's CA and server certificate in `directory`, made or renewed as needed (see above)."""
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    now = dt.datetime.now(dt.UTC)
    ca = _load_ca(directory) or _make_ca(directory, now)
    files = TlsFiles(directory / "server.crt", directory / "server.key", directory / "ca.crt")
    if _server_current(files.certfile, hosts, ca[0], now):
        return files
    key = _key()
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name(hosts[0]))
        .issuer_name(ca[0].subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + SERVER_LIFETIME)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(_san(hosts), critical=False)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca[0].public_key()),  # type: ignore[arg-type]
            critical=False,
        )
        .sign(ca[1], hashes.SHA256())
    )
    _write_key(files.keyfile, key)
    _write_cert(files.certfile, cert)
    return files


def client_context(cafile: str | Path | None = None) -> ssl.SSLContext:
    """A client's TLS context: the server's certificate and name verified against `cafile` (the
    system's trust store when None), TLS 1.2 at least."""
    ctx = ssl.create_default_context(cafile=str(cafile) if cafile else None)
    ctx.minimum_version = MIN_VERSION
    return ctx


def server_context(files: TlsFiles) -> ssl.SSLContext:
    """The API's TLS context: TLS 1.2 at least, forward-secret AEAD suites under 1.2."""
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.minimum_version = MIN_VERSION
    ctx.set_ciphers(CIPHERS_TLS12)
    ctx.load_cert_chain(files.certfile, files.keyfile)
    return ctx


def verify(cafile: str | Path | None) -> ssl.SSLContext | bool:
    """httpx's `verify` for a server whose CA is `cafile` (plain default verification when None)."""
    return client_context(cafile) if cafile else True


def mosquitto_listener(files: TlsFiles) -> list[str]:
    """The lines that make the preceding `listener` a TLS one."""
    lines = [f"certfile {files.certfile}", f"keyfile {files.keyfile}"]
    if files.cafile is not None:
        lines.append(f"cafile {files.cafile}")
    return [*lines, "tls_version tlsv1.2", f"ciphers {CIPHERS_TLS12}"]
