"""Screenshots of the dashboard for docs/dashboard.md, taken from a running demo.

Starts ``examples/demo.py --linger`` (a worker with the scheduler, the dashboard, example
tasks), lets it run for a while, pauses a queue from the Queues page (so the action log has an
entry), then photographs each page with Playwright driving Debian's chromium, into docs/img/.

    .venv/bin/python scripts/dashboard-screenshots.py [--seconds 25] [--port 5599]
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
from playwright.sync_api import Page, sync_playwright

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "docs" / "img"
PAGES = [
    ("overview", "/"),
    ("queues", "/queues"),
    ("workers", "/workers"),
    ("tasks", "/tasks"),
    ("dead-letters", "/dead"),
    ("periodic", "/periodic"),
    ("action-log", "/actions"),
]


def wait_serving(url: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise SystemExit(f"the demo's dashboard did not answer at {url}")


def shoot(page: Page, name: str) -> None:
    path = OUT / f"dashboard-{name}.png"
    page.screenshot(path=str(path), full_page=False)
    print(f"wrote {path.relative_to(ROOT)}")


def _dead_letters(port: int) -> None:
    """A few dead letters for the Dead letters page: tasks of a name the demo's worker does not
    know (as after a deploy that removed a task while some were queued)."""
    sys.path.insert(0, str(ROOT))
    from examples.demo_tasks import app

    app.conf.broker_url = f"sqlite:///{ROOT / 'demo.db'}"
    for order in (4711, 4712, 4713):
        app.send_task("examples.demo_tasks.sync_invoice", [order], {"retry": False})
    app.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=25.0, help="how long the demo runs before the shots")
    parser.add_argument("--port", type=int, default=5599)
    options = parser.parse_args()
    chromium = os.environ.get("CONVEYOR_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
    OUT.mkdir(parents=True, exist_ok=True)
    args = ["--seconds", str(options.seconds), "--linger", "--dashboard-port", str(options.port)]
    demo = subprocess.Popen(
        [sys.executable, "examples/demo.py", *args],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{options.port}"
    try:
        wait_serving(url + "/")
        _dead_letters(options.port)
        time.sleep(max(1.0, options.seconds - 5))  # while tasks still arrive
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=chromium, args=["--no-sandbox"])
            page = browser.new_page(base_url=url, viewport={"width": 1280, "height": 860})
            page.goto("/queues")
            page.locator("tr[data-queue='polling'] button", has_text="Pause").click()
            page.wait_for_url("**/queues?done=*")
            for name, path in PAGES:
                page.goto(path)
                shoot(page, name)
            flaky = "examples.demo_tasks.send_notification"  # retried: its page shows attempts
            listings = [f"/tasks?state=failed&name={flaky}", f"/tasks?state=retrying&name={flaky}", "/tasks"]
            for listing in listings:
                page.goto(listing)
                links = page.locator("#live table tbody tr a")
                if links.count():
                    links.first.click()
                    page.wait_for_load_state()
                    shoot(page, "task")
                    break
            browser.close()
    finally:
        demo.send_signal(signal.SIGINT)
        demo.wait(timeout=60)


if __name__ == "__main__":
    main()
