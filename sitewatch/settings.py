"""Service settings, read from the environment so the same code runs under `stack up` and in compose."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path


def _env(name: str, default: str) -> str:
    return os.environ.get(f"SITEWATCH_{name}", default)


@dataclass(frozen=True, slots=True)
class Settings:
    """Everything a service needs to find the database, the broker and its own files."""

    dsn: str
    mqtt_host: str
    mqtt_port: int
    mqtt_user: str | None
    mqtt_password: str | None
    data_dir: Path
    port: int
    batch_max_readings: int
    writers: int
    batch_max_ms: int
    spool_max_bytes: int
    retention_days: int
    max_future_s: int
    late_window_s: int
    red_escalation_s: int
    regulator_escalation_s: int
    broker_dir: Path
    broker_pid: int | None
    service_urls: dict[str, str]
    trusted_proxies: tuple[str, ...] = ()  # addresses or networks whose X-Forwarded-For the API believes
    mqtt_tls: bool = False  # connect to the broker over TLS
    mqtt_cafile: Path | None = None  # the CA that signed the broker's certificate; None: the system's
    defer_after_ms: int = 1000  # ingest: a batch the writers cannot take within this goes to the spool
    nice: int = 0  # CPU niceness the service gives itself (and its database sessions, when it may)
    shards: int = 1  # site shards of ingest and alerting (docs/scaling.md); 1: one process each
    worker: int = 0  # this worker's own shard, 0 … shards-1
    metrics_host: str = "127.0.0.1"  # where a service serves its metrics

    @classmethod
    def from_env(cls) -> Settings:
        data_dir = Path(_env("DATA_DIR", "./var")).resolve()
        broker_pid = _env("BROKER_PID", "")
        cafile = _env("MQTT_CAFILE", "")
        urls = {}
        for item in filter(None, _env("SERVICE_METRICS", "").split(",")):
            name, _, url = item.partition("=")
            urls[name] = url
        return cls(
            dsn=_env("DSN", "postgresql://sitewatch@127.0.0.1:5432/sitewatch"),
            mqtt_host=_env("MQTT_HOST", "127.0.0.1"),
            mqtt_port=int(_env("MQTT_PORT", "1883")),
            mqtt_user=_env("MQTT_USER", "") or None,
            mqtt_password=_env("MQTT_PASSWORD", "") or None,
            data_dir=data_dir,
            port=int(_env("PORT", "0")),
            batch_max_readings=int(_env("BATCH_MAX_READINGS", "20000")),
            writers=max(1, int(_env("WRITERS", "2"))),
            batch_max_ms=int(_env("BATCH_MAX_MS", "200")),
            spool_max_bytes=int(_env("SPOOL_MAX_BYTES", str(1 << 30))),
            retention_days=int(_env("RETENTION_DAYS", "90")),
            max_future_s=int(_env("MAX_FUTURE_S", "3600")),
            late_window_s=int(_env("LATE_WINDOW_S", "600")),
            red_escalation_s=int(_env("RED_ESCALATION_S", "900")),
            regulator_escalation_s=int(_env("REGULATOR_ESCALATION_S", str(8 * 3600))),
            broker_dir=Path(_env("BROKER_DIR", str(data_dir / "mosquitto"))),
            broker_pid=int(broker_pid) if broker_pid else None,
            service_urls=urls,
            trusted_proxies=tuple(p.strip() for p in _env("TRUSTED_PROXIES", "").split(",") if p.strip()),
            mqtt_tls=_env("MQTT_TLS", "").lower() in ("1", "true", "yes", "on") or bool(cafile),
            mqtt_cafile=Path(cafile) if cafile else None,
            defer_after_ms=int(_env("DEFER_AFTER_MS", "1000")),
            nice=int(_env("NICE", "0")),
            shards=max(1, int(_env("SHARDS", "1"))),
            worker=int(_env("WORKER", "0")),
            metrics_host=_env("METRICS_HOST", "127.0.0.1"),
        )
