"""The scenario registry and the loop that runs them (``chaos/run.py`` is the entry point)."""

from __future__ import annotations

import argparse
import platform
import shutil
import signal
import subprocess
import sys
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .context import Ctx, scenario_context
from .ledger import Figures
from .procs import ROOT, kill_all
from .report import code_under_test, details, table, write
from .scenarios import api, exits, kills, outages, poison, suicide

BOTH = ("redis", "sqlite")


@dataclass(frozen=True)
class Scenario:
    name: str
    run: Callable[[Ctx, Figures], None]
    brokers: tuple[str, ...] = BOTH


SCENARIOS = [
    # 1. poison messages
    Scenario("poison-unprintable", poison.poison_unprintable),
    Scenario("poison-deep-json", poison.poison_deep_json),
    Scenario("poison-expires", poison.poison_expires),
    # 6. a broker id that is not UTF-8
    Scenario("bad-utf8-id", poison.bad_utf8_id),
    # 2. tasks ending the interpreter; a supervisor child exiting 0
    Scenario("sys-exit", exits.sys_exit_alone),
    Scenario("sys-exit-busy", exits.sys_exit_busy),
    Scenario("keyboard-interrupt", exits.keyboard_interrupt_alone),
    Scenario("keyboard-interrupt-busy", exits.keyboard_interrupt_busy),
    Scenario("supervisor-exit-0", exits.supervisor_exit_zero),
    # 3. a task killing its worker, among innocents
    Scenario("suicide-batch", suicide.suicide_batch),
    # 7. faults reaching the caller
    Scenario("forged-result", api.forged_result),
    Scenario("sqlite-disk-full", api.sqlite_disk_full, ("sqlite",)),
    # 4, 5 and restarts: broker outages under load
    Scenario("redis-aof-cut", outages.redis_aof_cut, ("redis",)),
    Scenario("redis-pause-10s", outages.redis_pause_10s, ("redis",)),
    Scenario("sqlite-stall-10s", outages.sqlite_stall_10s, ("sqlite",)),
    Scenario("redis-restart-2s", outages.redis_restart_2s, ("redis",)),
    Scenario("redis-restart-10s", outages.redis_restart_10s, ("redis",)),
    # worker SIGKILLs from outside
    Scenario("sigkill-storm", kills.sigkill_storm),
    Scenario("redelivery", kills.redelivery),
]


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="chaos/run.py", description="Conveyor's fault-injection suite.")
    parser.add_argument("--broker", choices=["redis", "sqlite", "all"], default="all")
    parser.add_argument(
        "--only",
        action="append",
        default=[],
        metavar="SCENARIO",
        help="run only scenarios whose name starts with this (repeatable, or comma-separated)",
    )
    parser.add_argument("--quick", action="store_true", help="shorter windows, fewer tasks and samples")
    parser.add_argument("--keep", action="store_true", help="keep each scenario's temp dir (logs, ledger)")
    parser.add_argument("--list", action="store_true", help="list the scenarios and exit")
    return parser.parse_args(argv)


def selected(args: argparse.Namespace) -> list[tuple[Scenario, str]]:
    wanted = [w for item in args.only for w in item.split(",") if w]
    brokers = BOTH if args.broker == "all" else (args.broker,)
    out = []
    for scenario in SCENARIOS:
        if wanted and not any(scenario.name.startswith(w) for w in wanted):
            continue
        out += [(scenario, b) for b in brokers if b in scenario.brokers]
    return out


def _on_sigterm(signum: int, _frame: Any) -> None:
    raise KeyboardInterrupt(f"signal {signum}")  # unwinds through every cleanup below


def _redis_version() -> str:
    binary = shutil.which("redis-server")
    if binary is None:
        return "none"
    out = subprocess.run([binary, "--version"], capture_output=True, text=True, check=False).stdout
    return out.split()[2] if len(out.split()) > 2 else out.strip()


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    plan = selected(args)
    if args.list or not plan:
        for scenario in SCENARIOS:
            print(f"{scenario.name:26} {','.join(scenario.brokers)}")
        return 0 if args.list else 2
    signal.signal(signal.SIGTERM, _on_sigterm)
    rows: list[Figures] = []
    started = time.monotonic()
    interrupted = False
    try:
        for scenario, broker in plan:
            fig = Figures(scenario.name, broker)
            t0 = time.monotonic()
            try:
                with scenario_context(scenario.name, broker, args.quick, args.keep) as ctx:
                    scenario.run(ctx, fig)
            except Exception as exc:  # a scenario that crashes is reported, the rest still run
                where = traceback.extract_tb(exc.__traceback__)[-1]
                fig.error = f"{type(exc).__name__}: {exc} (at {Path(where.filename).name}:{where.lineno})"
            fig.seconds = time.monotonic() - t0
            rows.append(fig)
            print(
                f"[{time.monotonic() - started:5.0f} s] {fig.verdict:5} {scenario.name} [{broker}]",
                flush=True,
            )
    except KeyboardInterrupt:
        interrupted = True
        print("interrupted: cleaning up", file=sys.stderr)
    finally:
        kill_all()
    meta: dict[str, object] = {
        "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
        "command": "python chaos/run.py " + " ".join(argv if argv is not None else sys.argv[1:]),
        "code": code_under_test(ROOT),
        "python": platform.python_version(),
        "redis-server": _redis_version(),
        "total seconds": round(time.monotonic() - started),
        "interrupted": interrupted,
    }
    write(ROOT / "chaos" / "results", rows, meta)
    print()
    print(table(rows))
    print()
    print("\n".join(details(rows)))
    print(f"\nwritten: chaos/results/latest.md, latest.json ({meta['total seconds']} s)")
    if interrupted:
        return 130
    return 1 if any(r.verdict != "PASS" for r in rows) else 0
