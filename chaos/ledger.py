"""Reading the run ledger (runs.log) and the counting rules. See README.md, "How counting works".

A scenario enqueues *innocent* tasks (``chaos.tasks.work``) and perhaps *poison* ones, injects
its fault, waits until every innocent task is final, then calls ``count_innocents``:

- tasks:      innocent tasks the producer saw enqueued (acknowledged by the broker)
- runs:       their ``start`` lines in the ledger (every delivery that reached the task body)
- lost:       never finished (no ``done`` line) and the broker knows nothing of them (UNKNOWN) —
              except enqueues the broker is *allowed* to lose (acknowledged inside a window of
              writes the scenario deliberately destroyed, see ``Allowances.enqueue_loss_after``)
- extra:      reruns beyond at-least-once. Runs of one task are taken in start order; run k+1 is
              allowed only if run k's worker was SIGKILLed after run k started and before it
              could settle (no ``done``, or ``done`` less than ``slack`` before the kill), or the
              broker lost writes after run k finished (``done`` later than the cut minus slack).
              Every other rerun is extra.
- stuck:      not in a final state (SUCCESS, FAILURE, REVOKED) when the deadline passed
- innocents dead-lettered: innocent tasks found in the dead-letter set
"""

from __future__ import annotations

import json
import statistics
from collections import Counter
from dataclasses import asdict, dataclass, field
from itertools import pairwise
from pathlib import Path

FINAL = frozenset({"SUCCESS", "FAILURE", "REVOKED"})


@dataclass(slots=True)
class Run:
    token: str
    pid: int
    delivery: int
    start: float
    done: float | None = None


def read_runs(path: Path) -> dict[str, list[Run]]:
    """Runs per task id, each ``start`` paired with the ``done`` of the same process and delivery."""
    runs: dict[str, list[Run]] = {}
    if not path.exists():
        return runs
    for line in path.read_text(errors="replace").splitlines():
        parts = line.split()
        if len(parts) != 5:
            continue  # a torn line cannot happen with O_APPEND; skip anything odd rather than fail
        event, token, pid, delivery, when = parts
        if event == "start":
            runs.setdefault(token, []).append(Run(token, int(pid), int(delivery), float(when)))
        elif event == "done":
            for run in runs.get(token, []):
                if run.pid == int(pid) and run.delivery == int(delivery) and run.done is None:
                    run.done = float(when)
                    break
    for token_runs in runs.values():
        token_runs.sort(key=lambda r: r.start)
    return runs


@dataclass(slots=True)
class Allowances:
    """What makes a rerun or a loss legitimate in one scenario."""

    kills: dict[int, float] = field(default_factory=dict)  # pid -> epoch time of its SIGKILL
    ack_loss_after: float | None = None  # the broker lost every write after this time
    slack: float = 1.0  # seconds between a run's ``done`` and its acknowledgement reaching the broker

    def justifies_rerun(self, prev: Run) -> bool:
        killed = self.kills.get(prev.pid)
        if (
            killed is not None
            and killed >= prev.start
            and (prev.done is None or prev.done >= killed - self.slack)
        ):
            return True
        cut = self.ack_loss_after
        return cut is not None and (prev.done is None or prev.done >= cut - self.slack)


@dataclass(slots=True)
class Figures:
    """One row of the report."""

    scenario: str
    broker: str
    tasks: int = 0
    runs: int = 0
    lost: int = 0
    extra: int = 0
    stuck: int = 0
    poison: int | None = None  # deliveries of the poison message(s); None: no poison here
    innocents_dead: int = 0
    failed_checks: list[str] = field(default_factory=list)  # expectations that did not hold
    notes: list[str] = field(default_factory=list)
    seconds: float = 0.0
    data: dict[str, object] = field(default_factory=dict)  # scenario-specific figures
    error: str | None = None  # the scenario itself crashed

    def check(self, ok: bool, what: str) -> None:
        """Record an expectation; a false one fails the scenario."""
        if not ok:
            self.failed_checks.append(what)

    @property
    def verdict(self) -> str:
        if self.error:
            return "ERROR"
        bad = self.lost or self.extra or self.stuck or self.innocents_dead or self.failed_checks
        return "FAIL" if bad else "PASS"

    def as_dict(self) -> dict[str, object]:
        return {**asdict(self), "verdict": self.verdict}


def count_innocents(
    fig: Figures,
    enqueued: dict[str, float],
    states: dict[str, str],
    runs: dict[str, list[Run]],
    dead_ids: set[str],
    allow: Allowances | None = None,
    enqueue_loss_after: float | None = None,
) -> None:
    """Fill the counts of ``fig`` for the innocent tasks ``enqueued`` (id -> enqueue ack time)."""
    allow = allow or Allowances()
    fig.tasks += len(enqueued)
    allowed_losses = same_delivery = no_result = 0
    for task_id, acked_at in enqueued.items():
        task_runs = runs.get(task_id, [])
        fig.runs += len(task_runs)
        fig.extra += sum(1 for prev, _ in pairwise(task_runs) if not allow.justifies_rerun(prev))
        numbers = Counter(r.delivery for r in task_runs)
        same_delivery += sum(n - 1 for n in numbers.values() if n > 1)
        state = states.get(task_id, "UNKNOWN")
        finished = any(r.done is not None for r in task_runs)
        if task_id in dead_ids:
            fig.innocents_dead += 1
        elif state in FINAL:
            pass
        elif state == "UNKNOWN" and finished:
            no_result += 1  # it ran, but the broker lost the job and its result (a crash)
        elif state == "UNKNOWN":  # never finished, and the broker does not know it
            cut = enqueue_loss_after
            if cut is not None and acked_at >= cut - allow.slack:
                allowed_losses += 1
            else:
                fig.lost += 1
        else:
            fig.stuck += 1
    if allowed_losses:
        fig.notes.append(
            f"{allowed_losses} enqueue(s) acknowledged inside the cut window were lost (allowed)"
        )
    if no_result:
        fig.notes.append(f"{no_result} task(s) ran but the broker has no record of them (result lost)")
    if same_delivery:
        fig.notes.append(f"{same_delivery} rerun(s) carried a delivery number already handed out")


def spread(samples: list[float]) -> str:
    if not samples:
        return "no samples"
    return (
        f"median {statistics.median(samples):.2f} s, min {min(samples):.2f} s, "
        f"max {max(samples):.2f} s (n={len(samples)})"
    )


def dump_json(path: Path, rows: list[Figures], meta: dict[str, object]) -> None:
    path.write_text(json.dumps({"meta": meta, "rows": [r.as_dict() for r in rows]}, indent=2) + "\n")
