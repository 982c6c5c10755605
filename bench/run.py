#!/usr/bin/env python3
"""Side-by-side benchmark of Conveyor and its Python peers (Celery, Dramatiq, RQ, Huey, arq, SAQ).

Usage (with the project's virtualenv)::

    .venv/bin/python bench/run.py [--tasks N] [--enqueue-tasks N] [--only celery,dramatiq,...] [--quick]

One run, one machine: every peer is installed from PyPI into its own virtualenv under
``.bench-cache/venvs/<peer>`` (reused when its pinned requirements are unchanged), one throwaway
``redis-server`` is started on a free port, and each system is measured with the same workload through
its own small script in ``bench/peers/``. Conveyor is measured through ``bench/peers/conveyor_bench.py``
with the project's own interpreter, once on Redis and once on SQLite. The report goes to
``bench/results/<output>.md`` and ``.json``. See ``bench/README.md`` for the method.
"""

from __future__ import annotations

import argparse
import atexit
import concurrent.futures
import contextlib
import ctypes
import datetime as dt
import json
import math
import multiprocessing
import os
import platform
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import redis

BENCH_DIR = Path(__file__).resolve().parent
REPO_ROOT = BENCH_DIR.parent
PEERS_DIR = BENCH_DIR / "peers"
CACHE_DIR = REPO_ROOT / ".bench-cache"
VENVS_DIR = CACHE_DIR / "venvs"
LOGS_DIR = CACHE_DIR / "logs"
RESULTS_DIR = BENCH_DIR / "results"
PROJECT_PYTHON = REPO_ROOT / ".venv" / "bin" / "python"

COUNTER_KEY = "bench:counter"  # keep in sync with bench/peers/_common.py
LATENCY_KEY = "bench:latency"

# Pinned peer versions, installed from PyPI into .bench-cache/venvs/<peer>. hiredis is added to every
# peer so that all of them (and Conveyor, which depends on redis[hiredis]) parse replies the same way.
PEER_REQUIREMENTS: dict[str, list[str]] = {
    "celery": ["celery[redis]==5.7.0", "redis==8.1.0", "hiredis==3.5.0"],
    "dramatiq": ["dramatiq[redis]==2.2.1", "redis==8.1.0", "hiredis==3.5.0"],
    "rq": ["rq==2.12.0", "redis==8.1.0", "hiredis==3.5.0"],
    "huey": ["huey==3.5.4", "redis==8.1.0", "hiredis==3.5.0"],
    "arq": ["arq==0.28.0", "hiredis==3.5.0"],  # arq requires redis<6; pip picks the newest allowed
    # saq imports typing_extensions without declaring it as a dependency
    "saq": ["saq[hiredis]==0.26.4", "redis==8.1.0", "typing_extensions"],
}
CONVEYOR_BROKERS = ("redis", "sqlite")
PROCESSES_WORKER = "conveyor -A bench.conveyor_tasks worker -P processes -c 2 -l warning"
SOLO_WORKER = "conveyor -A bench.conveyor_tasks worker -P solo --processes 2 -l warning"
ONE_WORKER = "conveyor -A bench.conveyor_tasks worker --processes 1 -l warning"
PINNED_WORKER = "conveyor -A bench.conveyor_tasks worker --pin-cpus -l warning"

INSTALL_TIMEOUT = 900.0
WORKER_STOP_GRACE = 3.0
POLL_INTERVAL = 0.002  # harness polls the counter every 2 ms during drain
RSS_INTERVAL = 0.1
WARMUP_TASKS = 20
CEILING_SECONDS = 3.0  # the task body alone, measured once at the end of a run


# --------------------------------------------------------------------------------------------
# processes


class MeasurementError(Exception):
    """A measurement failed; the message is a one-line reason for the report."""


def _one_line(text: str, limit: int = 300) -> str:
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    line = lines[-1] if lines else "(no output)"
    return line if len(line) <= limit else line[: limit - 3] + "..."


try:  # resolved once in the parent, so the forked child only makes the call
    _PRCTL: Any = ctypes.CDLL(None, use_errno=True).prctl
except (OSError, AttributeError):
    _PRCTL = None


