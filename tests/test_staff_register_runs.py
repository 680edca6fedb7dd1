"""Managers can show when the register was applied to a data set, by whom, against which register and which national
reply (and how old it was then), and download a national check's request file as it was sent, audited."""

import hashlib
import re
from datetime import timedelta
from pathlib import Path

import pytest
from sqlmodel import Session, select

from ivr.operations.register.runs import age_in_words
from ivr.records.choices import record_choice
from ivr.standins.demo import synthetic_nhs_number
from models import AuditEntry, ChoiceStatus, NationalCheckReply, NationalCheckRequest, utcnow
from tests.builders import create_person
from tests.staff_helpers import check_page

NHS_NUMBER = re.compile(r"\d{10}")


def nhs(serial: int) -> str:
    return synthetic_nhs_number(7100 + serial)


def opt_out(app, number: str) -> None:
    with app.extensions["database"].transaction() as session:
        record_choice(session, create_person(session, nhs_number=number), ChoiceStatus.OPTED_OUT, "staff")


def national_check(
    app, folder: Path, requested: list[str], allowed: list[str] | None, *, received_ago: timedelta = timedelta(0),
    name: str = "X26OPTOUT1-031226-0001.dat", error: bool = False,
) -> tuple[NationalCheckRequest, Path, Path | None]:
    """A request sent and (unless `allowed` is None) its reply, as `send` and `receive` record them, without MESH."""
    request_file = folder / name
    request_file.write_bytes(b"".join(f"{number},\n".encode() for number in sorted(requested)))
    reply_file = None
    with app.extensions["database"].transaction() as session:
        request = NationalCheckRequest(
            file_name=name, path=str(request_file), numbers=len(requested), local_id=f"local-{name}",
            sha256=hashlib.sha256(request_file.read_bytes()).hexdigest(), created_at=utcnow(), sent_at=utcnow(),
        )
        session.add(request)
        session.flush()
        assert request.id is not None
        if allowed is not None or error:
            message_id = f"2026120311230112345{request.id}_3573F8"  # as MESH names messages
            reply_file = folder / f"{request_file.stem}-{'error' if error else 'reply'}-{message_id}.dat"
            content = b"00000001 bad request\n" if error else b"".join(f"{number},\n".encode() for number in allowed or [])
            reply_file.write_bytes(content)
            session.add(NationalCheckReply(
                request_id=request.id, mesh_message_id=message_id, is_error=error,
                numbers=0 if error else len(allowed or []), path=str(reply_file),
                sha256=hashlib.sha256(content).hexdigest(), received_at=utcnow() - received_ago,
            ))
        session.expunge(request)
    return request, request_file, reply_file


def apply(runner, folder: Path, numbers: list[str], by: str, *national: str) -> None:
    data_set = folder / "extract.csv"
    data_set.write_text("nhs_number,visits\n" + "".join(f"{number},1\n" for number in numbers))
    result = runner.invoke(args=["register", "apply", str(data_set), "--out", str(folder / "kept.csv"), "--by", by, *national])
    assert result.exit_code == 0, result.output


def run_cells(page) -> list[dict[str, str]]:
    """Each run's cells by column heading, as a screen reader reads them (the narrow screen labels taken out)."""
    headings = [cell.get_text(" ", strip=True) for cell in page.select("table")[0].select("thead th")]
    for label in page.select("td .nhsuk-table__heading"):
        label.decompose()
    return [
        dict(zip(headings, (" ".join(cell.get_text(" ", strip=True).split()) for cell in row.select("td")), strict=True))
        for row in page.select("table")[0].select("tbody tr")
    ]


def download_form(page, file_name: str):
    """The form whose button offers the request file of that name."""
    forms = [form for form in page.select("form") if file_name in form.get_text(" ", strip=True)]
    assert forms, f"no download offered for {file_name}"
    return forms[0]


def download(client_request, action: str):
    return client_request.client.post(action, data={"csrf_token": client_request.csrf_token()})


def audit(app) -> list[AuditEntry]:
    with Session(app.extensions["database"].engine) as session:
        return list(session.exec(select(AuditEntry).order_by(AuditEntry.id)).all())


