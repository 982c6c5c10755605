"""Run Conveyor's fault-injection suite: ``python chaos/run.py [--broker redis|sqlite|all]
[--only SCENARIO] [--quick] [--keep] [--list]`` (or ``make chaos CHAOS_ARGS=...``).

Prints a table (scenario, broker, runs, tasks, lost, extra duplicates, stuck, poison
deliveries, innocents dead-lettered, verdict), writes chaos/results/latest.md and latest.json,
and exits non-zero when any count that must be zero is not. See chaos/README.md.
"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def main() -> int:
    # Run as a script, Python puts chaos/ on sys.path, not the repository root; the workers
    # (python -m conveyor -A chaos.tasks, started in ROOT) import the same package.
    here = str(Path(__file__).resolve().parent)
    sys.path[:] = [p for p in sys.path if p != here]  # chaos' modules are imported as chaos.*
    sys.path.insert(0, str(ROOT))
    from chaos.suite import main as suite_main

    return suite_main(sys.argv[1:])


if __name__ == "__main__":
    sys.exit(main())
