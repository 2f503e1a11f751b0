"""End-to-end fixtures: the gateway served on loopback and Debian's Chromium driven by Playwright.

Playwright's own browser download is not used (it cannot be fetched here); the tests launch the
system Chromium. Without one they skip with the reason, and `make install` installs it when it can.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from typing import Any

import pytest
from flask import Flask

from simulators.server import serve_in_thread

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
# As this machine's notes advise: no sandbox as root, and no background traffic to the closed
# network.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    """One headless Chromium for the session."""
    if CHROMIUM is None:
        pytest.skip("no chromium on this machine (apt-get install chromium)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


@pytest.fixture
def live_gateway(app: Flask, clean_db: None) -> Iterator[str]:
    """The session's gateway app served on a free loopback port; yields its base URL."""
    handle = serve_in_thread(app)
    yield handle.url
    handle.stop()


@pytest.fixture
def page(browser: Any, live_gateway: str) -> Iterator[Any]:
    """A fresh browser context and page per test, pointed at the live gateway."""
    context = browser.new_context(base_url=live_gateway)
    context.set_default_timeout(10_000)
    page = context.new_page()
    yield page
    context.close()


#: The password of the operator the browser tests log in as.
PASSWORD = "a long operator passphrase"


def create_operator(app: Flask, username: str = "operator") -> None:
    """Create the operator the browser logs in as, through the ``gateway users create`` command."""
    from tests.conftest import run_cli

    result = run_cli(
        app, "users", "create", "--username", username, "--password-stdin", input=PASSWORD + "\n"
    )
    assert result.exit_code == 0, result.output


def collect_page_errors(page: Any) -> list[str]:
    """Collect the page's console errors, uncaught errors and CSP violations into a list."""
    problems: list[str] = []
    page.on(
        "console",
        lambda m: problems.append(f"{m.type}: {m.text}") if m.type == "error" else None,
    )
    page.on("pageerror", lambda error: problems.append(f"page error: {error}"))
    page.add_init_script(
        "document.addEventListener('securitypolicyviolation', e => console.error("
        "'CSP violation: ' + e.violatedDirective + ' ' + e.blockedURI));"
    )
    return problems