def test_a_manager_sees_each_register_run_with_its_counts_and_the_register_it_used(app, runner, client_request, tmp_path):
    opted_out = synthetic_nhs_number(7001)
    opt_out(app, opted_out)
    manager = client_request.sign_in("manager")
    kept = synthetic_nhs_number(7002)
    data_set = tmp_path / "extract.csv"
    data_set.write_text(f"nhs_number,visits\n{opted_out},3\n{kept},1\nnot a number,2\n")
    result = runner.invoke(args=["register", "apply", str(data_set), "--out", str(tmp_path / "kept.csv"), "--by", manager.email])
    assert result.exit_code == 0, result.output

    page = client_request.get("staff.register_runs")
    [run] = run_cells(page)
    assert [run[column] for column in ("Who", "Files", "Rows")] == [manager.email, "extract.csv to kept.csv", "3 read, 1 kept"]
    assert run["Withheld"] == "1 opted out 1 without a valid NHS number"
    assert run["National reply"].startswith("Our register only")  # plain words, no checksum or file
    assert run["Register"].endswith("1 opted out") and "choices up to" in run["Register"]
    body = page.response.get_data(as_text=True)
    assert opted_out not in body and kept not in body


def test_a_run_with_a_national_reply_shows_the_reply_its_age_when_used_and_the_national_counts(
    app, runner, client_request, tmp_path
):
    kept, national_only, ours_only = nhs(1), nhs(2), nhs(3)
    opt_out(app, ours_only)
    request, _, reply_file = national_check(
        app, tmp_path, [kept, national_only, ours_only], [kept, ours_only], received_ago=timedelta(hours=3, seconds=5)
    )
    assert reply_file is not None
    manager = client_request.sign_in("manager")
    apply(runner, tmp_path, [kept, national_only, ours_only, nhs(4)], manager.email, "--national-reply", str(reply_file))

    page = client_request.get("staff.register_runs")
    [run] = run_cells(page)
    used = run["National reply"]
    assert reply_file.name in used and request.file_name in used
    assert "3 hours old when used" in used
    assert hashlib.sha256(reply_file.read_bytes()).hexdigest()[:12] in used
    assert "received" in used
    # One with a national opt-out alone, one opted out with us alone, none with both, one not in the request.
    assert run["Withheld"] == (
        "1 national opt-out 1 opted out with us 0 both 1 not in the national request 0 without a valid NHS number"
    )
    assert download_form(page, request.file_name)
    body = page.response.get_data(as_text=True)
    assert not any(number in body for number in (kept, national_only, ours_only, nhs(4)))


@pytest.mark.parametrize(
    ("age", "words"),
    [
        (timedelta(seconds=40), "less than a minute"),
        (timedelta(minutes=1, seconds=59), "1 minute"),
        (timedelta(minutes=45), "45 minutes"),
        (timedelta(hours=3), "3 hours"),
        (timedelta(hours=1, minutes=20), "1 hour 20 minutes"),
        (timedelta(hours=23, minutes=59, seconds=59), "23 hours 59 minutes"),  # rounded down: never younger than it was
        (timedelta(days=1, hours=2, minutes=30), "1 day 2 hours"),
        (timedelta(days=3), "3 days"),
    ],
)
def test_a_replys_age_is_said_in_words_staff_use(age, words):
    assert age_in_words(age) == words


def test_the_national_checks_show_what_was_sent_and_what_is_still_waiting(app, client_request, tmp_path):
    national_check(app, tmp_path, [nhs(1), nhs(2)], None, name="X26OPTOUT1-031226-0001.dat")
    national_check(app, tmp_path, [nhs(1), nhs(2)], [nhs(1)], name="X26OPTOUT1-031226-0002.dat")
    national_check(app, tmp_path, [nhs(3)], None, name="X26OPTOUT1-031226-0003.dat", error=True)
    client_request.sign_in("manager")
    page = client_request.get("staff.register_runs")
    section = page.select_one("#national-checks ~ table")
    assert section is not None, "no table of national checks"
    for label in section.select("td .nhsuk-table__heading"):
        label.decompose()
    cells = [[" ".join(td.get_text(" ", strip=True).split()) for td in row.select("td")] for row in section.select("tbody tr")]
    rows = {row[0].split()[0]: row for row in cells}  # by the request file's name
    assert rows["X26OPTOUT1-031226-0001.dat"][3] == "waiting for a reply"
    assert rows["X26OPTOUT1-031226-0002.dat"][3].startswith("1, the last received")
    assert rows["X26OPTOUT1-031226-0003.dat"][4].startswith("1: the request was not accepted")
    assert rows["X26OPTOUT1-031226-0003.dat"][3] == "none"


