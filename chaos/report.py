"""The report: a table on stdout, and chaos/results/latest.md + latest.json."""

from __future__ import annotations

import subprocess
from pathlib import Path

from .ledger import Figures, dump_json

COLUMNS = [
    "scenario",
    "broker",
    "runs",
    "tasks",
    "lost",
    "extra dup",
    "stuck",
    "poison",
    "innocent DL",
    "verdict",
]


def _cells(row: Figures) -> list[str]:
    poison = "-" if row.poison is None else str(row.poison)
    counts = [row.runs, row.tasks, row.lost, row.extra, row.stuck]
    return [row.scenario, row.broker, *map(str, counts), poison, str(row.innocents_dead), row.verdict]


def table(rows: list[Figures]) -> str:
    cells = [COLUMNS] + [_cells(r) for r in rows]
    widths = [max(len(c[i]) for c in cells) for i in range(len(COLUMNS))]
    lines = [
        "  ".join(
            c.ljust(w) if i < 2 else c.rjust(w) for i, (c, w) in enumerate(zip(row, widths, strict=True))
        )
        for row in cells
    ]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def details(rows: list[Figures]) -> list[str]:
    """One bullet per row that has something to say: failed checks first, then notes."""
    out = []
    for r in rows:
        said = [f"ERROR {r.error}"] if r.error else []
        said += [f"FAILED: {c}" for c in r.failed_checks] + r.notes
        if said:
            out.append(f"- {r.scenario} [{r.broker}] ({r.seconds:.0f} s): " + "; ".join(said))
    return out


def code_under_test(root: Path) -> str:
    """Which Conveyor ran: the commit, and whether src/ had uncommitted changes."""
    import conveyor

    def git(*args: str) -> str:
        done = subprocess.run(["git", *args], cwd=root, capture_output=True, text=True, check=False)
        return done.stdout.strip()

    where = Path(conveyor.__file__).resolve().parent
    if where != root / "src" / "conveyor":  # PYTHONPATH points at another copy
        return f"conveyor from {where} (not this repository's src/)"
    head = git("rev-parse", "--short", "HEAD") or "unknown"
    dirty = len(git("status", "--porcelain", "src").splitlines())
    return f"conveyor from {where} (repo HEAD {head}, {dirty} uncommitted change(s) under src/)"


def write(results_dir: Path, rows: list[Figures], meta: dict[str, object]) -> None:
    results_dir.mkdir(parents=True, exist_ok=True)
    md = ["# Conveyor chaos suite: latest run", ""]
    md += [f"- {k}: {v}" for k, v in meta.items()]
    md += ["", "| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    md += ["| " + " | ".join(_cells(r)) + " |" for r in rows]
    md += ["", "## Failed checks and notes", "", *details(rows), ""]
    md += ["Column meanings and counting rules: chaos/README.md.", ""]
    (results_dir / "latest.md").write_text("\n".join(md))
    dump_json(results_dir / "latest.json", rows, meta)
