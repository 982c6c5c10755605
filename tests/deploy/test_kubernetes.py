"""deploy/kubernetes: the manifests are well-formed and wired together (selectors, the
ConfigMap, the Redis Service), and every worker Deployment's command runs here with its exec
probes passing against it (there is no cluster here; kubectl needs one even for a dry run)."""

from __future__ import annotations

import signal
from pathlib import Path
from typing import Any

import yaml

from ..procs import wait_for
from .services import DEPLOY, Service, deploy_env, health, running, stop_all, worker_names

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
