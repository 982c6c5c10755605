"""deploy/kubernetes: the manifests are well-formed and wired together (selectors, the
ConfigMap, the Redis Service), and every worker Deployment's command runs here with its exec
probes passing against it (there is no cluster here; kubectl needs one even for a dry run)."""

from __future__ import annotations

import signal
import time
from pathlib import Path
from typing import Any

import yaml

from ..procs import wait_for
from .services import (
    DASHBOARD_READY,
    DASHBOARD_TOKEN,
    DEPLOY,
    SERVER_STOPPED,
    Service,
    dashboard_answers,
    dashboard_users,
    deploy_env,
    health,
    local_dashboard_argv,
    running,
    stop_all,
    worker_names,
)

MANIFESTS = DEPLOY / "kubernetes"
PROBES = ("startupProbe", "livenessProbe", "readinessProbe")


def documents() -> list[dict[str, Any]]:
    docs = [d for path in sorted(MANIFESTS.glob("*.yaml")) for d in yaml.safe_load_all(path.read_text()) if d]
    for doc in docs:
        assert {"apiVersion", "kind", "metadata"} <= set(doc) and doc["metadata"]["name"], doc
    return docs


def of_kind(kind: str) -> dict[str, dict[str, Any]]:
    return {d["metadata"]["name"]: d for d in documents() if d["kind"] == kind}


def container(deployment: dict[str, Any]) -> dict[str, Any]:
    [found] = deployment["spec"]["template"]["spec"]["containers"]
    return found  # type: ignore[no-any-return]


def workers() -> dict[str, dict[str, Any]]:
    return {n: d for n, d in of_kind("Deployment").items() if container(d)["command"][1] == "worker"}


def test_manifests_wire_deployments_probes_and_grace_periods_together() -> None:
    [config] = of_kind("ConfigMap").values()
    services = of_kind("Service")
    broker_host = config["data"]["CONVEYOR_BROKER_URL"].split("//")[1].split(":")[0]
    assert broker_host in services  # the URL names the Redis Service
    [redis_set] = of_kind("StatefulSet").values()
    redis_args = container(redis_set)["command"]
    assert redis_args[redis_args.index("--appendonly") + 1] == "yes"
    assert redis_args[redis_args.index("--maxmemory-policy") + 1] == "noeviction"
    assert (
        services[broker_host]["spec"]["selector"].items()
        <= redis_set["spec"]["template"]["metadata"]["labels"].items()
    )
    for name, deployment in of_kind("Deployment").items():
        spec = deployment["spec"]
        assert spec["selector"]["matchLabels"].items() <= spec["template"]["metadata"]["labels"].items(), name
        assert container(deployment)["envFrom"] == [{"configMapRef": {"name": config["metadata"]["name"]}}]
        assert container(deployment)["command"][0] == "conveyor", name
    groups = workers()
    assert len(groups) == 3
    for name, deployment in groups.items():
        worker = container(deployment)
        for probe in PROBES:
            assert worker[probe]["exec"]["command"] == ["conveyor", "health", "--local"], (name, probe)
        command = worker["command"]
        grace = deployment["spec"]["template"]["spec"]["terminationGracePeriodSeconds"]
        assert grace > float(command[command.index("--shutdown-timeout") + 1]), name
    [beat] = [d for d in of_kind("Deployment").values() if container(d)["command"][1] == "beat"]
    assert beat["spec"]["replicas"] == 2


def test_every_worker_deployment_runs_and_its_exec_probes_pass_then_it_stops_within_its_grace_period(
    tmp_path: Path,
) -> None:
    url = f"sqlite:///{tmp_path / 'conveyor.db'}"
    env = deploy_env(url)
    groups = workers()
    services = [Service(name, container(d)["command"], env, tmp_path) for name, d in groups.items()]
    with running(services):
        wait_for(lambda: worker_names(url) == ["default", "low.1", "low.2", "polling"], 30)
        probes = {tuple(container(d)[p]["exec"]["command"]) for d in groups.values() for p in PROBES}
        for command in probes:  # the same command everywhere today: each distinct one runs
            wait_for(lambda command=command: health(command, env).returncode == 0, 30)
        # The kubelet sends SIGTERM to each container's main process, SIGKILL after the grace.
        how = {
            n: (signal.SIGTERM, d["spec"]["template"]["spec"]["terminationGracePeriodSeconds"])
            for n, d in groups.items()
        }
        codes = stop_all(services, how)
        assert codes == dict.fromkeys(codes, 0), {s.name: s.log()[-2000:] for s in services}


def dashboard() -> dict[str, Any]:
    [found] = [d for d in of_kind("Deployment").values() if container(d)["command"][1] == "dashboard"]
    return found


def test_dashboard_deployment_takes_users_and_token_from_a_secret_and_probes_health() -> None:
    deployment = dashboard()
    board = container(deployment)
    command = board["command"]
    assert "--insecure-no-auth" not in command and command[command.index("--host") + 1] == "0.0.0.0"
    # The users file: a key of the Secret, mounted where --auth-file reads it.
    volumes = {v["name"]: v for v in deployment["spec"]["template"]["spec"]["volumes"]}
    [mount] = board["volumeMounts"]
    secret = volumes[mount["name"]]["secret"]
    [item] = secret["items"]
    assert command[command.index("--auth-file") + 1] == f"{mount['mountPath']}/{item['path']}"
    # The token: another key of the same Secret, in the variable the dashboard reads.
    [token] = [e for e in board["env"] if e["name"] == "CONVEYOR_DASHBOARD_TOKEN"]
    ref = token["valueFrom"]["secretKeyRef"]
    assert ref["name"] == secret["secretName"] and ref["key"] != item["key"]
    # Both probes check the process (a TCP connect to the port it listens on), never /health,
    # which fails when the cluster is in trouble: the dashboard must stay up and reachable then.
    ports = {p["name"]: p["containerPort"] for p in board["ports"]}
    for probe in ("livenessProbe", "readinessProbe"):
        assert "httpGet" not in board[probe]
        port = board[probe]["tcpSocket"]["port"]
        assert ports[port] == int(command[command.index("--port") + 1])
    service = of_kind("Service")[deployment["metadata"]["name"]]
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert service["spec"]["selector"].items() <= labels.items()
    assert [p["targetPort"] for p in service["spec"]["ports"]] == list(ports)


def test_dashboard_deployment_command_serves_with_the_secrets_token_and_stops_within_its_grace(
    tmp_path: Path,
) -> None:
    deployment = dashboard()
    url = f"sqlite:///{tmp_path / 'conveyor.db'}"
    argv, port = local_dashboard_argv(container(deployment)["command"], dashboard_users(tmp_path))
    env = deploy_env(url, {"CONVEYOR_DASHBOARD_TOKEN": DASHBOARD_TOKEN})  # what the secretKeyRef gives
    service = Service("conveyor-dashboard", argv, env, tmp_path, DASHBOARD_READY)
    with running([service]):
        dashboard_answers(port, DASHBOARD_TOKEN)  # it listens: the TCP probes pass
        signalled = time.monotonic()
        service.proc.send_signal(signal.SIGTERM)
        grace = deployment["spec"]["template"]["spec"]["terminationGracePeriodSeconds"]
        assert service.wait(signalled, grace) in SERVER_STOPPED
