"""deploy/ holds together without Docker: compose files, Prometheus, Grafana and the code they name.

Docker is not available on the development machines, so `docker compose config` cannot check the
files; these tests read them as YAML and JSON and hold them against the code: every command is a
module or CLI command that exists, every `${VAR}` is in env.example, the workers agree with
SITEWATCH_SHARDS, Prometheus scrapes exactly the services compose declares on the ports they
serve, and every metric a dashboard expression uses is one the services define.
"""

from __future__ import annotations

import asyncio
import dataclasses
import importlib.util
import json
import re
import shlex
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import typer.main
import yaml
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from services.alerting.metrics import AlertingMetrics
from services.api.routers.health import collect
from services.ingest.metrics import IngestMetrics
from sitewatch.broker_auth import SERVICE_USERS
from sitewatch.cli import app
from sitewatch.settings import Settings

DEPLOY = Path(__file__).resolve().parent.parent / "deploy"
COMPOSE_FILES = sorted(DEPLOY.glob("compose*.yaml"))
DASHBOARDS = sorted((DEPLOY / "grafana" / "dashboards").glob("*.json"))
WORKER_MODULES = ("services.ingest", "services.alerting")
DATA_DIR = "/var/lib/sitewatch"  # the Dockerfile's SITEWATCH_DATA_DIR: the spool lives under it
# Series Prometheus itself makes for every target.
PROMETHEUS_SERIES = {"up", "scrape_duration_seconds", "scrape_samples_scraped"}


class _ComposeLoader(yaml.SafeLoader):
    """Compose's YAML: merge keys (PyYAML's SafeLoader has them) and the `!override` and `!reset` tags."""


def _tagged(loader: yaml.SafeLoader, node: yaml.Node) -> Any:
    if isinstance(node, yaml.SequenceNode):
        return loader.construct_sequence(node, deep=True)
    if isinstance(node, yaml.MappingNode):
        return loader.construct_mapping(node, deep=True)
    return loader.construct_scalar(node)  # type: ignore[arg-type]


for _tag in ("!override", "!reset"):
    _ComposeLoader.add_constructor(_tag, _tagged)


def load_compose(path: Path) -> dict[str, Any]:
    doc = yaml.load(path.read_text(), Loader=_ComposeLoader)  # a SafeLoader
    assert isinstance(doc, dict) and isinstance(doc.get("services"), dict), f"{path.name}: no services"
    return doc


def env_example() -> dict[str, str]:
    out = {}
    for line in (DEPLOY / "env.example").read_text().splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            key, sep, value = line.partition("=")
            assert sep, f"env.example: {line!r} is not KEY=value"
            out[key.strip()] = value.strip()
    return out


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return load_compose(DEPLOY / "compose.yaml")


