"""deploy/kubernetes/metrics.yaml and autoscaling/: the exporter's command runs here and serves
the metrics that the HPA (prometheus-adapter) and KEDA examples query, and those examples
point at a worker Deployment that exists and consumes the queue they scale on."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import httpx
import yaml

from conveyor import Conveyor

from ..procs import wait_for
from ..webserver import free_port
from .services import DEPLOY, Service, deploy_env
from .test_kubernetes import container, of_kind

AUTOSCALING = DEPLOY / "kubernetes" / "autoscaling"
EXPORTED = {
    "conveyor_queue_ready_tasks",
    "conveyor_queue_leased_tasks",
    "conveyor_queue_delayed_tasks",
    "conveyor_queue_running_tasks",
}


def autoscaling() -> dict[str, dict[str, Any]]:
    docs = [d for p in sorted(AUTOSCALING.glob("*.yaml")) for d in yaml.safe_load_all(p.read_text()) if d]
    for doc in docs:
        assert {"apiVersion", "kind", "metadata"} <= set(doc) and doc["metadata"]["name"], doc
    return {d["kind"]: d for d in docs}


def consumes(deployment: dict[str, Any], queue: str) -> bool:
    command = container(deployment)["command"]
    return queue in command[command.index("-Q") + 1].split(",")


def metric_names(promql: str) -> set[str]:
    return set(re.findall(r"\b(conveyor_\w+)", promql))


def test_the_hpa_scales_a_worker_deployment_on_an_external_metric_the_adapter_builds_from_ours() -> None:
    found = autoscaling()
    hpa, adapter = found["HorizontalPodAutoscaler"], found["ConfigMap"]
    assert hpa["apiVersion"] == "autoscaling/v2"
    target = hpa["spec"]["scaleTargetRef"]
    deployments = of_kind("Deployment")
    assert target["kind"] == "Deployment" and target["name"] in deployments
    [metric] = hpa["spec"]["metrics"]
    assert metric["type"] == "External" and metric["external"]["target"]["type"] == "AverageValue"
    queue = metric["external"]["metric"]["selector"]["matchLabels"]["queue"]
    assert consumes(deployments[target["name"]], queue)
    [rule] = yaml.safe_load(adapter["data"]["config.yaml"])["externalRules"]
    assert rule["name"]["as"] == metric["external"]["metric"]["name"]
    assert rule["resources"]["overrides"]["namespace"] == {"resource": "namespace"}
    assert metric_names(rule["seriesQuery"] + rule["metricsQuery"]) <= EXPORTED
    assert "<<.LabelMatchers>>" in rule["metricsQuery"]
    assert 0 < hpa["spec"]["minReplicas"] <= hpa["spec"]["maxReplicas"]


def test_keda_scales_the_same_deployment_with_a_prometheus_trigger_on_our_metrics() -> None:
    scaled = autoscaling()["ScaledObject"]
    assert scaled["apiVersion"] == "keda.sh/v1alpha1"
    deployments = of_kind("Deployment")
    name = scaled["spec"]["scaleTargetRef"]["name"]
    [trigger] = scaled["spec"]["triggers"]
    assert trigger["type"] == "prometheus"
    meta = trigger["metadata"]
    assert {"serverAddress", "query", "threshold"} <= set(meta)
    assert all(isinstance(v, str) for v in meta.values())  # KEDA's metadata is a string map
    assert metric_names(meta["query"]) <= EXPORTED and metric_names(meta["query"])
    [queue] = set(re.findall(r'queue="([^"]+)"', meta["query"]))
    assert consumes(deployments[name], queue)
    assert scaled["spec"]["minReplicaCount"] <= scaled["spec"]["maxReplicaCount"]


def test_the_exporter_deployment_runs_here_and_serves_what_the_autoscalers_query(tmp_path: Path) -> None:
    [exporter] = [d for d in of_kind("Deployment").values() if container(d)["command"][1] == "metrics"]
    command = list(container(exporter)["command"])
    port = free_port()
    command[command.index("--port") + 1] = str(port)
    command[command.index("--host") + 1] = "127.0.0.1"
    url = f"sqlite:///{tmp_path / 'conveyor.db'}"
    producer = Conveyor("producer", broker=url)
    try:
        producer.send_task("tests.deploy.app.hold", queue="default")
    finally:
        producer.close()
    service = Service("metrics", command, deploy_env(url), tmp_path)
    try:

        def scraped() -> str | None:
            assert service.proc.poll() is None, service.log()
            try:
                return httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
            except httpx.HTTPError:
                return None

        wait_for(scraped, 30)
        text = scraped() or ""
        assert "conveyor_broker_up 1.0" in text
        for name in EXPORTED:
            assert f"# TYPE {name} gauge" in text
        assert 'conveyor_queue_ready_tasks{queue="default"} 1.0' in text
    finally:
        service.kill()
