"""The audit's subjects lead to what each entry is about: a person, a conversation, a follow-up, a staff user,
a register run; a subject with no page of its own (an export, an import of many people) stays plain text."""

from sqlmodel import Session, col, select

from ivr.records.audit import record_audit
from ivr.standins.demo import synthetic_nhs_number
from models import RegisterRun
from tests.builders import create_conversation, create_follow_up, create_person, create_staff_user


def _subject_cells(page) -> dict[str, list[object]]:
    """The audit's subject cells, by the subject they name ("person 3"), newest entry first."""
    head = [cell.get_text(strip=True) for cell in page.select("thead th")]
    of = head.index("Of")
    cells: dict[str, list[object]] = {}
    for row in page.select("tbody tr"):
        cell = row.select("td")[of]
        for heading in cell.select(".nhsuk-table__heading"):  # the label narrow screens show
            heading.decompose()
        cells.setdefault(cell.get_text(" ", strip=True), []).append(cell)
    return cells


def _hrefs(cells: list[object]) -> set[str]:
    return {link["href"] for cell in cells for link in cell.find_all("a")}  # type: ignore[attr-defined]


def _run_register(app, runner, tmp_path) -> RegisterRun:
    data_set = tmp_path / "extract.csv"
    data_set.write_text(f"nhs_number\n{synthetic_nhs_number(7101)}\n")
    result = runner.invoke(args=["register", "apply", str(data_set), "--out", str(tmp_path / "kept.csv")])
    assert result.exit_code == 0, result.output
    with Session(app.extensions["database"].engine) as session:
        return session.exec(select(RegisterRun).order_by(col(RegisterRun.id).desc())).first()


def test_each_subject_with_a_page_is_a_link_to_it(app, runner, client_request, tmp_path):
    with app.extensions["database"].transaction() as session:
        person = create_person(session, nhs_number="9990000107", mobile="+447700900456")
    call = create_conversation(app)
    follow_up = create_follow_up(app, phone="+447700900456")
    colleague = create_staff_user(app, role="viewer")
    run = _run_register(app, runner, tmp_path)
    admin = client_request.sign_in("admin")
    # What an admin does in the console leaves the entries; a register run's entry is the CLI's own.
    client_request.get("staff.conversation", conversation_id=call.id)
    client_request.get("staff.person", person_id=person.id)
    client_request.post("staff.add_follow_up_note", {"note": "Rang back."}, follow_up_id=follow_up.id)
    client_request.post("staff.change_staff_role", {"role": "manager"}, staff_user_id=colleague.id)
    with app.extensions["database"].transaction() as session:
        record_audit(session, admin.id, "applied_register", "register_run", run.id, "1 row read")

    page = client_request.get("staff.audit")
    cells = _subject_cells(page)
    expected = {
        f"conversation {call.id}": f"/staff/conversations/{call.id}",
        f"person {person.id}": f"/staff/people/{person.id}",
        f"follow up {follow_up.id}": f"/staff/follow-ups/{follow_up.id}",
        f"staff user {colleague.id}": f"/staff/staff-users/{colleague.id}",
        f"staff user {admin.id}": f"/staff/staff-users/{admin.id}",  # signing in
        f"register run {run.id}": f"/staff/register-runs#register-run-{run.id}",
    }
    for subject, href in expected.items():
        assert _hrefs(cells[subject]) == {href}, subject
    # Each link leads to a page about that subject.
    expected = {subject.split(" ")[0]: href for subject, href in expected.items()}
    # Each link leads to a page about that subject.
    assert "NHS number *** *** *107" in client_request.get(expected["person"]).text_of("main")
    assert client_request.get(expected["conversation"]).h1_text.startswith("Call")
    assert "Rang back." in client_request.get(expected["follow"]).text_of("main")
    assert colleague.email in client_request.get(f"/staff/staff-users/{colleague.id}").text_of("main")
    runs = client_request.get(expected["register"].split("#")[0])
    anchored = runs.find(id=f"register-run-{run.id}")
    assert anchored is not None and anchored.find_parent("tr") in runs.select("tbody tr")
    html = page.response.get_data(as_text=True)
    for secret in ("9990000107", "999 000 0107", "+447700900456", "07700 900456"):
        assert secret not in html


def test_a_subject_without_a_page_of_its_own_is_plain_text(app, client_request):
    with app.extensions["database"].transaction() as session:
        record_audit(session, None, "exported_register_file", "register_export", "42", "to register.csv")
        record_audit(session, None, "imported_people", "person", "", "3 added")
        record_audit(session, None, "exported_register", "register", "")
        record_audit(session, None, "applied_retention", "retention")
        record_audit(session, None, "viewed_person", "person", "99999999999999")  # no such row: never an id
    client_request.sign_in("admin")
    cells = _subject_cells(client_request.get("staff.audit"))
    for subject in ("register export 42", "person", "register", "retention", "person 99999999999999"):
        assert _hrefs(cells[subject]) == set(), subject
