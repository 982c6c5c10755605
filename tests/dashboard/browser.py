"""Playwright driving Debian's chromium (never a browser Playwright downloads itself)."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator

import pytest

CHROMIUM = os.environ.get("CONVEYOR_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
HAVE_CHROMIUM = os.path.exists(CHROMIUM)

needs_chromium = pytest.mark.skipif(
    not HAVE_CHROMIUM,
    reason=f"browser tests need Debian's chromium at {CHROMIUM} ('make test' installs it when run as root; "
    "else: sudo apt-get install chromium)",
)


def launch() -> Iterator[object]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        # --no-sandbox: the tests may run as root (CI), where chromium's sandbox refuses to start.
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        try:
            yield browser
        finally:
            browser.close()
