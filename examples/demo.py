"""``make demo``: a worker, the scheduler and the dashboard on the embedded SQLite broker, with example tasks.

Starts ``conveyor -A examples.demo_tasks worker --beat`` as a subprocess (a worker with the
periodic scheduler embedded: a 2-second poll that expires, a cron string, a weekly crontab),
enqueues a mix of tasks (sync, async, flaky with retries, one that hits its soft time limit),
prints each result as it arrives, and at the end what the scheduler sent. Runs for
``--seconds`` (default 20); Ctrl-C stops it early.

It also starts the web dashboard (``conveyor dashboard``, on 127.0.0.1 only, no login) and
prints its address: open it while the demo runs. ``--linger`` keeps the worker and the
dashboard up after the demo's tasks, until Ctrl-C.
"""

from __future__ import annotations

import argparse
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from conveyor import states  # noqa: E402
from conveyor.beat.display import format_next_run  # noqa: E402
from examples.demo_tasks import app, build_report, poll_aircraft, refresh_city, send_notification  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--dashboard-port", type=int, default=5555)
    parser.add_argument("--linger", action="store_true", help="keep worker and dashboard up until Ctrl-C")
    options = parser.parse_args()
    db = ROOT / "demo.db"
    for suffix in ("", "-wal", "-shm"):
        Path(f"{db}{suffix}").unlink(missing_ok=True)
    app.conf.broker_url = f"sqlite:///{db}"
    worker = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "conveyor",
            "-A",
            "examples.demo_tasks",
            "-b",
            app.conf.broker_url,
            "worker",
            "--beat",
            "-Q",
            "default,polling",
            "-c",
            "4",
            "-l",
            "info",
        ],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    command = ["-A", "examples.demo_tasks", "-b", app.conf.broker_url, "dashboard", "--port"]
    dashboard = subprocess.Popen(
        [sys.executable, "-m", "conveyor", *command, str(options.dashboard_port)],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        stdout=subprocess.DEVNULL,
    )
    print(f"demo: dashboard at http://127.0.0.1:{options.dashboard_port}/ (pid {dashboard.pid})", flush=True)
    print(
        f"demo: worker + scheduler pid {worker.pid} on {app.conf.broker_url}; "
        f"enqueueing tasks for {options.seconds:.0f}s"
    )
    pending = []
    deadline = time.monotonic() + options.seconds
    try:
        pending.append(("build_report(10)", build_report.delay(10)))
        while time.monotonic() < deadline:
            n = random.randint(1, 500)
            pending.append((f"refresh_city({n})", refresh_city.delay(n)))
            pending.append(("poll_aircraft('EU')", poll_aircraft.delay("EU")))
            pending.append((f"send_notification({n})", send_notification.delay(n)))
            time.sleep(1.0)
            still = []
            for label, result in pending:
                state = result.state
                if state in states.READY_STATES:
                    value = result.get(propagate=False)
                    print(f"demo: {label:<28} {state:<8} {value}")
                else:
                    still.append((label, result))
            pending = still
        print(f"demo: done; {len(pending)} task(s) still in flight. Queue stats: {app.broker.queue_stats()}")
        now = time.time()
        for entry in app.schedules.entries():
            print(
                f"demo: periodic {entry.name:<16} {entry.schedule.describe():<32} "
                f"sent {entry.total_runs:>2}x, next {format_next_run(entry.next_run, now)}"
            )
        if options.linger:
            print(f"demo: worker and dashboard stay up on port {options.dashboard_port} (Ctrl-C stops)")
            worker.wait()
    except KeyboardInterrupt:
        pass
    finally:
        for process in (dashboard, worker):
            process.send_signal(signal.SIGTERM)
        worker.wait(timeout=40)
        dashboard.wait(timeout=10)


if __name__ == "__main__":
    main()