def services(doc: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {name: svc or {} for name, svc in doc["services"].items()}


def environment(svc: dict[str, Any]) -> dict[str, str]:
    env = svc.get("environment") or {}
    if isinstance(env, list):
        env = dict(item.partition("=")[::2] for item in env)
    return {str(k): str(v) for k, v in env.items()}


def module_of(svc: dict[str, Any]) -> str | None:
    """`python -m MODULE` of a service's command, if that is its command."""
    command = svc.get("command")
    words = shlex.split(command) if isinstance(command, str) else list(command or [])
    if len(words) >= 3 and words[0].startswith("python") and words[1] == "-m":
        return str(words[2])
    return None


def workers(doc: dict[str, Any], module: str) -> dict[str, dict[str, Any]]:
    return {name: svc for name, svc in services(doc).items() if module_of(svc) == module}


# -- commands -------------------------------------------------------------------------------------
def sitewatch_commands(command: str | list[str]) -> Iterator[list[str]]:
    """The `sitewatch ...` invocations in a command, also inside `sh -c "a && b"`."""
    words = shlex.split(command) if isinstance(command, str) else list(command)
    scripts = [words[2]] if words[:2] == ["sh", "-c"] and len(words) > 2 else [shlex.join(words)]
    for script in scripts:
        for part in re.split(r"&&|\|\||;", script):
            argv = shlex.split(part)
            if argv and argv[0] == "sitewatch":
                yield argv[1:]


def cli_problem(argv: list[str]) -> str | None:
    """Why `sitewatch ARGV` names no command of the CLI or an option it lacks; None when it is fine."""
    cmd: Any = typer.main.get_command(app)  # typer's own click: a group is what has `commands`
    rest = list(argv)
    while hasattr(cmd, "commands") and rest and not rest[0].startswith("-"):
        sub = cmd.commands.get(rest[0])
        if sub is None:
            return f"no command {rest[0]!r} under {cmd.name!r}"
        cmd, rest = sub, rest[1:]
    if hasattr(cmd, "commands"):
        return f"{cmd.name!r} is a group, not a command"
    options = {opt for p in cmd.params for opt in p.opts}
    unknown = [w.split("=", 1)[0] for w in rest if w.startswith("--") and w.split("=", 1)[0] not in options]
    return f"unknown option(s) {unknown} of {cmd.name!r}" if unknown else None


@pytest.mark.parametrize("path", COMPOSE_FILES, ids=lambda p: p.name)
def test_commands_name_existing_modules_and_cli_commands(path: Path) -> None:
    checked = 0
    for name, svc in services(load_compose(path)).items():
        if "command" not in svc:
            continue
        module = module_of(svc)
        if module is not None:
            assert importlib.util.find_spec(f"{module}.__main__") is not None, f"{name}: no module {module}.__main__"
            checked += 1
        for argv in sitewatch_commands(svc["command"]):
            problem = cli_problem(argv)
            assert problem is None, f"{path.name} {name}: sitewatch {' '.join(argv)}: {problem}"
            checked += 1
    assert checked, f"{path.name}: no command checked"


def test_cli_check_catches_a_wrong_command() -> None:
    assert cli_problem(["db", "migrate"]) is None
    assert cli_problem(["broker", "init", "--dir", "/x", "--port", "1883"]) is None
    assert cli_problem(["db", "migrat"]) is not None
    assert cli_problem(["broker", "init", "--no-such-option"]) is not None
    assert cli_problem(["db"]) is not None


# -- environment ----------------------------------------------------------------------------------
@pytest.mark.parametrize("path", COMPOSE_FILES, ids=lambda p: p.name)
def test_every_variable_is_in_env_example(path: Path) -> None:
    text = re.sub(r"\$\$", "", path.read_text())  # `$$` is a literal dollar
    used = set(re.findall(r"\$\{([A-Za-z_][A-Za-z0-9_]*)", text)) | set(re.findall(r"\$([A-Za-z_]\w*)", text))
    missing = sorted(used - set(env_example()))
    assert not missing, f"{path.name} uses {missing}, which deploy/env.example does not set"


def test_each_service_logs_in_to_the_broker_as_its_own_user(compose: dict[str, Any]) -> None:
    users = {}
    for name, svc in services(compose).items():
        env = environment(svc)
        if "SITEWATCH_MQTT_USER" not in env:
            continue
        user = env["SITEWATCH_MQTT_USER"].removeprefix("sitewatch-")
        assert user in SERVICE_USERS, f"{name}: {env['SITEWATCH_MQTT_USER']} is no user `broker init` creates"
        password = f"${{SITEWATCH_MQTT_PASSWORD_{user.upper()}}}"
        assert env.get("SITEWATCH_MQTT_PASSWORD") == password, f"{name}: its password must be {password}"
        users[name] = user
    for module, user in (("services.ingest", "ingest"), ("services.alerting", "alerting"), ("services.api", "api")):
        named = [n for n, svc in services(compose).items() if module_of(svc) == module]
        assert named, f"compose.yaml runs no {module}"
        assert all(users.get(n) == user for n in named), f"{module} must log in as sitewatch-{user}"


# -- workers --------------------------------------------------------------------------------------
@pytest.mark.parametrize("module", WORKER_MODULES)
def test_workers_cover_every_shard_once_with_their_own_data_dir(compose: dict[str, Any], module: str) -> None:
    shards = int(env_example()["SITEWATCH_SHARDS"])
    found = workers(compose, module)
    indexes = sorted(int(environment(svc)["SITEWATCH_WORKER"]) for svc in found.values())
    assert indexes == list(range(shards)), f"{module}: workers {indexes} for SITEWATCH_SHARDS={shards}"
    for name, svc in found.items():
        env = environment(svc)
        assert env.get("SITEWATCH_SHARDS") == "${SITEWATCH_SHARDS}", f"{name}: SITEWATCH_SHARDS must come from .env"
        assert env.get("SITEWATCH_PORT"), f"{name}: no metrics port"
    volumes = [next(v for v in svc.get("volumes", []) if v.split(":")[1] == DATA_DIR) for svc in found.values()]
    sources = [v.split(":")[0] for v in volumes]
    assert len(set(sources)) == len(sources), f"{module}: workers share a data dir volume: {sources}"
    assert all(s in (compose.get("volumes") or {}) for s in sources), f"{module}: undeclared volumes {sources}"


def test_the_tls_override_covers_every_worker(compose: dict[str, Any]) -> None:
    tls = services(load_compose(DEPLOY / "compose.tls.yaml"))
    base = services(compose)
    assert set(tls) <= set(base), f"compose.tls.yaml overrides services compose.yaml lacks: {set(tls) - set(base)}"
    for module in WORKER_MODULES:
        for name in workers(compose, module):
            assert name in tls, f"compose.tls.yaml does not put {name} on TLS"
            assert "/certs" in " ".join(tls[name].get("volumes", [])), f"{name}: no certificates mounted"


# -- Prometheus and the API's aggregated /metrics -------------------------------------------------
def scrape_targets() -> dict[str, list[str]]:
    doc = yaml.safe_load((DEPLOY / "prometheus.yml").read_text())
    jobs: dict[str, list[str]] = {}
    for job in doc["scrape_configs"]:
        for static in job.get("static_configs", []):
            jobs.setdefault(job["job_name"], []).extend(static["targets"])
    return jobs


def test_prometheus_scrapes_every_worker_and_the_api_where_they_serve(compose: dict[str, Any]) -> None:
    svcs = services(compose)
    jobs = scrape_targets()
    scraped = set()
    for job, targets in jobs.items():
        for target in targets:
            host, _, port = target.partition(":")
            assert host in svcs, f"job {job}: {host} is no compose service"
            assert environment(svcs[host]).get("SITEWATCH_PORT") == port, f"job {job}: {host} serves not on {port}"
            assert module_of(svcs[host]) == f"services.{job}", f"job {job} scrapes {host}, which is no {job} service"
            scraped.add(host)
    expected = {n for n, svc in svcs.items() if (module_of(svc) or "").startswith("services.")}
    assert scraped == expected, f"Prometheus scrapes {sorted(scraped)}, compose runs {sorted(expected)}"


def test_the_api_gathers_every_worker(compose: dict[str, Any]) -> None:
    svcs = services(compose)
    (api,) = [svc for svc in svcs.values() if module_of(svc) == "services.api"]
    urls = dict(item.strip().partition("=")[::2] for item in environment(api)["SITEWATCH_SERVICE_METRICS"].split(","))
    for name, url in urls.items():
        m = re.fullmatch(r"http://([\w-]+):(\d+)/metrics", url)
        assert m and m[1] == name and m[1] in svcs, f"SITEWATCH_SERVICE_METRICS: {name}={url}"
        assert environment(svcs[name]).get("SITEWATCH_PORT") == m[2], f"{name} does not serve on {m[2]}"
    assert set(urls) == {n for m in WORKER_MODULES for n in workers(compose, m)}


# -- Grafana --------------------------------------------------------------------------------------
def test_grafana_is_provisioned_with_the_prometheus_datasource_and_dashboards(compose: dict[str, Any]) -> None:
    grafana = services(compose)["grafana"]
    mounts = {v.split(":")[0]: v.split(":")[1] for v in grafana["volumes"]}
    root = DEPLOY / "grafana"
    datasources = [
        ds
        for f in (root / "provisioning" / "datasources").glob("*.yaml")
        for ds in yaml.safe_load(f.read_text())["datasources"]
    ]
    (prometheus,) = [ds for ds in datasources if ds["type"] == "prometheus"]
    prom = services(compose)["prometheus"]
    port = prom["ports"][0].rsplit(":", 2)[-1]
    assert prometheus["url"] == f"http://prometheus:{port}"
    (provider,) = yaml.safe_load((root / "provisioning" / "dashboards" / "sitewatch.yaml").read_text())["providers"]
    assert mounts["./grafana/provisioning"] == "/etc/grafana/provisioning"
    assert mounts["./grafana/dashboards"] == provider["options"]["path"]
    assert DASHBOARDS, "no dashboard in deploy/grafana/dashboards"
    for path in DASHBOARDS:
        dash = json.loads(path.read_text())
        ids = [p["id"] for p in dash["panels"]]
        assert len(ids) == len(set(ids)), f"{path.name}: panel ids repeat"
        for panel in dash["panels"]:
            for target in panel.get("targets", []):
                assert target["datasource"]["uid"] == prometheus["uid"], f"{path.name}: {panel['title']}"


_NOT_METRICS = {"by", "without", "on", "ignoring", "group_left", "group_right", "bool", "and", "or", "unless", "offset"}


def metric_names(expr: str) -> set[str]:
    """The metric names a PromQL expression reads: identifiers that are not functions, keywords,
    labels (in `{...}` or `by (...)`) or durations."""
    expr = re.sub(r'"(?:\\.|[^"\\])*"', '""', expr)
    expr = re.sub(r"\{[^}]*\}", "", expr)
    expr = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", expr)
    expr = re.sub(r"\[[^\]]*\]", "", expr)
    names = set()
    for m in re.finditer(r"(?<![\w.])[A-Za-z_:][\w:]*", expr):
        if not expr[m.end() :].lstrip().startswith("(") and m[0] not in _NOT_METRICS:
            names.add(m[0])
    return names


def test_metric_names_reads_promql() -> None:
    expr = 'histogram_quantile(0.99, sum by (instance, le) (rate(a_bucket{job="x", le!="1"}[5m]))) / on (j) b_total'
    assert metric_names(expr) == {"a_bucket", "b_total"}
    assert metric_names('up{job=~"ingest|api"}') == {"up"}
    assert metric_names("sum(x) * 60 + 1e3") == {"x"}


def defined_metrics() -> dict[str, str]:
    """Every series name the services expose, with its family: each worker's registry, the API's
    own and the families its /metrics adds."""
    settings = dataclasses.replace(Settings.from_env(), service_urls={})
    texts = [
        generate_latest(IngestMetrics().registry).decode(),
        generate_latest(AlertingMetrics().registry).decode(),
        asyncio.run(collect(settings)),
    ]
    suffixes = {
        "counter": ("_total", "_created"),
        "histogram": ("_bucket", "_sum", "_count", "_created"),
        "summary": ("", "_sum", "_count", "_created"),
        "info": ("_info",),
    }
    out = {}
    for text in texts:
        for family in text_string_to_metric_families(text):
            for suffix in suffixes.get(family.type, ("",)):
                out[family.name + suffix] = family.name
    return out


def dashboard_metrics() -> dict[str, set[str]]:
    used: dict[str, set[str]] = {}
    for path in DASHBOARDS:
        for panel in json.loads(path.read_text())["panels"]:
            for target in panel.get("targets", []):
                for name in metric_names(target["expr"]):
                    used.setdefault(name, set()).add(f"{path.name}: {panel['title']}")
    return used


def test_every_dashboard_metric_is_defined() -> None:
    defined = defined_metrics()
    assert "sitewatch_ingest_readings_stored_total" in defined and "sitewatch_service_up" in defined
    used = dashboard_metrics()
    unknown = {n: sorted(where) for n, where in used.items() if n not in defined and n not in PROMETHEUS_SERIES}
    assert not unknown, f"dashboard metrics no service defines: {unknown}"
