"""Processes the suite starts: conveyor workers and throwaway redis-servers.

Every process is started in its own session (so a Ctrl-C on the runner reaches only the
runner, which then cleans up) and registered here, so ``kill_all()`` can end every one of
them — and only them — whatever happened. A ``--processes`` supervisor is killed with its
whole process group, so its forked children go with it.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
_LIVE: list[subprocess.Popen[bytes]] = []


def kill_all() -> None:
    """SIGKILL every process group this suite started that may still run."""
    for proc in _LIVE:
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(proc.pid, signal.SIGKILL)
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=5)
    _LIVE.clear()


def _spawn(cmd: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    with open(log, "ab") as out:  # the child keeps its own copy of the descriptor
        proc = subprocess.Popen(
            cmd, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
    _LIVE.append(proc)
    return proc


def wait_until(predicate: Callable[[], object], timeout: float, interval: float = 0.05) -> bool:
    """Poll ``predicate`` until it is truthy or ``timeout`` passes; returns whether it held."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return bool(predicate())


class Worker:
    """``python -m conveyor -A chaos.tasks -b URL worker -n NAME@%h ARGS...`` with its own log."""

    def __init__(self, url: str, workdir: Path, name: str, args: list[str], env: dict[str, str]) -> None:
        self.name = name
        self.log_path = workdir / f"{name}.log"
        cmd = [sys.executable, "-m", "conveyor", "-A", "chaos.tasks", "-b", url, "worker"]
        # One process unless a scenario asks for more: a SIGKILL must reach the process that runs
        # the tasks (no flags would start a supervisor and one process per CPU).
        one = [] if "--processes" in args else ["--processes", "1"]
        cmd += ["-l", "info", "-n", f"{name}@%h", *one, *args]
        full_env = {**os.environ, "CONVEYOR_TEST_DIR": str(workdir), "PYTHONUNBUFFERED": "1", **env}
        self.proc = _spawn(cmd, full_env, self.log_path)
        self.killed_at: float | None = None  # epoch time of our SIGKILL, for the counting rules

    @property
    def pid(self) -> int:
        return self.proc.pid

    def alive(self) -> bool:
        return self.proc.poll() is None

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def wait_ready(self, timeout: float = 30.0) -> Worker:
        wait_until(lambda: " ready: " in self.log() or not self.alive(), timeout)
        return self

    def kill(self) -> float:
        """SIGKILL the worker (and, for a supervisor, its children); returns the kill time."""
        now = time.time()
        if self.alive():
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.pid, signal.SIGKILL)
            self.killed_at = now
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(timeout=10)
        return now

    def stop(self, timeout: float = 15.0) -> int | None:
        """SIGTERM (graceful), then SIGKILL after ``timeout``; returns the exit code."""
        if self.alive():
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.kill()
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.pid, signal.SIGKILL)  # leftover forked children, if any
        return self.proc.poll()


def free_port() -> int:
    while True:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port: int = s.getsockname()[1]
        if port != 6379:  # never someone's real Redis
            return port


class RedisServer:
    """A redis-server on a free port in ``workdir``, configured as docs/redis.md advises
    (``appendonly yes``, ``appendfsync everysec``, ``noeviction``) plus ``aof-timestamp-enabled``
    so the AOF can be cut back to a point in time."""

    def __init__(self, workdir: Path) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            raise RuntimeError("redis-server not found; run 'make redis-server'")
        self.binary = binary
        self.port = free_port()
        self.dir = workdir / "redis"
        self.dir.mkdir(parents=True, exist_ok=True)
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> RedisServer:
        cmd = [self.binary, "--port", str(self.port), "--bind", "127.0.0.1", "--dir", str(self.dir)]
        cmd += ["--save", "", "--appendonly", "yes", "--appendfsync", "everysec"]
        cmd += ["--aof-timestamp-enabled", "yes", "--maxmemory-policy", "noeviction"]
        cmd += ["--logfile", str(self.dir / "redis.log"), "--daemonize", "no"]
        self.proc = _spawn(cmd, dict(os.environ), self.dir / "stdout.log")
        if not wait_until(self.ping, 15.0, 0.02):
            raise RuntimeError(f"redis-server did not start on port {self.port}; see {self.dir}")
        return self

    def ping(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=0.5) as s:
                s.sendall(b"PING\r\n")
                return s.recv(16).startswith(b"+PONG")
        except OSError:
            return False

    def signal(self, signum: int) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.kill(self.proc.pid, signum)

    def kill(self) -> None:
        """SIGKILL: no shutdown, no final fsync."""
        self.signal(signal.SIGKILL)
        if self.proc is not None:
            self.proc.wait(timeout=10)
        self.proc = None

    def stop(self) -> None:
        """A clean shutdown (SIGTERM): Redis flushes the AOF and exits."""
        self.signal(signal.SIGTERM)
        if self.proc is not None:
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.kill()
        self.proc = None

    def incr_aof(self) -> Path:
        """Redis 7 keeps the AOF as a directory: a base file, incr files and a manifest. Writes
        since the last rewrite are in the newest ``*.incr.aof``."""
        files = sorted((self.dir / "appendonlydir").glob("*.incr.aof"), key=lambda p: p.stat().st_mtime)
        if not files:
            raise RuntimeError(f"no incr AOF file in {self.dir / 'appendonlydir'}")
        return files[-1]

    def truncate_aof(self, timestamp: int) -> str:
        """Cut the AOF back to ``timestamp`` (whole seconds): the writes of a crash's last moments
        that ``appendfsync everysec`` may lose. Redis must be down."""
        out = subprocess.run(
            ["redis-check-aof", "--truncate-to-timestamp", str(timestamp), str(self.incr_aof())],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        return (out.stdout + out.stderr).strip()
