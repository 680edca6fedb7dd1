"""Logs a machine can read and a person can trace: one JSON object per line off a terminal, each with the
request id (returned to the caller of the webhook) and the Twilio SID, and never an identifier."""

import contextlib
import copy
import io
import json
import logging
import logging.config
import re
import threading
from collections.abc import Iterator
from datetime import date

import pytest
import requests
from flask import Flask
from werkzeug.serving import make_server

from app import create_app
from ivr.logs import REQUEST_ID_HEADER, JsonFormatter, MaskingFormatter, RequestContext, mask_identifiers
from tests.builders import PASSWORD, create_staff_user
from tests.conftest import SmsTexter, verify
from tests.run_log import LoggedLine, RunLog
from tests.said import prompts_in
from tests.sms_helpers import verify_by_text


@pytest.fixture
def json_log() -> Iterator[io.StringIO]:
    """What the root logger writes, formatted as the service writes it when not on a terminal."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    handler.addFilter(RequestContext())
    root = logging.getLogger()
    root.addHandler(handler)
    try:
        yield stream
    finally:
        root.removeHandler(handler)


def _entries(stream: io.StringIO) -> list[dict[str, object]]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


def test_a_failing_call_step_is_logged_as_one_json_line_with_its_call_sid_and_request_id(
    app: Flask, caller, json_log, monkeypatch
):
    caller.dial()

    def broken(*args, **kwargs):
        raise RuntimeError("the store went away while handling 9434765919")

    monkeypatch.setattr(app.extensions["line"], "handle", broken)
    heard = caller.press("1")
    assert prompts_in("voice", heard.said[0]) == ["unavailable"]  # then in each other language offered
    entries = [entry for entry in _entries(json_log) if entry["logger"] == "ivr.line.voice"]
    assert len(entries) == 1
    entry = entries[0]
    assert entry["level"] == "ERROR"
    assert entry["twilio_sid"] == caller.call_sid
    assert isinstance(entry["request_id"], str) and len(entry["request_id"]) == 16
    assert "RuntimeError" in entry["exception"]  # type: ignore[operator]
    assert "9434765919" not in json_log.getvalue()
    assert "**********" in entry["exception"]  # type: ignore[operator]


def test_each_answer_names_its_request_id_and_a_proxys_sane_id_is_kept(client):
    first = client.get("/healthz")
    second = client.get("/healthz")
    assert first.headers[REQUEST_ID_HEADER] != second.headers[REQUEST_ID_HEADER]
    kept = client.get("/healthz", headers={REQUEST_ID_HEADER: "edge-4f1c2a9b"})
    assert kept.headers[REQUEST_ID_HEADER] == "edge-4f1c2a9b"
    replaced = client.get("/healthz", headers={REQUEST_ID_HEADER: 'x"} {"level":"forged'})
    assert len(replaced.headers[REQUEST_ID_HEADER]) == 16
    assert '"' not in replaced.headers[REQUEST_ID_HEADER]


def test_an_unsigned_webhook_is_logged_with_its_request_id_but_not_a_sid_of_the_wrong_shape(client, json_log):
    answer = client.post("/twilio/voice", data={"CallSid": "CA 943 476 5919 <x>", "From": "+447700900555"})
    assert answer.status_code == 403
    (entry,) = [entry for entry in _entries(json_log) if "signature" in str(entry["message"])]
    assert entry["request_id"] == answer.headers[REQUEST_ID_HEADER]
    assert "twilio_sid" not in entry
    assert "5919" not in json_log.getvalue()


def test_a_message_with_quotes_and_newlines_stays_one_valid_json_line(json_log):
    logging.getLogger("ivr.test").warning('a "quoted"\nsecond line, date of birth 01/03/1984')
    lines = json_log.getvalue().splitlines()
    assert len(lines) == 1
    entry = json.loads(lines[0])
    assert entry["message"] == 'a "quoted"\nsecond line, date of birth **/**/****'
    assert "request_id" not in entry  # no request, no id


def test_on_a_terminal_a_record_reads_as_one_masked_line_with_its_request():
    record = logging.LogRecord("ivr.line.voice", logging.WARNING, __file__, 1, "caller keyed %s", ("943 476 5919",), None)
    record.request_id = "abc123def4567890"
    record.twilio_sid = "CA" + "0" * 32
    line = MaskingFormatter().format(record)
    assert "WARNING ivr.line.voice: caller keyed *** *** ****" in line
    assert f"[request abc123def4567890 CA{'0' * 32}]" in line


@pytest.fixture
def production_log() -> Iterator[io.StringIO]:
    """What the app's logs look like under gunicorn (`ivr.operations.production`'s log config), as JSON lines."""
    from ivr.operations import production

    stream = io.StringIO()
    config = copy.deepcopy(production.logconfig_dict)
    config["formatters"]["service"]["()"] = JsonFormatter  # whether or not this runs on a terminal
    config["handlers"]["errors"]["stream"] = stream
    loggers = [logging.getLogger(), *map(logging.getLogger, config["loggers"])]
    saved = [(logger, logger.handlers[:], logger.level, logger.propagate) for logger in loggers]
    logging.config.dictConfig(config)
    try:
        yield stream
    finally:
        for logger, handlers, level, propagate in saved:
            logger.handlers[:], logger.level, logger.propagate = handlers, level, propagate


def test_under_gunicorn_a_webhooks_log_line_still_carries_its_request_id(production_log):
    app = create_app({"database_url": "sqlite://", "secret_key": "test"})  # keeps gunicorn's handler
    answer = app.test_client().post("/twilio/voice", data={"CallSid": "CA" + "1" * 32})
    assert answer.status_code == 403
    (entry,) = [entry for entry in _entries(production_log) if "signature" in str(entry["message"])]
    assert entry["request_id"] == answer.headers[REQUEST_ID_HEADER]


@pytest.mark.parametrize(
    "written",
    [
        "999 000 0107",
        "999+000+0107",  # a search box's query string
        "999%20000%200107",
        "999.000.0107",
        "999-000-0107",
        "999\u00a0000\u00a00107",  # no-break spaces
        "999\u2009000\u20090107",  # thin spaces
        "999\u2013000\u20130107",  # en dashes
        "999/000/0107",
        "999,000,0107",
        "(999) 000-0107",
        "[999] 000 0107",
        "999_000_0107",
        "9 9 9 0 0 0 0 1 0 7",
        "nhs9990000107",
        "NHS9990000107x",
        "９９９００００１０７",  # full-width digits
        "01.03.1984",
        "1/3/84",
        "1984-03-01",
        "123 456",  # a code keyed in two halves
        "12-34-56",
        "+44 (0)7700 900123",
        "07700.900.123",
    ],
)
def test_every_way_a_person_might_write_an_identifier_is_masked(written):
    masked = mask_identifiers(f"GET /staff/people?q={written} HTTP/1.1")
    assert not any(ch.isdigit() for ch in masked.split("?q=")[1].split(" HTTP")[0]), masked


def test_what_is_not_an_identifier_stays_readable():
    sid = "CA" + "0123456789abcdef" * 2
    for text in (
        f"Text 12 handed to Twilio as {sid}",
        "exit status 9",
        "press 2",
        "line 1234, in handle",
        "3 of 5",
        " * Running on http://127.0.0.1:5000",  # where `make run` serves the line
        "Listening at: http://0.0.0.0:8000",
    ):
        assert mask_identifiers(text) == text


def test_an_address_shaped_like_the_apps_own_but_holding_an_identifier_is_masked():
    for text in ("1127.0.0.1", "127.0.0.1.5", "127.000.010.7", "127.100.200.1"):
        assert not any(ch.isdigit() for ch in mask_identifiers(text)), text


def test_a_proxys_request_id_that_carries_digits_is_replaced_and_ours_carry_none(client):
    replaced = client.get("/healthz", headers={REQUEST_ID_HEADER: "nhs-9990000107"})
    assert replaced.headers[REQUEST_ID_HEADER] != "nhs-9990000107"
    ours = replaced.headers[REQUEST_ID_HEADER]
    assert len(ours) == 16 and not any(ch.isdigit() for ch in ours)


# ---- No identifier in the log: a people search, a call and a text ------------------------------------


@pytest.fixture
def run_log(request: pytest.FixtureRequest) -> Iterator[RunLog]:
    """What this test logs, kept as the service writes it (tests/run_log.py)."""
    handler = RunLog()
    handler.test = request.node.nodeid
    root = logging.getLogger()
    root.addHandler(handler)
    try:
        yield handler
    finally:
        root.removeHandler(handler)


def test_the_check_names_the_kind_logger_and_test_of_a_leak_but_never_the_identifier(run_log):
    run_log.test = "tests/test_x.py::test_y"
    run_log.lines.append(LoggedLine("tests/test_x.py::test_y", "werkzeug", "GET /staff/people?q=999+000+0107 HTTP/1.1"))
    run_log.lines.append(LoggedLine("tests/test_x.py::test_y", "ivr.line.voice", "born on 1 March 1984, code 123 456"))
    sent_as = "Text 3 at 12:34:56 as SM" + "1234560107" * 3 + "ab"
    run_log.lines.append(LoggedLine("tests/test_x.py::test_y", "ivr.records.outbox", sent_as))
    leaks = run_log.leaks({("NHS number", "9990000107"), ("date of birth", date(1984, 3, 1)), ("code", "123456")})
    assert sorted((leak.kind, leak.line.logger) for leak in leaks) == [
        ("NHS number", "werkzeug"),
        ("code", "ivr.line.voice"),
        ("date of birth", "ivr.line.voice"),
    ]
    report = "\n".join(map(str, leaks))
    assert "ending 107" in report and "tests/test_x.py::test_y" in report and "werkzeug" in report
    assert "9990000107" not in report and "999+000+0107" not in report and "123 456" not in report


def _serve(app: Flask) -> Iterator[str]:
    server = make_server("127.0.0.1", 0, app, threaded=True)  # werkzeug's own request log, as `make run` has
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        thread.join(timeout=10)
        server.server_close()


def _csrf_token(page: str) -> str:
    found = re.search(r'name="csrf_token"[^>]*value="([^"]+)"', page)
    assert found, "no CSRF token on the page"
    return found.group(1)


def test_a_people_search_a_call_and_a_text_leave_no_identifier_in_the_log(app, caller, person, twilio, run_log):
    manager = create_staff_user(app, role="manager")
    number = person.nhs_number
    with contextlib.contextmanager(_serve)(app) as base, requests.Session() as browser:
        token = _csrf_token(browser.get(f"{base}/staff/sign-in").text)
        browser.post(f"{base}/staff/sign-in", data={"email": manager.email, "password": PASSWORD, "csrf_token": token})
        token = _csrf_token(browser.get(f"{base}/staff/people").text)
        found = browser.post(f"{base}/staff/people", data={"q": f"{number[:3]} {number[3:6]} {number[6:]}", "csrf_token": token})
        assert found.status_code == 200 and "1 person found" in found.text
        assert number[-4:] not in found.url
        # A number typed into the address by hand is refused, and its request line masked.
        assert browser.get(f"{base}/staff/people?q={number[:3]}+{number[3:6]}+{number[6:]}").status_code == 400
    caller.dial()
    caller.press("2")
    verify(caller, person, twilio)
    caller.hears("confirm_opt_out")  # no choice yet: the opt-out is read back at once
    caller.press("1")
    caller.hears("choice_recorded_opted_out")
    texter = SmsTexter(app, twilio, "+447700900777")
    verify_by_text(texter, person, twilio)
    codes = {found for text in twilio.texts_to(person.mobile) for found in re.findall(r"\b\d{6}\b", text.body)}
    assert len(codes) == 2  # one for the call, one for the text

    assert any(line.logger == "werkzeug" for line in run_log.lines), "the server's request log was not captured"
    identifiers = {("NHS number", number), ("date of birth", person.date_of_birth), ("mobile", person.mobile)}
    leaks = run_log.leaks(identifiers | {("code", code) for code in codes})
    assert not leaks, "\n".join(map(str, leaks))
