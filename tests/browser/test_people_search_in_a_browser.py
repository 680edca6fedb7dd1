"""Finding a person by the phone number staff are asked to ring back, in a real browser, on a desktop and on a
phone: the search box takes the number as people write it, the results and the person show it masked, the
address never holds it, and every step passes axe-core's WCAG 2.1 A and AA checks."""

import re

import pytest
from flask import Flask
from playwright.sync_api import Page, expect

from ivr.console.people_directory import NOT_A_UK_NUMBER
from tests.browser.console import assert_accessible, sign_in
from tests.builders import create_person, create_staff_user

SEARCH_BOX = "NHS number, name or phone number"
# The mobile's digits in the forms an address could carry them: whole, nationally, or its last six.
MOBILE_DIGITS = re.compile(r"447700900456|07700900456|7700900456|900456")


@pytest.mark.parametrize(("width", "height"), [(1280, 800), (390, 844)])
def test_a_person_is_found_by_phone_number_and_opened_with_the_number_masked(
    app: Flask, page: Page, width: int, height: int
):
    ada = create_person(app, given_name="Ada", family_name="Lovelace", mobile="+447700900456")
    create_person(app, given_name="Alan", family_name="Turing", mobile="+447700900789")
    page.set_viewport_size({"width": width, "height": height})
    sign_in(page, create_staff_user(app, role="viewer"))
    page.goto("/staff/people")
    assert_accessible(page)

    page.get_by_label(SEARCH_BOX).fill("(07700) 900-456")
    page.get_by_role("button", name="Search").click()
    results = page.get_by_role("table")
    expect(results).to_contain_text("1 person found")
    expect(results.locator("caption")).to_contain_text("phone number")
    expect(results).to_contain_text("number ending 456")
    expect(results).not_to_contain_text("Turing")
    assert "found=" in page.url and not MOBILE_DIGITS.search(page.url)
    expect(page.locator("body")).not_to_contain_text("900456")
    assert_accessible(page)

    page.get_by_role("link", name="Ada Lovelace").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Ada Lovelace")
    assert page.url.endswith(f"/staff/people/{ada.id}")
    expect(page.locator("dl")).to_contain_text("number ending 456")
    expect(page.locator("body")).not_to_contain_text("900456")
    assert_accessible(page)

    # Back shows the results again, from the signed link, without the number.
    page.go_back()
    expect(page.get_by_role("table")).to_contain_text("Ada Lovelace")
    assert not MOBILE_DIGITS.search(page.url)


@pytest.mark.parametrize(("width", "height"), [(1280, 800), (390, 844)])
def test_a_number_that_is_not_a_uk_phone_number_is_told_what_to_enter(app: Flask, page: Page, width: int, height: int):
    page.set_viewport_size({"width": width, "height": height})
    sign_in(page, create_staff_user(app, role="viewer"))
    page.goto("/staff/people")
    page.get_by_label(SEARCH_BOX).fill("+1 202 555 0100")
    page.get_by_role("button", name="Search").click()
    summary = page.locator(".nhsuk-error-summary")
    expect(summary).to_contain_text(NOT_A_UK_NUMBER)
    expect(summary).to_be_focused()
    expect(page.get_by_label(SEARCH_BOX)).to_have_value("+1 202 555 0100")  # to correct it
    assert "202" not in page.url
    assert_accessible(page)
