"""The Register runs page in a real browser, on a desktop and on a phone: the national reply each run used, the
national checks, and a request file's download (and its refusal once the file has moved), each checked by axe."""

from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

from flask import Flask
from flask.testing import FlaskCliRunner
from playwright.sync_api import Page, expect

from tests.browser.console import assert_accessible, sign_in
from tests.builders import create_staff_user
from tests.test_staff_register_runs import apply, national_check, nhs, opt_out

DESKTOP = {"width": 1280, "height": 800}
PHONE = {"width": 390, "height": 844}


def fits_the_screen(page: Page) -> bool:
    """Nothing wider than the window, so nothing needs scrolling sideways."""
    return bool(page.evaluate("document.documentElement.scrollWidth <= window.innerWidth"))


def test_register_runs_with_a_national_reply_are_accessible_and_fit_a_phone(
    app: Flask, runner: FlaskCliRunner, tmp_path: Path, open_page: Callable[..., Page]
):
    opt_out(app, nhs(3))
    request, request_file, reply_file = national_check(
        app, tmp_path, [nhs(1), nhs(2), nhs(3)], [nhs(1), nhs(3)], received_ago=timedelta(hours=3)
    )
    assert reply_file is not None
    national_check(app, tmp_path, [nhs(4)], None, name="X26OPTOUT1-031226-0002.dat")  # still waiting
    manager = create_staff_user(app, role="manager")
    apply(runner, tmp_path, [nhs(1), nhs(4)], manager.email)  # our register only
    apply(runner, tmp_path, [nhs(1), nhs(2), nhs(3)], manager.email, "--national-reply", str(reply_file))

    page = open_page()
    sign_in(page, manager)
    for size in (DESKTOP, PHONE):
        page.set_viewport_size(size)
        page.goto("/staff/register-runs")
        runs = page.get_by_role("table", name="Register runs")
        expect(runs.get_by_role("row")).to_have_count(3)  # the heading row and two runs
        expect(runs.get_by_role("cell", name="3 hours old when used")).to_be_visible()
        expect(runs.get_by_role("cell", name="Our register only")).to_be_visible()
        expect(page.get_by_role("table", name="National checks").get_by_text("waiting for a reply")).to_be_visible()
        assert fits_the_screen(page), f"the page scrolls sideways at {size['width']} px"
        assert_accessible(page)

    download_button = runs.get_by_role("button", name=f"Download {request.file_name}")
    with page.expect_download() as download:
        download_button.click()
    assert download.value.suggested_filename == request.file_name
    assert Path(download.value.path()).read_bytes() == request_file.read_bytes()

    request_file.rename(tmp_path / "moved.dat")
    with page.expect_navigation():  # to the page loaded, stylesheet and all, so its width is the one people see
        download_button.click()
    expect(page.get_by_role("alert")).to_contain_text(f"{request.file_name} is no longer at")
    expect(page.get_by_role("alert")).to_contain_text("flask register national request")
    assert fits_the_screen(page)
    assert_accessible(page)
