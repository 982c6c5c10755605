"""deploy/docker-compose.yml: valid, safe settings, and every command in it runs for real.

There is no Docker daemon here, so the services' command lines run as processes: Redis with the
compose file's own arguments, every worker group and both schedulers against it, each worker's
healthcheck, and a graceful stop with the compose stop signal within its grace period.
"""

from __future__ import annotations

import re
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import redis
import yaml

from ..procs import wait_for
from ..redis_server import RedisServer
from .services import (
    DASHBOARD_READY,
    DASHBOARD_TOKEN,
    DEPLOY,
    METRICS_READY,
    SERVER_STOPPED,
    Drain,
    Service,
    dashboard_answers,
    dashboard_users,
    deploy_env,
    health,
    local_dashboard_argv,
    local_metrics_argv,
    metrics_answer,
    running,
    stop_all,
    worker_names,
)

COMPOSE = DEPLOY / "docker-compose.yml"
VARIABLE = re.compile(r"\$\{(\w+)(?::?-([^}]*))?\}")


def load() -> dict[str, Any]:
    """The file as Compose reads it, with ``${VAR:-default}`` taken at its default."""
    text = COMPOSE.read_text()
    missing = [m.group(1) for m in VARIABLE.finditer(text) if m.group(2) is None]
    assert not missing, f"variables without a default: {missing}"
    compose: dict[str, Any] = yaml.safe_load(VARIABLE.sub(lambda m: m.group(2), text))
    return compose


def seconds(value: str) -> float:
    match = re.fullmatch(r"(\d+)(s|m)", value)
    assert match, value
    return int(match.group(1)) * (60 if match.group(2) == "m" else 1)


def option(argv: list[str], name: str) -> str:
    return argv[argv.index(name) + 1]


