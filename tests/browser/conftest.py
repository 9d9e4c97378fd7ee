"""Browser fixtures: a page of Debian's chromium driven by Playwright (never `playwright install`,
which downloads a browser), and screenshots kept only when the test fails."""

from __future__ import annotations

import importlib.util
import os
import shutil
import tempfile
from pathlib import Path

import pytest

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]


def _missing() -> str | None:
    if importlib.util.find_spec("playwright") is None:
        return "Playwright for Python is not installed: pip install playwright (.ci/run does)"
    if not CHROMIUM.exists():
        return "no /usr/bin/chromium: apt-get install chromium (.ci/run does)"
    return None


@pytest.fixture
def browser_page():
    missing = _missing()
    if missing:  # CI installs both (.ci/run): there a missing one is a failure, never a skip
        (pytest.fail if os.environ.get("CI") else pytest.skip)(missing)
    from playwright import sync_api

    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            yield browser.new_page(viewport={"width": 1600, "height": 1000})
        finally:
            browser.close()


class Screens:
    """A screenshot per step; kept (and their folder printed) only when the test fails."""

    def __init__(self, page):
        self.page, self.folder, self.n = page, Path(tempfile.mkdtemp(prefix="mdg_ui_shots_")), 0

    def shot(self, what: str) -> None:
        self.n += 1
        self.page.screenshot(path=str(self.folder / f"{self.n:02d}-{what}.png"), full_page=True)


@pytest.fixture
def screens(browser_page, request):
    shots = Screens(browser_page)
    yield shots
    failed = getattr(request.node, "rep_call", None) is None or request.node.rep_call.failed
    if failed:
        try:
            shots.shot("at-failure")
        except Exception:  # noqa: BLE001 - the page may be gone; the earlier shots are kept
            pass
        print(f"\nbrowser test screenshots: {shots.folder}")
    else:
        shutil.rmtree(shots.folder, ignore_errors=True)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    if report.when == "call":
        item.rep_call = report
