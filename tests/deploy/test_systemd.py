"""deploy/systemd: the units pass ``systemd-analyze verify``, and their ExecStart command lines,
with the shipped environment files, run for real and stop cleanly on the unit's KillSignal
within its TimeoutStopSec (systemd itself does not run in this container)."""

from __future__ import annotations

import re
import shlex
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest

from ..procs import ROOT, wait_for
from .services import (
    CONVEYOR_BIN,
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

UNITS = DEPLOY / "systemd"
GROUPS = ("polling", "default", "low")  # an instance per worker-<group>.env


def parse_unit(text: str) -> dict[str, list[tuple[str, str]]]:
    """``{section: [(key, value), ...]}``; a key may repeat (EnvironmentFile=)."""
    sections: dict[str, list[tuple[str, str]]] = {}
    current: list[tuple[str, str]] = []
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("["):
            current = sections.setdefault(line.strip("[]"), [])
        else:
            key, _, value = line.partition("=")
            current.append((key.strip(), value.strip()))
    return sections


def one(unit: dict[str, list[tuple[str, str]]], key: str, section: str = "Service") -> str:
    [value] = [v for k, v in unit[section] if k == key]
    return value


def specifiers(value: str, instance: str) -> str:
    """systemd's %i and %%; any other specifier fails the test (it would need a real host)."""
    return re.sub(r"%(.)", lambda m: {"i": instance, "%": "%"}[m.group(1)], value)


def environment_file(path: Path) -> dict[str, str]:
    pairs = [
        line.partition("=") for line in path.read_text().splitlines() if line and not line.startswith("#")
    ]
    return {k.strip(): v.strip().strip('"') for k, _, v in pairs}


def exec_argv(line: str, env: dict[str, str]) -> list[str]:
    """ExecStart's words as systemd builds them: ``$VAR`` alone splits into words, ``${VAR}`` is one."""
    argv: list[str] = []
    for word in shlex.split(line):
        if match := re.fullmatch(r"\$(\w+)", word):
            argv.extend(env[match.group(1)].split())
        else:
            argv.append(re.sub(r"\$\{(\w+)\}", lambda m: env[m.group(1)], word))
    return argv


def local_files(text: str) -> str:
    """A unit with the paths of an install (/opt/proj, /etc/conveyor) pointing here."""
    text = text.replace("/opt/proj/venv/bin/conveyor", CONVEYOR_BIN)
    text = text.replace("WorkingDirectory=/opt/proj", f"WorkingDirectory={ROOT}")
    return text.replace("/etc/conveyor/", f"{UNITS}/")


def units() -> dict[str, tuple[str, dict[str, list[tuple[str, str]]]]]:
    """``{unit name: (instance, parsed unit)}``: each worker group's instance, and beat."""
    template = (UNITS / "conveyor-worker@.service").read_text()
    found = {f"conveyor-worker@{g}.service": (g, parse_unit(template)) for g in GROUPS}
    found["conveyor-beat.service"] = ("", parse_unit((UNITS / "conveyor-beat.service").read_text()))
    return found


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze is not installed")
def test_units_pass_systemd_analyze_verify(tmp_path: Path) -> None:
    template = local_files((UNITS / "conveyor-worker@.service").read_text())
    for group in GROUPS:
        (tmp_path / f"conveyor-worker@{group}.service").write_text(template)
    for unit in ("conveyor-beat.service", "conveyor-dashboard.service", "conveyor-metrics.service"):
        (tmp_path / unit).write_text(local_files((UNITS / unit).read_text()))
    files = sorted(str(p) for p in tmp_path.glob("*.service"))
    out = subprocess.run(
        ["systemd-analyze", "verify", "--man=no", *files],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    # An unknown key or a bad value is only a warning to systemd: any word about our files fails.
    assert out.returncode == 0 and str(tmp_path) not in out.stdout + out.stderr, out


def test_units_restart_always_and_give_running_tasks_time_to_finish_before_sigkill() -> None:
    for name, (_instance, unit) in units().items():
        assert one(unit, "Restart") == "always", name
        assert one(unit, "KillSignal") == "SIGTERM" and one(unit, "KillMode") == "mixed", name
        if "worker" in name:
            argv = shlex.split(one(unit, "ExecStart"))
            assert float(one(unit, "TimeoutStopSec")) > float(argv[argv.index("--shutdown-timeout") + 1])


def test_unit_command_lines_run_on_sqlite_and_stop_on_their_kill_signal_within_timeout_stop_sec(
    tmp_path: Path,
) -> None:
    url = f"sqlite:///{tmp_path / 'conveyor.db'}"
    services: list[Service] = []
    stop: dict[str, tuple[int, float]] = {}
    for name, (instance, unit) in units().items():
        files = [
            Path(local_files(specifiers(v, instance))) for k, v in unit["Service"] if k == "EnvironmentFile"
        ]
        from_files = {k: v for f in files for k, v in environment_file(f).items()}
        env = deploy_env(url, {k: v for k, v in from_files.items() if not k.startswith("CONVEYOR_")})
        argv = exec_argv(specifiers(one(unit, "ExecStart"), instance), {**from_files, **env})
        services.append(Service(name, argv, env, tmp_path))
        stop[name] = (signal.Signals[one(unit, "KillSignal")], float(one(unit, "TimeoutStopSec")))
    drain: Drain | None = None
    try:
        with running(services):
            wait_for(lambda: worker_names(url) == ["default", "low.1", "low.2", "polling"], 30)
            probe = deploy_env(url)
            wait_for(lambda: health(["conveyor", "health", "--local"], probe).returncode == 0, 30)
            drain = Drain(url)
            drain.wait_running()
            # KillMode=mixed: the signal goes to each unit's main process only.
            codes = stop_all(services, stop)
            assert codes == dict.fromkeys(codes, 0), {s.name: s.log()[-2000:] for s in services}
            assert drain.finished()
    finally:
        if drain is not None:
            drain.close()


def dashboard_unit() -> dict[str, list[tuple[str, str]]]:
    return parse_unit((UNITS / "conveyor-dashboard.service").read_text())


def test_dashboard_unit_takes_its_users_as_a_credential_and_its_token_from_a_private_env_file() -> None:
    unit = dashboard_unit()
    assert one(unit, "Restart") == "always" and one(unit, "KillSignal") == "SIGTERM"
    argv = shlex.split(one(unit, "ExecStart"))
    assert argv[1] == "dashboard" and "--insecure-no-auth" not in argv
    assert argv[argv.index("--host") + 1] == "0.0.0.0"
    # The users file reaches the service through systemd's credentials, not a path it must read.
    name, _, source = one(unit, "LoadCredential").partition(":")
    assert argv[argv.index("--auth-file") + 1] == f"${{CREDENTIALS_DIRECTORY}}/{name}"
    assert source == "/etc/conveyor/dashboard-users"
    files = [v for k, v in unit["Service"] if k == "EnvironmentFile"]
    assert "/etc/conveyor/dashboard.env" in files
    assert "CONVEYOR_DASHBOARD_TOKEN" in environment_file(UNITS / "dashboard.env")


def test_dashboard_unit_command_line_serves_with_auth_and_stops_on_its_kill_signal(tmp_path: Path) -> None:
    unit = dashboard_unit()
    url = f"sqlite:///{tmp_path / 'conveyor.db'}"
    files = [Path(local_files(v)) for k, v in unit["Service"] if k == "EnvironmentFile"]
    from_files = {k: v for f in files for k, v in environment_file(f).items()}
    # The operator's token, written into dashboard.env (shipped empty).
    from_files["CONVEYOR_DASHBOARD_TOKEN"] = DASHBOARD_TOKEN
    env = deploy_env(
        url, {k: v for k, v in from_files.items() if k not in ("CONVEYOR_APP", "CONVEYOR_BROKER_URL")}
    )
    # systemd copies each LoadCredential= file into $CREDENTIALS_DIRECTORY under its name.
    credentials = tmp_path / "credentials"
    credentials.mkdir()
    name, _, _source = one(unit, "LoadCredential").partition(":")
    dashboard_users(tmp_path).rename(credentials / name)
    argv = exec_argv(one(unit, "ExecStart"), {**env, "CREDENTIALS_DIRECTORY": str(credentials)})
    argv, port = local_dashboard_argv(argv, credentials / name)
    service = Service("conveyor-dashboard.service", argv, env, tmp_path, DASHBOARD_READY)
    with running([service]):
        dashboard_answers(port, DASHBOARD_TOKEN)
        signalled = time.monotonic()
        service.proc.send_signal(signal.Signals[one(unit, "KillSignal")])
        assert service.wait(signalled, float(one(unit, "TimeoutStopSec"))) in SERVER_STOPPED


def test_metrics_unit_command_line_serves_the_cluster_and_stops_on_its_kill_signal(tmp_path: Path) -> None:
    unit = parse_unit((UNITS / "conveyor-metrics.service").read_text())
    assert one(unit, "Restart") == "always" and one(unit, "KillSignal") == "SIGTERM"
    url = f"sqlite:///{tmp_path / 'conveyor.db'}"
    env = deploy_env(url)  # conveyor.env: the app and the broker URL, nothing else
    argv, port = local_metrics_argv(exec_argv(one(unit, "ExecStart"), env))
    service = Service("conveyor-metrics.service", argv, env, tmp_path, METRICS_READY)
    with running([service]):
        metrics_answer(port)
        signalled = time.monotonic()
        service.proc.send_signal(signal.Signals[one(unit, "KillSignal")])
        assert service.wait(signalled, float(one(unit, "TimeoutStopSec"))) in SERVER_STOPPED
