"""Managers download conversations (masked, as filtered) and the opt-out register as CSV; each download is audited."""

import csv
import io

from sqlmodel import Session, select

from ivr.records.choices import record_choice
from ivr.standins.demo import synthetic_nhs_number
from models import AuditEntry, ChoiceStatus
from tests.builders import create_conversation, create_person


def _download(client_request, url: str) -> tuple[list[dict[str, str]], str]:
    response = client_request.client.post(url, data={"csrf_token": client_request.csrf_token()})
    assert response.status_code == 200, response.get_data(as_text=True)[:500]
    assert response.mimetype == "text/csv"
    assert response.headers["Content-Disposition"].startswith("attachment; filename=")
    text = response.get_data(as_text=True)
    return list(csv.DictReader(io.StringIO(text))), text


def _audit(app) -> list[tuple[str, str]]:
    with Session(app.extensions["database"].engine) as session:
        return [(entry.action, entry.detail) for entry in session.exec(select(AuditEntry).order_by(AuditEntry.id)).all()]


def test_a_manager_downloads_the_conversations_the_filters_select_with_numbers_masked(app, client_request):
    create_conversation(app, channel="voice", outcome="checked", caller_last_digits="0123")
    create_conversation(app, channel="sms", outcome="choice_recorded", caller_last_digits="0456")
    client_request.sign_in("manager")
    page = client_request.get("staff.conversations", channel="sms")
    form = page.select_one("form[action^='/staff/conversations/export']")
    assert form is not None and "channel=sms" in form["action"]

    rows, text = _download(client_request, form["action"])
    assert [(row["channel"], row["outcome"], row["caller_number_ending"]) for row in rows] == [
        ("sms", "choice_recorded", "0456")
    ]
    assert "+44" not in text
    assert ("exported_conversations", "filtered by channel sms") in _audit(app)


def test_a_manager_downloads_the_register_with_every_current_choice(app, client_request):
    with app.extensions["database"].transaction() as session:
        out = create_person(session, nhs_number=synthetic_nhs_number(9101))
        allowed = create_person(session, nhs_number=synthetic_nhs_number(9102))
        create_person(session, nhs_number=synthetic_nhs_number(9103))  # no choice: not on the register
        record_choice(session, out, ChoiceStatus.ALLOWED, "voice")
        record_choice(session, out, ChoiceStatus.OPTED_OUT, "sms")
        record_choice(session, allowed, ChoiceStatus.ALLOWED, "staff")
    client_request.sign_in("manager")
    page = client_request.get("staff.register_runs")
    assert page.select_one("form[action='/staff/register/export']") is not None

    rows, _ = _download(client_request, "/staff/register/export")
    assert sorted((row["nhs_number"], row["choice"]) for row in rows) == sorted(
        [(out.nhs_number, "opted_out"), (allowed.nhs_number, "allowed")]
    )
    assert all(row["since_uk"] for row in rows)
    assert ("exported_register", "") in _audit(app)


def test_viewers_are_offered_no_download_and_are_refused_one(app, client_request):
    create_conversation(app)
    client_request.sign_in("viewer")
    page = client_request.get("staff.conversations")
    assert page.select_one("form[action^='/staff/conversations/export']") is None
    client_request.post("staff.export_conversations", _expected_status=403)
    client_request.post("staff.export_register", _expected_status=403)
    assert [action for action, _ in _audit(app) if action.startswith("exported")] == []


def test_a_download_needs_its_csrf_token(client_request):
    client_request.sign_in("manager")
    client_request.post("staff.export_register", _expected_status=400, _with_token=False)
