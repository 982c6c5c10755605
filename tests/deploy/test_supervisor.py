"""deploy/supervisor/conveyor.conf under a real supervisord (from PyPI): the programs come up
as workers (``conveyor status``), and ``supervisorctl stop`` drains them: a running task
finishes and every program exits 0 within stopwaitsecs."""

from __future__ import annotations

import configparser
import re
import subprocess
import sys
from pathlib import Path

import pytest

from ..procs import ROOT, wait_for
from ..redis_server import RedisServer
from .services import (
    APP,
    CONVEYOR_BIN,
    DASHBOARD_TOKEN,
    DEPLOY,
    Drain,
    dashboard_answers,
    dashboard_users,
    deploy_env,
    local_dashboard_argv,
    local_metrics_argv,
    metrics_answer,
    worker_names,
)

CONF = DEPLOY / "supervisor" / "conveyor.conf"
BIN = Path(sys.executable).parent


def programs() -> dict[str, dict[str, str]]:
    parser = configparser.RawConfigParser()
    parser.read(CONF)
    return {
        s.removeprefix("program:"): dict(parser[s]) for s in parser.sections() if s.startswith("program:")
    }


def test_programs_stop_with_term_and_wait_longer_than_the_workers_shutdown_timeout() -> None:
    found = programs()
    assert set(found) == {
        "conveyor-worker-polling",
        "conveyor-worker-default",
        "conveyor-worker-low",
        "conveyor-beat",
        "conveyor-dashboard",
        "conveyor-metrics",
    }
    for name, program in found.items():
        assert program["stopsignal"] == "TERM" and program["autorestart"] == "true", name
        # The main process forwards SIGTERM to its children; the group only gets the SIGKILL.
        assert program["stopasgroup"] == "false" and program["killasgroup"] == "true", name
        if "worker" in name:
            argv = program["command"].split()
            assert int(program["stopwaitsecs"]) > float(argv[argv.index("--shutdown-timeout") + 1]), name


def test_the_dashboard_program_listens_with_an_auth_file_never_without_auth() -> None:
    argv = programs()["conveyor-dashboard"]["command"].split()
    assert argv[1] == "dashboard" and "--insecure-no-auth" not in argv
    assert argv[argv.index("--host") + 1] == "0.0.0.0"
    assert argv[argv.index("--auth-file") + 1] == "/etc/conveyor/dashboard-users"


def local_dashboard(text: str, logs: Path) -> tuple[str, int]:
    """The dashboard program with a free port, the test's users file, and the token the
    operator adds to its environment= line."""
    [line] = [ln for ln in text.splitlines() if ln.startswith("command=") and " dashboard " in ln]
    argv, port = local_dashboard_argv(line.removeprefix("command=").split(), dashboard_users(logs))
    text = text.replace(line, "command=" + " ".join(argv))
    section = text.index("[program:conveyor-dashboard]")
    env_at = text.index("environment=", section)
    end = text.index("\n", env_at)
    return text[:end] + f',CONVEYOR_DASHBOARD_TOKEN="{DASHBOARD_TOKEN}"' + text[end:], port


def local_metrics(text: str) -> tuple[str, int]:
    """The exporter program on a free port."""
    [line] = [ln for ln in text.splitlines() if ln.startswith("command=") and " metrics " in ln]
    argv, port = local_metrics_argv(line.removeprefix("command=").split())
    return text.replace(line, "command=" + " ".join(argv)), port


def local_conf(text: str, broker_url: str, logs: Path) -> str:
    """The shipped file with an install's paths and settings pointing here (and no user=:
    the test does not run as root with a ``conveyor`` account)."""
    text = text.replace("/opt/proj/venv/bin/conveyor", CONVEYOR_BIN).replace("/opt/proj", str(ROOT))
    text = text.replace("/var/log/conveyor", str(logs))
    text = re.sub(r"(?m)^user=.*\n", "", text)
    return re.sub(
        r"(?m)^environment=.*$", f'environment=CONVEYOR_APP="{APP}",CONVEYOR_BROKER_URL="{broker_url}"', text
    )


def supervisord_conf(tmp_path: Path, include: Path) -> Path:
    conf = tmp_path / "supervisord.conf"
    conf.write_text(
        f"""[unix_http_server]
file={tmp_path}/supervisor.sock

[supervisord]
logfile={tmp_path}/supervisord.log
pidfile={tmp_path}/supervisord.pid
childlogdir={tmp_path}
nodaemon=true

[rpcinterface:supervisor]
supervisor.rpcinterface_factory = supervisor.rpcinterface:make_main_rpcinterface

[supervisorctl]
serverurl=unix://{tmp_path}/supervisor.sock

[include]
files={include}
"""
    )
    return conf


def test_supervisord_runs_the_programs_and_supervisorctl_stop_drains_them(
    redis_server: RedisServer, tmp_path: Path
) -> None:
    pytest.importorskip("supervisor")
    import redis

    redis.Redis.from_url(redis_server.url).flushall()
    include = tmp_path / "conveyor.conf"
    text, port = local_dashboard(local_conf(CONF.read_text(), redis_server.url, tmp_path), tmp_path)
    text, metrics_port = local_metrics(text)
    include.write_text(text)
    conf = supervisord_conf(tmp_path, include)
    env = deploy_env(redis_server.url)
    supervisord = subprocess.Popen(
        [str(BIN / "supervisord"), "-c", str(conf)], cwd=tmp_path, env=env, stdout=subprocess.DEVNULL
    )
    drain: Drain | None = None

    def ctl(*args: str) -> subprocess.CompletedProcess[str]:
        command = [str(BIN / "supervisorctl"), "-c", str(conf), *args]
        return subprocess.run(command, capture_output=True, text=True, timeout=90, env=env, check=False)

    try:
        wait_for(lambda: worker_names(redis_server.url) == ["default", "low.1", "low.2", "polling"], 60)
        status = subprocess.run(
            [CONVEYOR_BIN, "-b", redis_server.url, "status"],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
        assert status.returncode == 0 and "4 nodes online." in status.stdout, status
        dashboard_answers(port, DASHBOARD_TOKEN)
        metrics_answer(metrics_port)
        drain = Drain(redis_server.url)
        drain.wait_running()
        stopped = ctl("stop", "conveyor:*")
        assert stopped.returncode == 0 and stopped.stdout.count(": stopped") == 6, stopped
        assert drain.finished()
        log = (tmp_path / "supervisord.log").read_text()
        for name in programs():
            # uvicorn re-raises the SIGTERM it handled: the dashboard and exporter end by it.
            server = "dashboard" in name or "metrics" in name
            clean = ("(terminated by SIGTERM)", "(exit status 0)") if server else ("(exit status 0)",)
            assert any(f"stopped: {name} {how}" in log for how in clean), log
        assert "second signal" not in (tmp_path / "conveyor-worker-low.log").read_text()
    finally:
        if drain is not None:
            drain.close()
        ctl("shutdown")
        try:
            supervisord.wait(timeout=60)
        except subprocess.TimeoutExpired:
            supervisord.kill()
            supervisord.wait(timeout=10)
