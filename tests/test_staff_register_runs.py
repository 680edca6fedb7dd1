"""Managers can show when the register was applied to a data set, by whom, and against which register."""

from ivr.records.choices import record_choice
from ivr.standins.demo import synthetic_nhs_number
from models import ChoiceStatus
from tests.builders import create_person


def test_a_manager_sees_each_register_run_with_its_counts_and_the_register_it_used(app, runner, client_request, tmp_path):
    with app.extensions["database"].transaction() as session:
        opted_out = create_person(session, nhs_number=synthetic_nhs_number(7001))
        record_choice(session, opted_out, ChoiceStatus.OPTED_OUT, "staff")
    manager = client_request.sign_in("manager")
    data_set = tmp_path / "extract.csv"
    kept = synthetic_nhs_number(7002)
    data_set.write_text(f"nhs_number,visits\n{opted_out.nhs_number},3\n{kept},1\nnot a number,2\n")
    result = runner.invoke(args=["register", "apply", str(data_set), "--out", str(tmp_path / "kept.csv"), "--by", manager.email])
    assert result.exit_code == 0, result.output

    page = client_request.get("staff.register_runs")
    for heading in page.select("td .nhsuk-table__heading"):  # the labels narrow screens show
        heading.decompose()
    [cells] = [[cell.get_text(" ", strip=True) for cell in row.select("td")] for row in page.select("tbody tr")]
    assert cells[1:7] == [manager.email, "extract.csv to kept.csv", "3", "1", "1", "1"]
    assert cells[7] == "not checked"  # no national reply applied
    assert cells[8].endswith("1 opted out") and "choices up to" in cells[8]
    body = page.response.get_data(as_text=True)
    assert opted_out.nhs_number not in body and kept not in body


def test_viewers_cannot_see_register_runs(client_request):
    client_request.sign_in("viewer")
    client_request.get("staff.register_runs", _expected_status=403)