@pytest.mark.parametrize("role", ["manager", "admin"])
def test_a_manager_or_admin_downloads_the_request_file_as_it_was_sent_and_it_is_audited(
    app, runner, client_request, tmp_path, role
):
    request, request_file, reply_file = national_check(app, tmp_path, [nhs(1), nhs(2)], [nhs(1)])
    assert reply_file is not None
    member = client_request.sign_in(role)
    apply(runner, tmp_path, [nhs(1), nhs(2)], member.email, "--national-reply", str(reply_file))
    page = client_request.get("staff.register_runs")
    action = download_form(page, request.file_name)["action"]
    assert not NHS_NUMBER.search(action), "an NHS number in the address"

    response = download(client_request, action)
    assert response.status_code == 200, response.get_data(as_text=True)[:500]
    assert response.get_data() == request_file.read_bytes()
    assert response.headers["Content-Disposition"] == f"attachment; filename={request.file_name}"
    assert response.headers["Cache-Control"] == "no-store"
    [entry] = [entry for entry in audit(app) if entry.action == "downloaded_national_request"]
    assert (entry.staff_user_id, entry.target_type, entry.target_id) == (member.id, "national_check_request", str(request.id))
    assert request.file_name in entry.detail and not NHS_NUMBER.search(entry.detail + entry.target_id)


def test_a_request_file_moved_or_changed_since_it_was_sent_is_refused_saying_why_and_what_to_do(
    app, client_request, tmp_path
):
    moved, moved_file, _ = national_check(app, tmp_path, [nhs(1)], None, name="X26OPTOUT1-031226-0001.dat")
    changed, changed_file, _ = national_check(app, tmp_path, [nhs(2)], None, name="X26OPTOUT1-031226-0002.dat")
    client_request.sign_in("manager")
    page = client_request.get("staff.register_runs")
    moved_action = download_form(page, moved.file_name)["action"]
    changed_action = download_form(page, changed.file_name)["action"]
    moved_file.rename(tmp_path / "elsewhere.dat")
    changed_file.write_bytes(changed_file.read_bytes() + f"{nhs(3)},\n".encode())

    refusals = ((moved_action, moved.file_name, "no longer at"), (changed_action, changed.file_name, "changed"))
    for action, file_name, why in refusals:
        response = client_request.client.post(action, data={"csrf_token": client_request.csrf_token()})
        assert response.status_code == 409
        refused = check_page(response)
        [problem] = refused.error_summary
        assert file_name in problem and why in problem
        assert "flask register national request" in problem  # what to do
        assert refused.h1_text == "Register runs"  # the page, with its runs and checks, not a dead end
        assert "attachment" not in response.headers.get("Content-Disposition", "")
        assert not any(number in response.get_data(as_text=True) for number in (nhs(1), nhs(2), nhs(3)))
    assert [entry for entry in audit(app) if entry.action == "downloaded_national_request"] == []


def test_a_request_recorded_without_where_it_was_sent_from_offers_no_download(app, client_request, tmp_path):
    request, _, _ = national_check(app, tmp_path, [nhs(1)], None)
    with app.extensions["database"].transaction() as session:
        stored = session.get(NationalCheckRequest, request.id)
        assert stored is not None
        stored.path = None  # as for requests sent before the path was kept
    client_request.sign_in("manager")
    page = client_request.get("staff.register_runs")
    assert request.file_name in page.text_of("#national-checks ~ table")
    assert not [form for form in page.select("form") if request.file_name in form.get_text()]
    response = client_request.client.post(
        client_request.url("staff.download_national_request", request_id=request.id),
        data={"csrf_token": client_request.csrf_token()},
    )
    assert response.status_code == 409
    assert "not recorded" in check_page(response).error_summary[0]


def test_only_managers_and_admins_download_a_request_file_and_only_with_its_csrf_token(app, client_request, tmp_path):
    request, _, _ = national_check(app, tmp_path, [nhs(1)], None)
    client_request.sign_in("manager")
    client_request.post("staff.download_national_request", request_id=request.id, _expected_status=400, _with_token=False)
    client_request.post("staff.download_national_request", request_id=request.id + 1, _expected_status=404)
    client_request.sign_out()
    client_request.sign_in("viewer")
    client_request.post("staff.download_national_request", request_id=request.id, _expected_status=403)
    assert [entry for entry in audit(app) if entry.action == "downloaded_national_request"] == []


def test_viewers_cannot_see_register_runs(client_request):
    client_request.sign_in("viewer")
    client_request.get("staff.register_runs", _expected_status=403)