def _die_with_parent() -> None:
    """preexec_fn: ask Linux to SIGKILL this child if the harness dies without cleaning up."""
    if _PRCTL is not None:
        _PRCTL(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


def _killpg(pid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, sig)


class Processes:
    """Every process group the harness starts; ``stop_all`` is idempotent and runs at exit."""

    def __init__(self) -> None:
        self.running: list[subprocess.Popen[bytes]] = []
        self.logs: dict[int, Path] = {}

    def start(self, cmd: list[str], env: dict[str, str], log_path: Path) -> subprocess.Popen[bytes]:
        log_path.parent.mkdir(parents=True, exist_ok=True)
        with log_path.open("ab") as log:
            proc = subprocess.Popen(
                cmd,
                env=env,
                cwd=REPO_ROOT,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # own process group: killpg reaches pool children too
                preexec_fn=_die_with_parent,  # noqa: PLW1509 (no threads run while starting)
            )
        self.running.append(proc)
        self.logs[proc.pid] = log_path
        return proc

    def exit_reason(self, proc: subprocess.Popen[bytes]) -> str:
        log_path = self.logs.get(proc.pid)
        tail = ""
        if log_path is not None and log_path.exists():
            tail = _one_line(log_path.read_text(errors="replace")[-4000:])
        where = f" ({log_path.relative_to(REPO_ROOT)})" if log_path else ""
        return f"worker exited with code {proc.returncode}: {tail}{where}"

    def stop(self, proc: subprocess.Popen[bytes], grace: float = WORKER_STOP_GRACE) -> None:
        if proc.poll() is None:
            _killpg(proc.pid, signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(grace)
        _killpg(proc.pid, signal.SIGKILL)  # stragglers in the group, even if the leader exited
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(5)
        if proc in self.running:
            self.running.remove(proc)

    def stop_all(self) -> None:
        for proc in list(self.running):
            self.stop(proc, grace=1.0)


PROCESSES = Processes()


def compile_conveyor() -> None:
    """Write the bytecode of Conveyor's checkout (``src/``, ``bench/``), as ``pip install`` does
    for every peer's packages. Conveyor runs from its editable source: where
    ``PYTHONDONTWRITEBYTECODE`` is set, each worker would otherwise compile its ~100 modules again
    at every start (about 0.1 s here, counted in its drain), a cost no installed package has."""
    import compileall

    for directory in (REPO_ROOT / "src", BENCH_DIR):
        compileall.compile_dir(directory, quiet=1)


def run_json(cmd: list[str], env: dict[str, str], timeout: float) -> dict[str, Any]:
    """Run a peer command in its own process group; return the JSON line it prints."""
    proc = subprocess.Popen(
        cmd,
        env=env,
        cwd=REPO_ROOT,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        _killpg(proc.pid, signal.SIGKILL)
        proc.communicate()
        raise MeasurementError(f"timed out after {timeout:.0f} s") from None
    finally:
        _killpg(proc.pid, signal.SIGKILL)
    if proc.returncode != 0:
        raise MeasurementError(f"exit {proc.returncode}: {_one_line(err.decode(errors='replace'))}")
    lines = out.decode(errors="replace").strip().splitlines()
    try:
        result = json.loads(lines[-1])
    except (IndexError, json.JSONDecodeError):
        raise MeasurementError(f"no JSON result; stderr: {_one_line(err.decode(errors='replace'))}") from None
    if not isinstance(result, dict):
        raise MeasurementError(f"unexpected result: {lines[-1][:200]}")
    return result


def base_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in {"PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV"}}
    env["PYTHONUNBUFFERED"] = "1"
    return env


# --------------------------------------------------------------------------------------------
# memory


def _proc_tree_pids(roots: list[int]) -> set[int]:
    children: dict[int, list[int]] = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            stat = Path(entry.path, "stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        children.setdefault(ppid, []).append(int(entry.name))
    seen: set[int] = set()
    stack = list(roots)
    while stack:
        pid = stack.pop()
        if pid not in seen:
            seen.add(pid)
            stack.extend(children.get(pid, []))
    return seen


def tree_rss_bytes(roots: list[int]) -> int:
    """Sum of RSS over the given processes and all their descendants (psutil, else /proc)."""
    try:
        import psutil
    except ImportError:
        psutil = None
    total = 0
    if psutil is not None:
        for root in roots:
            try:
                parent = psutil.Process(root)
                procs = [parent, *parent.children(recursive=True)]
            except psutil.Error:
                continue
            for p in procs:
                with contextlib.suppress(psutil.Error):
                    total += p.memory_info().rss
        return total
    page = os.sysconf("SC_PAGE_SIZE")
    for pid in _proc_tree_pids(roots):
        with contextlib.suppress(OSError, ValueError, IndexError):
            total += int(Path(f"/proc/{pid}/statm").read_text().split()[1]) * page
    return total


# --------------------------------------------------------------------------------------------
# redis-server


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def incr_loop(url: str, seconds: float) -> int:
    """INCR back to back for ``seconds`` on a connection of its own; how many it did. This is the
    drained task's whole body (every system's ``incr`` task does this one call)."""
    client = redis.Redis.from_url(url)
    end = time.perf_counter() + seconds
    done = 0
    while time.perf_counter() < end:
        client.incr("bench:ceiling")
        done += 1
    client.close()
    return done


def _incr_child(url: str, seconds: float, out: multiprocessing.Queue[int]) -> None:
    out.put(incr_loop(url, seconds))


def incr_in_processes(url: str, processes: int, seconds: float) -> float:
    """INCRs per second ``processes`` processes complete together, doing nothing else."""
    out: multiprocessing.Queue[int] = multiprocessing.Queue()
    children = [
        multiprocessing.Process(target=_incr_child, args=(url, seconds, out)) for _ in range(processes)
    ]
    for child in children:
        child.start()
    try:
        total = sum(out.get(timeout=seconds + 60) for _ in children)
    finally:
        for child in children:
            child.join(timeout=5)
            if child.is_alive():
                child.kill()
    return total / seconds


class RedisServer:
    """A throwaway redis-server on a free port in a temp dir (no persistence). Never port 6379."""

    def __init__(self, binary: str) -> None:
        self.binary = binary
        self.proc: subprocess.Popen[bytes] | None = None
        self.dir = Path(tempfile.mkdtemp(prefix="conveyor-bench-redis-"))
        self.port = 0

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        for _ in range(5):
            self.port = free_port()
            if self.port == 6379:
                continue
            cmd = [
                self.binary,
                "--port", str(self.port),
                "--bind", "127.0.0.1",
                "--save", "",
                "--appendonly", "no",
                "--dir", str(self.dir),
                "--daemonize", "no",
                "--logfile", str(self.dir / "redis.log"),
            ]  # fmt: skip
            self.proc = subprocess.Popen(
                cmd,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                start_new_session=True,
                preexec_fn=_die_with_parent,  # noqa: PLW1509 (no threads run while starting)
            )
            client = redis.Redis.from_url(self.url)
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline and self.proc.poll() is None:
                with contextlib.suppress(redis.ConnectionError):
                    if client.ping():
                        client.close()
                        return
                time.sleep(0.05)
            self.stop()
        raise RuntimeError(f"could not start {self.binary}")

    def stop(self) -> None:
        if self.proc is not None:
            if self.proc.poll() is None:
                self.proc.terminate()
                try:
                    self.proc.wait(5)
                except subprocess.TimeoutExpired:
                    self.proc.kill()
                    self.proc.wait(5)
            self.proc = None

    def cleanup(self) -> None:
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)


# --------------------------------------------------------------------------------------------
# systems


@dataclass
class System:
    name: str  # row label
    key: str  # what --only matches
    script: Path
    python: Path
    broker: str  # "redis" or "sqlite"
    is_conveyor: bool = False
    broker_url: str = ""
    env: dict[str, str] = field(default_factory=dict)  # for its peer script (e.g. another worker command)


@dataclass
class Result:
    system: str
    broker: str
    is_conveyor: bool
    status: str = "ok"  # ok | failed | not available
    reason: str = ""
    version: str = ""
    libs: dict[str, str] = field(default_factory=dict)
    concurrency: str = ""
    enqueue_api: str = ""
    bulk_api: str = ""
    worker_cmds: list[str] = field(default_factory=list)
    enqueue_per_s: float | None = None
    bulk_per_s: float | None = None
    bulk_na: str = ""
    drain_per_s: float | None = None
    drain_seconds: float | None = None
    drain_first_task_s: float | None = None
    drain_steady_per_s: float | None = None
    latency_p50_ms: float | None = None
    latency_p99_ms: float | None = None
    latency_max_ms: float | None = None
    latency_samples: int | None = None
    latency_offered_per_s: float | None = None
    peak_rss_mb: float | None = None
    cpu_per_s: float | None = None  # CPU-bound tasks drained per second
    cpu_two_cores_per_s: float | None = None  # what two cores drain: two processes running cpu_work()
    cpu_two_cores_best_per_s: float | None = None  # the old yardstick: 2 / one cpu_work()'s best time
    cpu_na: str = ""
    load_average_at_start: float | None = None
    errors: dict[str, str] = field(default_factory=dict)


@dataclass
class Params:
    enqueue_n: int
    drain_n: int
    rate: float
    latency_seconds: float
    cpu_n: int = 400


def all_systems() -> list[System]:
    systems = [
        System(
            name=peer,
            key=peer,
            script=PEERS_DIR / f"{peer}_peer.py",
            python=VENVS_DIR / peer / "bin" / "python",
            broker="redis",
        )
        for peer in PEER_REQUIREMENTS
    ]
    systems += [
        System(
            name=f"conveyor ({broker})",
            key=f"conveyor-{broker}",
            script=PEERS_DIR / "conveyor_bench.py",
            python=PROJECT_PYTHON,
            broker=broker,
            is_conveyor=True,
        )
        for broker in CONVEYOR_BROKERS
    ]
    # The modes a user would choose, on Redis: the process pool next to Celery's prefork -c 2
    # (one worker, two child processes), the default pool in one process (what no flags started
    # before it started one per usable CPU), and tiny tasks at full speed (two worker processes,
    # each running tasks inline on its loop).
    for name, key, command in (
        ("conveyor -P processes (redis)", "conveyor-processes", PROCESSES_WORKER),
        ("conveyor --processes 1 (redis)", "conveyor-one", ONE_WORKER),
        ("conveyor -P solo --processes 2 (redis)", "conveyor-solo", SOLO_WORKER),
        ("conveyor --pin-cpus (redis)", "conveyor-pinned", PINNED_WORKER),
    ):
        systems.append(
            System(
                name=name,
                key=key,
                script=PEERS_DIR / "conveyor_bench.py",
                python=PROJECT_PYTHON,
                broker="redis",
                is_conveyor=True,
                env={"BENCH_CONVEYOR_WORKER": command},
            )
        )
    return systems


def select_systems(only: str | None) -> list[System]:
    systems = all_systems()
    if not only:
        return systems
    wanted = {w.strip().lower() for w in only.split(",") if w.strip()}
    known = {s.key for s in systems} | {"conveyor"}
    unknown = wanted - known
    if unknown:
        names = ", ".join(sorted(known))
        raise SystemExit(f"unknown system(s) in --only: {', '.join(sorted(unknown))}; known: {names}")
    return [s for s in systems if s.key in wanted or (s.is_conveyor and "conveyor" in wanted)]


# --------------------------------------------------------------------------------------------
# virtualenvs


def ensure_venv(peer: str, reinstall: bool) -> str | None:
    """Create/reuse ``.bench-cache/venvs/<peer>``; return None when ready, else a one-line reason."""
    venv = VENVS_DIR / peer
    stamp = venv / ".bench-requirements.json"
    reqs = PEER_REQUIREMENTS[peer]
    python = venv / "bin" / "python"
    if not reinstall and python.exists() and stamp.exists():
        with contextlib.suppress(OSError, json.JSONDecodeError):
            if json.loads(stamp.read_text()) == reqs:
                return None
    LOGS_DIR.mkdir(parents=True, exist_ok=True)
    log = LOGS_DIR / f"install-{peer}.log"
    try:
        if reinstall and venv.exists():
            shutil.rmtree(venv)
        if not python.exists():
            base = getattr(sys, "_base_executable", sys.executable)
            subprocess.run([base, "-m", "venv", str(venv)], check=True, capture_output=True, timeout=120)
        with log.open("wb") as fh:
            cmd = [str(python), "-m", "pip", "install", "--disable-pip-version-check", "-q", *reqs]
            subprocess.run(cmd, check=True, stdout=fh, stderr=subprocess.STDOUT, timeout=INSTALL_TIMEOUT)
    except subprocess.CalledProcessError as exc:
        text = log.read_text(errors="replace") if log.exists() else str(exc.stderr or b"", "utf-8", "replace")
        errors = [ln for ln in text.splitlines() if "ERROR" in ln] or [text]
        return f"install failed: {_one_line(errors[-1])}"
    except (subprocess.TimeoutExpired, OSError) as exc:
        return f"install failed: {exc}"
    stamp.write_text(json.dumps(reqs))
    return None


def ensure_venvs(peers: list[str], reinstall: bool) -> dict[str, str]:
    """Install peers in parallel (pip is mostly network/IO bound). Returns {peer: failure reason}."""
    if not peers:
        return {}
    failures: dict[str, str] = {}
    with concurrent.futures.ThreadPoolExecutor(max_workers=3) as pool:
        futures = {pool.submit(ensure_venv, peer, reinstall): peer for peer in peers}
        for fut in concurrent.futures.as_completed(futures):
            peer = futures[fut]
            reason = fut.result()
            log(f"  {peer}: {'ready' if reason is None else reason}")
            if reason is not None:
                failures[peer] = reason
    return failures


# --------------------------------------------------------------------------------------------
# measurements


def log(msg: str) -> None:
    print(msg, flush=True)


class Bench:
    def __init__(self, server: RedisServer, params: Params, tmpdir: Path) -> None:
        self.server = server
        self.params = params
        self.tmpdir = tmpdir
        self.r = redis.Redis.from_url(server.url)

    # -- helpers ------------------------------------------------------------------------------

    def broker_url(self, system: System) -> str:
        if system.broker == "sqlite":
            return f"sqlite:///{self.tmpdir / 'bench.db'}"
        return self.server.url

    def reset(self, system: System) -> None:
        """FLUSHALL (and a fresh SQLite file); only called while no worker of the system runs."""
        self.r.flushall()
        if system.broker == "sqlite":
            for suffix in ("", "-wal", "-shm", "-journal"):
                with contextlib.suppress(FileNotFoundError):
                    (self.tmpdir / f"bench.db{suffix}").unlink()

    def peer_cmd(self, system: System, command: str, *extra: str) -> list[str]:
        return [
            str(system.python),
            str(system.script),
            command,
            "--redis-url",
            self.server.url,
            "--broker-url",
            self.broker_url(system),
            *extra,
        ]

    def call(self, system: System, command: str, *extra: str, timeout: float) -> dict[str, Any]:
        return run_json(self.peer_cmd(system, command, *extra), {**base_env(), **system.env}, timeout)

    def counter(self) -> int:
        return int(self.r.get(COUNTER_KEY) or 0)

    @contextlib.contextmanager
    def workers(
        self, system: System, phase: str, spec: dict[str, Any] | None = None
    ) -> Iterator[list[subprocess.Popen[bytes]]]:
        """The system's worker processes, started from ``spec`` (its driver's ``worker-cmd``
        answer; asked for here when not given)."""
        if spec is None:
            spec = self.call(system, "worker-cmd", timeout=60)
        env = {**base_env(), **system.env, **spec["env"]}
        safe = system.name.replace(" ", "").replace("(", "-").replace(")", "")
        procs: list[subprocess.Popen[bytes]] = []
        try:
            for i, cmd in enumerate(spec["cmds"]):
                procs.append(PROCESSES.start(cmd, env, LOGS_DIR / f"{safe}-{phase}-worker{i}.log"))
            yield procs
        finally:
            for proc in procs:
                PROCESSES.stop(proc)

    @staticmethod
    def check_alive(procs: list[subprocess.Popen[bytes]]) -> None:
        for proc in procs:
            if proc.poll() is not None:
                raise MeasurementError(PROCESSES.exit_reason(proc))

    def wait_counter(self, procs: list[subprocess.Popen[bytes]], target: int, timeout: float) -> None:
        deadline = time.perf_counter() + timeout
        while self.counter() < target:
            self.check_alive(procs)
            if time.perf_counter() > deadline:
                raise MeasurementError(f"only {self.counter()}/{target} tasks ran within {timeout:.0f} s")
            time.sleep(0.01)

    # -- the measurements ----------------------------------------------------------------------

    def info(self, system: System, res: Result) -> None:
        info = self.call(system, "info", timeout=120)
        res.version = str(info.get("version", ""))
        res.libs = {str(k): str(v) for k, v in dict(info.get("libs", {})).items()}
        res.concurrency = str(info.get("concurrency", ""))
        res.enqueue_api = str(info.get("enqueue_api", ""))
        res.bulk_api = str(info.get("bulk_api", ""))
        spec = self.call(system, "worker-cmd", timeout=60)
        res.worker_cmds = [self.display_cmd(cmd, system) for cmd in spec["cmds"]]

    def display_cmd(self, cmd: list[str], system: System) -> str:
        """The worker command as shown in the report: repo-relative paths, URLs as variables."""
        text = shlex.join(relative(part) for part in cmd)
        return text.replace(self.broker_url(system), "$BROKER_URL").replace(self.server.url, "$REDIS_URL")

    def enqueue(self, system: System, res: Result) -> None:
        n = self.params.enqueue_n
        self.reset(system)
        out = self.call(system, "enqueue", "--n", str(n), timeout=60 + n / 50)
        res.enqueue_per_s = n / float(out["seconds"])

    def bulk(self, system: System, res: Result) -> None:
        n = self.params.enqueue_n
        self.reset(system)
        out = self.call(system, "bulk", "--n", str(n), timeout=60 + n / 50)
        if "na" in out:
            res.bulk_na = str(out["na"])
        else:
            res.bulk_per_s = n / float(out["seconds"])

    def drain(self, system: System, res: Result) -> None:
        n = self.params.drain_n
        self.reset(system)
        self.call(system, "enqueue", "--n", str(n), timeout=60 + n / 50)
        if self.counter() != 0:
            raise MeasurementError("counter moved before the worker started")
        timeout = 60 + n / 50
        peak = 0
        t_first: float | None = None
        c_first = 0
        # The worker command first: asking the system's driver for it starts a Python process
        # that imports the system (0.15-0.25 s here), which is the harness's work, not the
        # worker's start-up; until 2026-12-03 the clock ran during it.
        spec = self.call(system, "worker-cmd", timeout=60)
        start = time.perf_counter()
        with self.workers(system, "drain", spec) as procs:
            roots = [p.pid for p in procs]
            next_rss = start
            while True:
                now = time.perf_counter()
                count = self.counter()
                if count > 0 and t_first is None:
                    t_first, c_first = now, count
                if count >= n:
                    break
                if now >= next_rss:
                    peak = max(peak, tree_rss_bytes(roots))
                    next_rss = now + RSS_INTERVAL
                    self.check_alive(procs)
                if now - start > timeout:
                    raise MeasurementError(f"only {count}/{n} tasks ran within {timeout:.0f} s")
                time.sleep(POLL_INTERVAL)
            done = now
            peak = max(peak, tree_rss_bytes(roots))
        res.drain_seconds = done - start
        res.drain_per_s = n / res.drain_seconds
        res.peak_rss_mb = peak / 2**20
        if t_first is not None:
            res.drain_first_task_s = t_first - start
            if done > t_first:
                res.drain_steady_per_s = (n - c_first) / (done - t_first)

    def cpu(self, system: System, res: Result) -> None:
        """CPU-bound tasks (about 20 ms of pure Python each): how many cores the pool really uses."""
        n = self.params.cpu_n
        self.reset(system)
        out = self.call(system, "enqueue-cpu", "--n", str(n), timeout=60 + n / 50)
        if "na" in out:
            res.cpu_na = str(out["na"])
            return
        yardstick = self.call(system, "cpu-seconds", timeout=120)
        one = float(yardstick["seconds"])
        deadline = time.perf_counter() + 60 + n * one * 4
        with self.workers(system, "cpu") as procs:
            # From the first task done to the last: worker start-up is left out here (the
            # drain measures it), this is about how many cores the running pool uses.
            first: tuple[float, int] | None = None
            while (count := self.counter()) < n:
                if count and first is None:
                    first = (time.perf_counter(), count)
                if time.perf_counter() > deadline:
                    raise MeasurementError(f"only {count}/{n} cpu tasks ran in time")
                self.check_alive(procs)
                time.sleep(0.005)
            done = time.perf_counter()
        if first is None or done <= first[0]:
            raise MeasurementError("too few cpu tasks to time: raise --cpu-tasks")
        res.cpu_per_s = (n - first[1]) / (done - first[0])
        res.cpu_two_cores_best_per_s = 2 / one
        res.cpu_two_cores_per_s = float(yardstick.get("two_cores_per_s", 2 / one))

    def latency(self, system: System, res: Result) -> None:
        rate, seconds = self.params.rate, self.params.latency_seconds
        self.reset(system)
        with self.workers(system, "latency") as procs:
            # Warm up: the worker is ready once it has run a few tasks.
            self.call(system, "enqueue", "--n", str(WARMUP_TASKS), timeout=60)
            self.wait_counter(procs, WARMUP_TASKS, timeout=60)
            self.r.delete(LATENCY_KEY)
            out = self.call(
                system, "load", "--rate", str(rate), "--seconds", str(seconds), timeout=seconds * 3 + 60
            )
            sent = int(out["sent"])
            res.latency_offered_per_s = sent / float(out["seconds"])
            deadline = time.perf_counter() + max(30.0, seconds * 4)
            while self.r.llen(LATENCY_KEY) < sent:
                self.check_alive(procs)
                if time.perf_counter() > deadline:
                    got = self.r.llen(LATENCY_KEY)
                    raise MeasurementError(f"only {got}/{sent} latency tasks started in time")
                time.sleep(0.01)
        values = sorted(float(v) * 1000 for v in self.r.lrange(LATENCY_KEY, 0, -1))
        res.latency_samples = len(values)
        res.latency_p50_ms = percentile(values, 50)
        res.latency_p99_ms = percentile(values, 99)
        res.latency_max_ms = values[-1]

    def run_system(self, system: System) -> Result:
        res = Result(system=system.name, broker=system.broker, is_conveyor=system.is_conveyor)
        res.load_average_at_start = os.getloadavg()[0]
        log(f"== {system.name}")
        try:
            self.info(system, res)
        except MeasurementError as exc:
            res.status = "not available" if system.is_conveyor else "failed"
            res.reason = str(exc)
            log(f"   {res.status}: {res.reason}")
            return res
        log(f"   version {res.version}; {res.concurrency}")
        steps = [
            ("enqueue", self.enqueue),
            ("bulk", self.bulk),
            ("drain", self.drain),
            ("latency", self.latency),
            ("cpu", self.cpu),
        ]
        for name, step in steps:
            t0 = time.perf_counter()
            try:
                step(system, res)
                log(f"   {name}: {self.describe(name, res)}  ({time.perf_counter() - t0:.1f} s)")
            except (MeasurementError, redis.RedisError, KeyError, ValueError) as exc:
                res.errors[name] = str(exc) or type(exc).__name__
                log(f"   {name}: FAILED: {res.errors[name]}")
        if len(res.errors) == len(steps):
            res.status = "not available" if system.is_conveyor else "failed"
            distinct = list(dict.fromkeys(res.errors.values()))
            res.reason = (
                distinct[0] if len(distinct) == 1 else "; ".join(f"{k}: {v}" for k, v in res.errors.items())
            )
        return res

    @staticmethod
    def describe(step: str, res: Result) -> str:
        if step == "enqueue":
            return f"{fmt_rate(res.enqueue_per_s)} tasks/s"
        if step == "bulk":
            return res.bulk_na or f"{fmt_rate(res.bulk_per_s)} tasks/s"
        if step == "drain":
            return (
                f"{fmt_rate(res.drain_per_s)} tasks/s (steady {fmt_rate(res.drain_steady_per_s)}/s, "
                f"first task after {fmt_num(res.drain_first_task_s, 2)} s), "
                f"peak RSS {fmt_num(res.peak_rss_mb, 0)} MB"
            )
        if step == "cpu":
            if res.cpu_na:
                return res.cpu_na
            ideal = fmt_num(res.cpu_two_cores_per_s, 1)
            return f"{fmt_num(res.cpu_per_s, 1)} tasks/s (two cores' worth: {ideal}/s)"
        return f"p50 {fmt_num(res.latency_p50_ms, 2)} ms, p99 {fmt_num(res.latency_p99_ms, 2)} ms"


def relative(arg: str) -> str:
    """A path inside the repository as a repo-relative path; anything else unchanged."""
    try:
        return str(Path(arg).relative_to(REPO_ROOT))
    except ValueError:
        return arg


def percentile(sorted_values: list[float], pct: float) -> float:
    """Nearest-rank percentile of an ascending list."""
    rank = max(1, math.ceil(pct / 100 * len(sorted_values)))
    return sorted_values[rank - 1]


# --------------------------------------------------------------------------------------------
# report


def fmt_rate(value: float | None) -> str:
    return "-" if value is None else f"{value:,.0f}"


def fmt_num(value: float | None, digits: int) -> str:
    return "-" if value is None else f"{value:,.{digits}f}"


def machine_info(redis_binary: str) -> dict[str, str]:
    cpu = platform.processor() or "unknown"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    ram = "unknown"
    with contextlib.suppress(OSError, ValueError, IndexError):
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                ram = f"{int(line.split()[1]) / 2**20:.1f} GiB"
                break
    try:
        proc = subprocess.run(
            [redis_binary, "--version"], check=False, capture_output=True, text=True, timeout=10
        )
        redis_version = proc.stdout.strip()
    except (OSError, subprocess.TimeoutExpired) as exc:
        redis_version = f"unknown ({exc})"
    try:
        git = ["git", "-C", str(REPO_ROOT), "describe", "--always", "--dirty"]
        revision = subprocess.run(git, check=True, capture_output=True, text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        revision = "unknown"
    return {
        "conveyor_revision": revision,
        "load_average": " ".join(f"{x:.2f}" for x in os.getloadavg()),
        "cpu": cpu,
        "cores": str(os.cpu_count()),
        "ram": ram,
        "os": platform.platform(),
        "python": platform.python_version(),
        "redis_server": redis_version,
    }


def best_peer(results: list[Result], attr: str) -> tuple[float, str] | None:
    """(value, system) of the highest figure among the peers (not Conveyor), if any."""
    values = [(getattr(r, attr), r.system) for r in results if not r.is_conveyor]
    present = [(v, name) for v, name in values if v is not None]
    return max(present) if present else None


def ratio(res: Result, attr: str, best: tuple[float, str] | None) -> str:
    value = getattr(res, attr)
    if not res.is_conveyor or value is None or best is None or best[0] <= 0:
        return ""
    return f"{value / best[0]:.2f}x"


def cell(res: Result, step: str, text: str) -> str:
    """A table cell: the formatted figure, or "failed" when that measurement failed."""
    return "failed" if text == "-" and step in res.errors else text


def render_markdown(results: list[Result], meta: dict[str, Any]) -> str:
    p: Params = meta["params"]
    machine: dict[str, str] = meta["machine"]
    best = {attr: best_peer(results, attr) for attr in ("enqueue_per_s", "bulk_per_s", "drain_per_s")}
    out: list[str] = []
    add = out.append
    add("# Conveyor benchmark results")
    add("")
    add(f"Generated {meta['generated']} with:")
    add("")
    add(f"    {meta['command']}")
    add("")
    add("## Machine")
    add("")
    add(f"- CPU: {machine['cpu']}, {machine['cores']} cores; RAM {machine['ram']}")
    add(f"- OS: {machine['os']}")
    add(f"- Python {machine['python']} (harness and every peer virtualenv)")
    add(f"- {machine['redis_server']} (one throwaway server on 127.0.0.1, no persistence)")
    add(f"- load average when the run started: {machine['load_average']}")
    add(f"- Conveyor source: `git describe --always --dirty` = `{machine['conveyor_revision']}`")
    add("")
    add("## Workload")
    add("")
    add(f"- enqueue: {p.enqueue_n:,} `incr` tasks one by one (normal API), then with the bulk API")
    add(f"- drain: {p.drain_n:,} `incr` tasks (one Redis INCR each) queued first; time from worker start")
    add("  until the counter reaches N (polled by the harness every 2 ms)")
    add(f"- latency: `mark(enqueued_at)` offered at {p.rate:g} tasks/s for {p.latency_seconds:g} s to a warm")
    add("  worker; task start time minus enqueue timestamp (the enqueue call itself is included)")
    add("- peak RSS: sum over the worker process tree, sampled every 100 ms during the drain")
    add("")
    add("## Results")
    add("")
    header = [
        "system", "version", "concurrency", "enqueue/s", "bulk/s", "drain/s",
        "latency p50 ms", "latency p99 ms", "peak RSS MB",
        "enqueue x best peer", "bulk x best peer", "drain x best peer",
    ]  # fmt: skip
    add("| " + " | ".join(header) + " |")
    add("|" + "|".join(["---", "---", "---", *["---:"] * 9]) + "|")
    for res in results:
        if res.status != "ok":
            row = [f"**{res.system}**", res.version or "-", f"{res.status}: {res.reason}", *[""] * 9]
        else:
            row = [
                f"**{res.system}**",
                res.version,
                res.concurrency,
                cell(res, "enqueue", fmt_rate(res.enqueue_per_s)),
                "n/a" if res.bulk_na else cell(res, "bulk", fmt_rate(res.bulk_per_s)),
                cell(res, "drain", fmt_rate(res.drain_per_s)),
                cell(res, "latency", fmt_num(res.latency_p50_ms, 2)),
                cell(res, "latency", fmt_num(res.latency_p99_ms, 2)),
                cell(res, "drain", fmt_num(res.peak_rss_mb, 0)),
                ratio(res, "enqueue_per_s", best["enqueue_per_s"]),
                ratio(res, "bulk_per_s", best["bulk_per_s"]),
                ratio(res, "drain_per_s", best["drain_per_s"]),
            ]
        add("| " + " | ".join(row) + " |")
    add("")
    bests = [f"{label} {fmt_rate(b[0])}/s ({b[1]})" for label, b in (
        ("enqueue", best["enqueue_per_s"]), ("bulk", best["bulk_per_s"]), ("drain", best["drain_per_s"]))
        if b is not None]  # fmt: skip
    if bests:
        add("Best peer: " + "; ".join(bests) + '. "x best peer" = Conveyor\'s figure divided by that.')
        add("")

    conveyor = [r for r in results if r.is_conveyor and r.status == "ok"]
    if conveyor:
        add("## Conveyor against the targets (DESIGN.md)")
        add("")
        add("| target | " + " | ".join(r.system for r in conveyor) + " |")
        add("|---|" + "|".join(["---"] * len(conveyor)) + "|")
        for label, check in target_checks(best):
            add(f"| {label} | " + " | ".join(check(r) for r in conveyor) + " |")
        add("")

    out.extend(ceiling_section(results, meta.get("ceiling_incr_per_s"), p.drain_n, best["drain_per_s"]))

    cpu_rows = [r for r in results if r.status == "ok" and r.cpu_per_s is not None]
    if cpu_rows:
        add("## CPU-bound tasks")
        add("")
        add(f"{p.cpu_n:,} `cpu` tasks, each the same ~20 ms of pure Python (`_common.cpu_work()`) then one")
        add("INCR, queued first; the rate from the first task done to the last (start-up left out).")
        add('"two cores\' worth" = the `cpu_work()` calls per second two processes running it back to back')
        add("complete together on this machine, measured just before (no broker, no worker); the old")
        add("yardstick, 2 / the best of five lone calls, is in the last column for comparison.")
        add("")
        add("| system | concurrency | cpu tasks/s | two cores' worth /s | share | share of 2 / best call |")
        add("|---|---|---:|---:|---:|---:|")
        for res in cpu_rows:
            assert res.cpu_per_s is not None and res.cpu_two_cores_per_s is not None
            share = f"{res.cpu_per_s / res.cpu_two_cores_per_s:.0%}"
            best = res.cpu_two_cores_best_per_s
            old = f"{res.cpu_per_s / best:.0%}" if best else "n/a"
            add(
                f"| {res.system} | {res.concurrency} | {fmt_num(res.cpu_per_s, 1)} | "
                f"{fmt_num(res.cpu_two_cores_per_s, 1)} | {share} | {old} |"
            )
        add("")

    add("## Configurations")
    add("")
    add("| system | versions | enqueue API | bulk API | worker command |")
    add("|---|---|---|---|---|")
    for res in results:
        libs = ", ".join(f"{k} {v}" for k, v in res.libs.items())
        cmds = "<br>".join(f"`{c}`" for c in res.worker_cmds)
        bulk_api = res.bulk_api or "-"
        add(f"| {res.system} | {res.version} ({libs}) | `{res.enqueue_api}` | {bulk_api} | {cmds} |")
    add("")
    add("Pinned peer requirements (each in its own virtualenv under `.bench-cache/venvs/<peer>`):")
    add("")
    for peer, reqs in meta["requirements"].items():
        add(f"- {peer}: `{' '.join(reqs)}`")
    add("")

    add("## Details")
    add("")
    add("| system | drain s | first task after s | steady drain/s | latency n | offered/s | max ms | load |")
    add("|---|---:|---:|---:|---:|---:|---:|---:|")
    for res in results:
        if res.status != "ok":
            continue
        add(
            f"| {res.system} | {fmt_num(res.drain_seconds, 2)} | {fmt_num(res.drain_first_task_s, 2)} | "
            f"{fmt_rate(res.drain_steady_per_s)} | {res.latency_samples or '-'} | "
            f"{fmt_num(res.latency_offered_per_s, 0)} | {fmt_num(res.latency_max_ms, 1)} | "
            f"{fmt_num(res.load_average_at_start, 2)} |"
        )
    add("")
    add('"steady drain/s" excludes worker start-up: tasks run after the first one was seen, divided by the')
    add("time from then until the last. \"load\" is the machine's 1-minute load average when the system's")
    add("measurements began (the previous system's workers included): a high figure with no benchmark")
    add("running means other processes competed for the 2 cores.")
    add("")
    notes: list[str] = []
    for res in results:
        if res.status != "ok":
            notes.append(f"- {res.system}: {res.status}: {res.reason}")
            continue
        notes += [f"- {res.system}: {step} failed: {err}" for step, err in res.errors.items()]
        if res.bulk_na:
            notes.append(f"- {res.system}: bulk {res.bulk_na}")
        if saturated(res):
            notes.append(
                f"- {res.system}: the offered {fmt_num(res.latency_offered_per_s, 0)} tasks/s is above its "
                f"steady drain rate ({fmt_rate(res.drain_steady_per_s)}/s), so its latency is mostly queueing"
            )
    if notes:
        add("## Failures and notes")
        add("")
        out.extend(notes)
        add("")
    return "\n".join(out)


def ceiling_section(
    results: list[Result], ceiling: float | None, n: int, best: tuple[float, str] | None
) -> list[str]:
    """What the drained task itself allows on this machine, next to the targets stated against
    the best peer: a worker can drain no faster than its task body runs with nothing around it.
    """
    started = [r.drain_first_task_s for r in results if r.status == "ok" and r.drain_first_task_s]
    if ceiling is None or not started or best is None:
        return []
    first = min(started)
    with_start = n / (first + n / ceiling)
    out = [
        "## What the task itself allows",
        "",
        "Every drained task does one redis-py `INCR`. Two processes doing nothing but that call, back to",
        f"back, on the same `redis-server` at the end of this run: **{fmt_rate(ceiling)} INCR/s**. No",
        "worker drains faster: it makes the same call and more (fetch, decode, settle, history) on the",
        f"same two cores. With the quickest start-up of this run ({first:.2f} s to the first task) and",
        f"then that rate throughout, {n:,} tasks would drain at **{fmt_rate(with_start)}/s** counting",
        "start-up, as the drain column does.",
        "",
        "| drain target | rate it needs | share of the task body alone (with start-up) |",
        "|---|---:|---:|",
    ]
    for factor in (3.0, 4.0):
        need = factor * best[0]
        out.append(f"| {factor:g}x best peer ({best[1]}) | {fmt_rate(need)}/s | {need / with_start:.0%} |")
    for res in results:
        if res.is_conveyor and res.status == "ok" and res.drain_per_s is not None:
            share = res.drain_per_s / with_start
            out.append(f"| {res.system}: reached | {fmt_rate(res.drain_per_s)}/s | {share:.0%} |")
    out.append("")
    return out


def saturated(res: Result) -> bool:
    offered, steady = res.latency_offered_per_s, res.drain_steady_per_s
    return offered is not None and steady is not None and steady < offered


def target_checks(best: dict[str, tuple[float, str] | None]) -> list[tuple[str, Callable[[Result], str]]]:
    """The Performance targets of DESIGN.md, each as (label, Conveyor row -> PASS/FAIL cell)."""

    def verdict(ok: bool, text: str) -> str:
        return f"{'PASS' if ok else 'FAIL'} ({text})"

    def vs_best(attr: str, factor: float) -> Callable[[Result], str]:
        def check(r: Result) -> str:
            value, peer = getattr(r, attr), best[attr]
            if value is None or peer is None:
                return "-"
            return verdict(value >= factor * peer[0], f"{value / peer[0]:.2f}x")

        return check

    def at_least(attr: str, limit: float, unit: str, broker: str | None = None) -> Callable[[Result], str]:
        def check(r: Result) -> str:
            value = getattr(r, attr)
            if value is None or (broker is not None and r.broker != broker):
                return "-"
            return verdict(value >= limit, f"{fmt_rate(value)}{unit}")

        return check

    def at_most(attr: str, limit: float) -> Callable[[Result], str]:
        def check(r: Result) -> str:
            value = getattr(r, attr)
            return "-" if value is None else verdict(value <= limit, f"{fmt_num(value, 2)} ms")

        return check

    return [
        ("drain >= 4x best peer", vs_best("drain_per_s", 4.0)),
        ("one-by-one enqueue >= 1.5x best peer", vs_best("enqueue_per_s", 1.5)),
        ("bulk enqueue >= 100,000/s", at_least("bulk_per_s", 100_000, "/s")),
        ("latency p50 <= 1 ms", at_most("latency_p50_ms", 1.0)),
        ("latency p99 <= 5 ms", at_most("latency_p99_ms", 5.0)),
        ("SQLite drain >= 3,000/s", at_least("drain_per_s", 3000, "/s", broker="sqlite")),
    ]


def print_summary(results: list[Result]) -> None:
    cols = ["system", "enqueue/s", "bulk/s", "drain/s", "p50 ms", "p99 ms", "RSS MB"]
    rows = []
    for r in results:
        if r.status != "ok":
            rows.append([r.system, f"{r.status}: {r.reason}"[:60], "", "", "", "", ""])
            continue
        rows.append([
            r.system, fmt_rate(r.enqueue_per_s), "n/a" if r.bulk_na else fmt_rate(r.bulk_per_s),
            fmt_rate(r.drain_per_s), fmt_num(r.latency_p50_ms, 2), fmt_num(r.latency_p99_ms, 2),
            fmt_num(r.peak_rss_mb, 0),
        ])  # fmt: skip
    widths = [max(len(c), *(len(row[i]) for row in rows)) if rows else len(c) for i, c in enumerate(cols)]
    log("")
    log("  ".join(c.ljust(w) for c, w in zip(cols, widths, strict=True)))
    for row in rows:
        log("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)))


# --------------------------------------------------------------------------------------------
# main


def command_line(argv: list[str] | None) -> str:
    """The command that reproduces this run, including an overridden Conveyor worker command."""
    cmd = shlex.join([".venv/bin/python", "bench/run.py", *(sys.argv[1:] if argv is None else argv)])
    override = os.environ.get("BENCH_CONVEYOR_WORKER")
    return f"BENCH_CONVEYOR_WORKER={shlex.quote(override)} {cmd}" if override else cmd


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--tasks", type=int, help="drain N (default 20000; --quick 1000)")
    parser.add_argument("--enqueue-tasks", type=int, help="enqueue/bulk N (default 10000; --quick 1000)")
    parser.add_argument(
        "--only", help="comma-separated: celery,dramatiq,rq,huey,arq,saq,conveyor[-redis|-sqlite]"
    )
    parser.add_argument("--cpu-tasks", type=int, help="CPU-bound tasks (~20 ms each) drained (default 400)")
    parser.add_argument("--quick", action="store_true", help="fast smoke run with small N")
    parser.add_argument("--rate", type=float, default=500.0, help="offered load for latency (tasks/s)")
    parser.add_argument("--latency-seconds", type=float, help="latency load duration (default 5; --quick 2)")
    parser.add_argument("--output", help="results/<name>.md|.json (default latest; --quick: quick)")
    parser.add_argument("--reinstall", action="store_true", help="recreate the peer virtualenvs")
    parser.add_argument("--redis-server", default=shutil.which("redis-server") or "/usr/bin/redis-server")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    params = Params(
        enqueue_n=args.enqueue_tasks or (1000 if args.quick else 10_000),
        drain_n=args.tasks or (1000 if args.quick else 20_000),
        rate=args.rate,
        latency_seconds=args.latency_seconds or (2.0 if args.quick else 5.0),
        cpu_n=args.cpu_tasks or (100 if args.quick else 400),
    )
    output = args.output or ("quick" if args.quick else "latest")
    systems = select_systems(args.only)
    if not Path(args.redis_server).exists():
        hint = "make redis-server (scripts/ensure-redis-server.sh)"
        raise SystemExit(f"redis-server not found at {args.redis_server}; try `{hint}`")

    # SIGTERM/SIGHUP behave like Ctrl-C so the finally-block below always cleans up.
    def _interrupt(signum: int, _frame: object) -> None:
        raise KeyboardInterrupt(f"signal {signum}")

    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, _interrupt)

    LOGS_DIR.mkdir(parents=True, exist_ok=True)
    for old in LOGS_DIR.glob("*-worker*.log"):
        old.unlink()
    peers = [s.key for s in systems if not s.is_conveyor]
    log(f"Preparing virtualenvs in {VENVS_DIR.relative_to(REPO_ROOT)} ...")
    install_failures = ensure_venvs(peers, args.reinstall)
    compile_conveyor()

    machine = machine_info(args.redis_server)
    server = RedisServer(args.redis_server)
    tmpdir = Path(tempfile.mkdtemp(prefix="conveyor-bench-"))
    atexit.register(server.cleanup)
    atexit.register(PROCESSES.stop_all)
    results: list[Result] = []
    ceiling: float | None = None
    try:
        server.start()
        log(f"redis-server on port {server.port}")
        bench = Bench(server, params, tmpdir)
        for system in systems:
            if system.key in install_failures:
                reason = install_failures[system.key]
                results.append(Result(system.name, system.broker, False, status="failed", reason=reason))
                continue
            if system.is_conveyor and not system.python.exists():
                reason = f"{system.python.relative_to(REPO_ROOT)} missing (run `make venv`)"
                results.append(
                    Result(system.name, system.broker, True, status="not available", reason=reason)
                )
                continue
            results.append(bench.run_system(system))
        if any(r.status == "ok" for r in results):
            log(f"The task body alone: two processes calling INCR for {CEILING_SECONDS:g} s ...")
            try:
                ceiling = incr_in_processes(server.url, 2, CEILING_SECONDS)
                log(f"  {fmt_rate(ceiling)} INCR/s")
            except Exception as exc:  # the systems' figures are still reported, without it
                log(f"  failed: {_one_line(str(exc) or type(exc).__name__)}")
    finally:
        PROCESSES.stop_all()
        server.cleanup()
        shutil.rmtree(tmpdir, ignore_errors=True)

    meta: dict[str, Any] = {
        "generated": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "command": command_line(argv),
        "machine": machine,
        "params": params,
        "requirements": {k: PEER_REQUIREMENTS[k] for k in peers},
        "ceiling_incr_per_s": ceiling,
    }
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    md_path, json_path = RESULTS_DIR / f"{output}.md", RESULTS_DIR / f"{output}.json"
    md_path.write_text(render_markdown(results, meta) + "\n")
    payload = {**meta, "params": asdict(params), "results": [asdict(r) for r in results]}
    json_path.write_text(json.dumps(payload, indent=2) + "\n")
    print_summary(results)
    log(f"\nWrote {md_path.relative_to(REPO_ROOT)} and {json_path.relative_to(REPO_ROOT)}")
    return 0 if any(r.status == "ok" for r in results) else 1


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt as exc:  # cleanup already ran in main's finally-block
        print(f"\ninterrupted ({exc or 'Ctrl-C'}); workers and redis-server stopped", file=sys.stderr)
        sys.exit(130)