def conveyor_services(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {n: s for n, s in compose["services"].items() if s["command"][0] == "conveyor"}


def test_compose_file_has_persistent_redis_worker_groups_two_schedulers_and_health_checks() -> None:
    compose = load()
    redis_args = compose["services"]["redis"]["command"]
    assert option(redis_args, "--appendonly") == "yes"
    assert option(redis_args, "--maxmemory-policy") == "noeviction"
    assert "redis-data:/data" in compose["services"]["redis"]["volumes"]
    services = conveyor_services(compose)
    workers = {n: s for n, s in services.items() if s["command"][1] == "worker"}
    assert len(workers) >= 3 and len({option(s["command"], "-Q") for s in workers.values()}) == len(workers)
    for name, service in services.items():
        assert service["depends_on"]["redis"]["condition"] == "service_healthy", name
        assert service["restart"] == "unless-stopped" and service["stop_signal"] == "SIGTERM", name
        assert service["environment"]["CONVEYOR_BROKER_URL"] == "redis://redis:6379/0", name
    for name, service in workers.items():
        # Docker waits longer than the worker lets running tasks finish.
        grace = seconds(service["stop_grace_period"])
        assert grace > float(option(service["command"], "--shutdown-timeout")), name
        assert service["healthcheck"]["test"] == ["CMD", "conveyor", "health", "--local"], name
    [beat] = [s for s in services.values() if s["command"][1] == "beat"]
    assert beat["deploy"]["replicas"] == 2


def python_probe(service: dict[str, Any], port: int) -> list[str]:
    """A server's healthcheck command (``python -c`` an HTTP GET) with this Python and the
    test's port in place of the one the file's command listens on."""
    test = service["healthcheck"]["test"]
    assert test[:2] == ["CMD", "python"], test
    listens = option(service["command"], "--port")
    return [sys.executable, *(arg.replace(f":{listens}/", f":{port}/") for arg in test[2:])]


def test_compose_dashboard_authenticates_from_a_secret_and_an_environment_token() -> None:
    compose = load()
    dashboard = compose["services"]["dashboard"]
    command = dashboard["command"]
    assert command[:2] == ["conveyor", "dashboard"] and "--insecure-no-auth" not in command
    assert option(command, "--host") == "0.0.0.0"  # reachable through the published port
    # The users file is the service's secret, as Compose mounts it.
    [secret] = dashboard["secrets"]
    assert option(command, "--auth-file") == f"/run/secrets/{secret}"
    assert "file" in compose["secrets"][secret]
    assert "CONVEYOR_DASHBOARD_TOKEN" in dashboard["environment"]
    assert (
        dashboard["environment"]["CONVEYOR_APP"] == compose["services"]["beat"]["environment"]["CONVEYOR_APP"]
    )
    [published] = dashboard["ports"]
    assert published.endswith(":" + option(command, "--port"))
    probe = " ".join(dashboard["healthcheck"]["test"])
    assert f"127.0.0.1:{option(command, '--port')}/health" in probe


def test_compose_metrics_exporter_is_reachable_in_the_network_only() -> None:
    exporter = load()["services"]["metrics"]
    command = exporter["command"]
    assert command[:2] == ["conveyor", "metrics"] and option(command, "--host") == "0.0.0.0"
    # No credentials on /metrics: exposed to the Compose network (Prometheus), never published.
    assert "ports" not in exporter and exporter["expose"] == [option(command, "--port")]
    probe = " ".join(exporter["healthcheck"]["test"])
    assert f"127.0.0.1:{option(command, '--port')}/metrics" in probe


def test_compose_commands_run_against_redis_pass_their_healthchecks_and_drain_on_sigterm(
    tmp_path: Path,
) -> None:
    compose = load()
    redis_args = compose["services"]["redis"]["command"][1:]  # after "redis-server"
    server = RedisServer(extra=redis_args).start()
    client = redis.Redis.from_url(server.url)
    drain: Drain | None = None
    try:
        assert client.config_get("maxmemory-policy") == {"maxmemory-policy": "noeviction"}
        assert client.config_get("appendonly") == {"appendonly": "yes"}
        env = deploy_env(server.url)
        commands = conveyor_services(compose)
        board = commands.pop("dashboard")
        exporter = commands.pop("metrics")
        services = [
            Service(f"{name}-{i}", spec["command"], env, tmp_path)
            for name, spec in commands.items()
            for i in range(spec.get("deploy", {}).get("replicas", 1))
        ]
        # The dashboard as the file runs it, with the operator's token in its environment.
        board_argv, port = local_dashboard_argv(board["command"], dashboard_users(tmp_path))
        board_env = deploy_env(server.url, {"CONVEYOR_DASHBOARD_TOKEN": DASHBOARD_TOKEN})
        services.append(Service("dashboard-0", board_argv, board_env, tmp_path, DASHBOARD_READY))
        metrics_argv, metrics_port = local_metrics_argv(exporter["command"])
        services.append(Service("metrics-0", metrics_argv, env, tmp_path, METRICS_READY))
        with running(services):
            wait_for(lambda: worker_names(server.url) == ["default", "low.1", "low.2", "polling"], 30)
            for spec in commands.values():
                if "healthcheck" in spec:
                    probe = spec["healthcheck"]["test"][1:]  # after "CMD"
                    wait_for(lambda probe=probe: health(probe, env).returncode == 0, 30)
            dashboard_answers(port, DASHBOARD_TOKEN)
            metrics_answer(metrics_port)
            for spec, on in ((board, port), (exporter, metrics_port)):
                probe = python_probe(spec, on)
                assert subprocess.run(probe, timeout=30, check=False).returncode == 0, probe
            # Both schedulers run against the same Redis: the leader sends the 2-second poll.
            beats = [s for s in services if s.name.startswith("beat")]
            wait_for(lambda: any("sent poll-aircraft" in b.log() for b in beats), 30)
            drain = Drain(server.url)
            drain.wait_running()
            how: dict[str, tuple[int, float]] = {}
            for service in services:
                spec = {**commands, "dashboard": board, "metrics": exporter}[service.name.rsplit("-", 1)[0]]
                how[service.name] = (signal.Signals[spec["stop_signal"]], seconds(spec["stop_grace_period"]))
            codes = stop_all(services, how)
            assert codes.pop("dashboard-0") in SERVER_STOPPED and codes.pop("metrics-0") in SERVER_STOPPED
            assert codes == dict.fromkeys(codes, 0), {s.name: s.log()[-2000:] for s in services}
            assert drain.finished()
            sent = [
                line.split(" as ")[0] for b in beats for line in b.log().splitlines() if "beat: sent" in line
            ]
            assert len(sent) == len(set(sent))  # no schedule slot sent by both
    finally:
        if drain is not None:
            drain.close()
        client.close()
        server.cleanup()
