"""Fixtures for the browser tests: the app served on 127.0.0.1 in a thread, Debian's chromium (one per
session, launched by Playwright with its background networking off), and a fresh browser context per test
that refuses, and reports, any request leaving the app, and every console error and uncaught exception."""

import os
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from flask import Flask
from playwright.sync_api import Browser, Page, Playwright, expect, sync_playwright
from werkzeug.serving import WSGIRequestHandler, make_server

from tests.browser.console import PageWatch

CHROMIUM = Path("/usr/bin/chromium")
# Nothing but the page under test: no updates, sync, field trials, QUIC probes or GPU process.
CHROMIUM_ARGS = [
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-gpu",
    "--disable-quic",
    "--disable-default-apps",
    "--disable-domain-reliability",
    "--metrics-recording-only",
    "--no-proxy-server",
]
TIMEOUT_MS = 10_000  # for actions and expectations alike: generous, for a CI machine that is busy
expect.set_options(timeout=TIMEOUT_MS)


@pytest.fixture(scope="session")
def playwright() -> Iterator[Playwright]:
    with sync_playwright() as playwright:
        yield playwright


@pytest.fixture(scope="session")
def chromium(playwright: Playwright) -> Iterator[Browser]:
    """Debian's chromium package, never a browser Playwright downloads. Missing on Debian, it is a failure,
    not a skip; only a machine that cannot have the package (not Debian) skips these tests."""
    if not CHROMIUM.is_file():
        if not Path("/etc/debian_version").is_file():
            pytest.skip(f"the browser tests need Debian's chromium package ({CHROMIUM}); this machine is not Debian")
        pytest.fail(
            f"{CHROMIUM} is missing: the browser tests need Debian's chromium package "
            "(`apt-get install chromium`, as .ci/run does)",
            pytrace=False,
        )
    root = hasattr(os, "geteuid") and os.geteuid() == 0
    browser = playwright.chromium.launch(
        executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS + (["--no-sandbox"] if root else [])
    )
    yield browser
    browser.close()


class QuietRequestHandler(WSGIRequestHandler):
    """Werkzeug's handler without a log line per request (a page and its assets are five); errors still log."""

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        pass


@pytest.fixture
def live_server(app: Flask) -> Iterator[str]:
    """The test's app, served over real HTTP on a free port; its base URL."""
    server = make_server("127.0.0.1", 0, app, threaded=True, request_handler=QuietRequestHandler)
    # A short poll, so that shutting down after each test takes a moment rather than half a second.
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), name="live-server", daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()
    thread.join(timeout=10)
    server.server_close()


@pytest.fixture
def watch(live_server: str) -> PageWatch:
    return PageWatch(live_server)


@pytest.fixture
def open_page(chromium: Browser, watch: PageWatch) -> Iterator[Callable[..., Page]]:
    """Opens a page in a context of its own (its own cookies, so its own sign-in); call it again for another
    member of staff. `bypass_csp=True` switches the page's CSP off, to show escaping holds without it."""
    contexts = []

    def open_(bypass_csp: bool = False) -> Page:
        context = chromium.new_context(base_url=watch.base_url, bypass_csp=bypass_csp, service_workers="block")
        context.set_default_timeout(TIMEOUT_MS)
        context.route(watch.is_outside, watch.refuse)
        contexts.append(context)
        page = context.new_page()
        page.on("console", watch.on_console)
        page.on("pageerror", watch.on_page_error)
        page.on("response", watch.on_response)
        return page

    yield open_
    for context in contexts:
        context.close()
    assert watch.outside_requests == [], f"requests left 127.0.0.1: {watch.outside_requests}"
    assert watch.failed_assets == [], f"assets that failed to load: {watch.failed_assets}"
    assert watch.console_errors == [], f"errors in the browser console: {watch.console_errors}"


@pytest.fixture
def page(open_page: Callable[..., Page]) -> Page:
    return open_page()
