"""`flask call` and `flask text`: a phone in the terminal that rings or texts a running line as Twilio would,
with no Twilio account.

It signs and posts the same webhooks Twilio does, over HTTP, to the server `make run` started (or any other,
with --url), prints what the line says and takes key presses or texts. The texts the line sends are shown as
they arrive: `make run` sends them through the real Twilio REST client to a local stand-in of Twilio's
Messages endpoint (ivr/standins/local_twilio.py), and the phone asks that stand-in, through Twilio's API for
listing messages, for the ones that reached its number or another test number.
"""

import threading
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import click
import requests
from flask import current_app
from flask.cli import with_appcontext
from flask.testing import FlaskClient
from twilio.base.exceptions import TwilioRestException
from twilio.rest import Client

from ivr.records.phone_numbers import format_for_people, parse_uk_phone_number
from ivr.standins.demo import is_test_number
from ivr.standins.local_line import LOCAL_ACCOUNT_SID, LOCAL_FROM_NUMBER
from ivr.standins.twiml_caller import Heard, Texter, Transport, TwimlCaller

LOCAL_LINE_URL = "http://127.0.0.1:5000"  # where `make run` serves the line
LOCAL_TEXTS_URL = "http://127.0.0.1:5001"  # where `make run` keeps its Twilio stand-in
WEBHOOK_TIMEOUT_SECONDS = 15.0  # as long as Twilio waits for the line's answer
TEXTS_LOOK_EVERY_SECONDS = 0.25
UNANSWERED = (requests.RequestException, TwilioRestException)  # the stand-in is not there, or not Twilio's API
HELP = (
    "Key digits ('#' ends a number; an NHS number, date of birth or code ends by itself), '*' to repeat, "
    "'say WORDS' to speak, Enter to stay silent, 'h' to hang up."
)


class LineUnreachable(click.ClickException):
    """Nothing answers at the line's URL: one line saying so, and a non-zero exit."""


def flask_transport(client: FlaskClient) -> Transport:
    """Post to an app in this process, as Twilio would post over HTTP."""

    def post(url: str, params: dict[str, str], headers: dict[str, str]) -> tuple[int, str]:
        parts = urlsplit(url)
        path = parts.path + (f"?{parts.query}" if parts.query else "")
        response = client.post(path, data=params, headers=headers, base_url=f"{parts.scheme}://{parts.netloc}")
        return response.status_code, response.get_data(as_text=True)

    return post


def http_transport(line_url: str) -> Transport:
    """Post over HTTP, as Twilio does; a line that stops answering is one line on the terminal."""
    session = requests.Session()

    def post(url: str, params: dict[str, str], headers: dict[str, str]) -> tuple[int, str]:
        try:
            response = session.post(url, data=params, headers=headers, timeout=WEBHOOK_TIMEOUT_SECONDS)
        except requests.RequestException as error:
            raise LineUnreachable(f"The line at {line_url} stopped answering ({type(error).__name__}).") from None
        return response.status_code, response.text

    return post


def check_line_answers(line_url: str) -> None:
    """Before ringing, ask the line's /healthz, so that nothing listening (or something else listening) is
    said in one line rather than a traceback."""
    try:
        answer = requests.get(line_url.rstrip("/") + "/healthz", timeout=WEBHOOK_TIMEOUT_SECONDS)
    except requests.RequestException:
        raise LineUnreachable(f"Nothing is answering at {line_url}: start the line with `make run` first.") from None
    if answer.status_code != 200:
        raise LineUnreachable(
            f"{line_url} answers GET /healthz with HTTP {answer.status_code}: is it the Opt-Out Line, and is its "
            "database up?"
        )


def _phone_number(from_number: str) -> str:
    number = parse_uk_phone_number(from_number)
    if number is None:
        raise click.BadParameter("not a UK phone number", param_hint="--from")
    return number


class TextsArriving:
    """The texts the line sends to this phone's number (and to other test numbers, which no real phone has),
    shown as they arrive, in a thread of their own, by asking the Twilio stand-in for the messages sent."""

    def __init__(self, texts_url: str, own_number: str, account_sid: str, auth_token: str) -> None:
        self.texts_url = texts_url
        self.own_number = own_number
        self.client = Client(account_sid, auth_token)
        self.client.api.base_url = texts_url.rstrip("/")
        self._seen: set[str] = set()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True)
        self._output = threading.Lock()
        self.at_prompt = False

    def start(self) -> bool:
        """False (said on the terminal) when no stand-in answers: the call goes on without its texts."""
        try:
            self._seen = {message.sid for message in self._sent()}  # only texts from now on are this call's
        except UNANSWERED:
            click.echo(
                f"(The texts the line sends are not shown here: no Twilio stand-in answers at {self.texts_url}; "
                "`make run` starts one.)"
            )
            return False
        self._thread.start()
        return True

    def stop(self) -> None:
        self._stop.set()

    def echo(self, line: str) -> None:
        with self._output:
            click.echo(line)

    def prompt(self) -> str:
        """Read one entry; a text arriving meanwhile is shown above it, and the prompt again."""
        with self._output:
            self.at_prompt = True
        try:
            return str(click.prompt("  you", default="", show_default=False, prompt_suffix=": "))
        finally:
            with self._output:
                self.at_prompt = False

    def _sent(self) -> list[Any]:  # twilio ships no types: MessageInstance
        return list(self.client.messages.list(limit=100))

    def _watch(self) -> None:
        while not self._stop.wait(TEXTS_LOOK_EVERY_SECONDS):
            try:
                messages = self._sent()
            except UNANSWERED:
                continue  # the stand-in went away for a moment: look again
            for message in reversed(messages):  # Twilio lists the newest first
                sid, to, body = message.sid, message.to, message.body
                if sid in self._seen:
                    continue
                self._seen.add(sid)
                if to == self.own_number or is_test_number(to):
                    self._show(format_for_people(to), body)

    def _show(self, to: str, body: str) -> None:
        with self._output:
            lead = "\n" if self.at_prompt else ""
            click.echo(lead + click.style(f"  [text to {to}] {body}", fg="green"))
            if self.at_prompt:
                click.echo("  you: ", nl=False)


def _line_options(command: Callable[..., None]) -> Callable[..., None]:
    command = click.option(
        "--texts-url",
        default=LOCAL_TEXTS_URL,
        show_default=True,
        help="The Twilio stand-in the line sends its texts to (make run's), asked for the texts this phone gets.",
    )(command)
    command = click.option(
        "--url",
        "line_url",
        default=LOCAL_LINE_URL,
        show_default=True,
        help="The line to ring (make run's). Another line checks signatures with its own auth token: give it "
        "in TWILIO_AUTH_TOKEN, never on the command line.",
    )(command)
    return command


class _Phone:
    """What both commands share: the line's URL and its numbers, the token webhooks are signed with."""

    def __init__(self, line_url: str) -> None:
        settings = current_app.extensions["settings"]
        self.line_url = line_url.rstrip("/")
        self.auth_token = settings.webhook_auth_token(Path(current_app.instance_path))
        self.account_sid = settings.twilio_account_sid or LOCAL_ACCOUNT_SID
        self.line_number = settings.twilio_from_number or LOCAL_FROM_NUMBER

    def texts(self, texts_url: str, own_number: str) -> TextsArriving:
        return TextsArriving(texts_url, own_number, self.account_sid, self.auth_token)


def phone_commands() -> tuple[click.Command, click.Command]:
    """`flask call` and `flask text`, ringing a running line over HTTP."""

    @click.command("call", help="Call the running line from the terminal (its texts go to a stand-in, never a phone).")
    @with_appcontext
    @click.option("--from", "from_number", default="07700 900001", show_default=True, help="The number you call from.")
    @_line_options
    def call_command(from_number: str, line_url: str, texts_url: str) -> None:
        caller_number = _phone_number(from_number)
        phone = _Phone(line_url)
        check_line_answers(phone.line_url)
        caller = TwimlCaller(
            http_transport(phone.line_url),
            phone.auth_token,
            phone.line_url,
            call_sid="CA" + uuid.uuid4().hex,
            from_number=caller_number,
            to_number=phone.line_number,
            account_sid=phone.account_sid,
        )
        texts = phone.texts(texts_url, caller_number)
        click.echo(f"Calling the Opt-Out Line at {phone.line_url} from {format_for_people(caller_number)}. {HELP}")
        watching = texts.start()
        try:
            _converse(caller, texts)
            if watching:
                _keep_the_phone_on(texts)
        finally:
            texts.stop()

    @click.command("text", help="Text the running line from the terminal (its replies go to a stand-in, never a phone).")
    @with_appcontext
    @click.option("--from", "from_number", default="07700 900001", show_default=True, help="The number you text from.")
    @_line_options
    def text_command(from_number: str, line_url: str, texts_url: str) -> None:
        texter_number = _phone_number(from_number)
        phone = _Phone(line_url)
        check_line_answers(phone.line_url)
        texter = Texter(
            http_transport(phone.line_url),
            phone.auth_token,
            phone.line_url,
            from_number=texter_number,
            to_number=phone.line_number,
            account_sid=phone.account_sid,
        )
        texts = phone.texts(texts_url, texter_number)
        click.echo(
            f"Texting the Opt-Out Line at {phone.line_url} from {format_for_people(texter_number)}. "
            "Type a message and press Enter (HELP to start); the replies show as they arrive; Ctrl-D to stop."
        )
        texts.start()
        try:
            _texting(texter, texts)
        finally:
            texts.stop()
        click.echo("Stopped texting.")

    return call_command, text_command


def _texting(texter: Texter, texts: TextsArriving) -> None:
    while True:
        try:
            body = texts.prompt()
        except (click.Abort, EOFError):
            return
        if not body.strip():
            continue
        status = texter.send(body)
        if status == 403:
            texts.echo(_refused_signature())
            return
        if status != 200:
            texts.echo(f"The line answered with HTTP {status}.")
        for reply in texter.answered_with:  # an answer in the webhook itself (the line's apology)
            texts.echo(click.style(f"  [text to {format_for_people(texter.from_number)}] {reply}", fg="green"))


def _converse(caller: TwimlCaller, texts: TextsArriving) -> None:
    heard = caller.dial()
    if heard.status == 403:
        raise click.ClickException(_refused_signature())
    while True:
        _show(heard, texts)
        if heard.hung_up or heard.status != 200:
            break
        if heard.dial:
            answered = click.confirm(f"  (ringing staff on {heard.dial}) Did someone answer?", default=False)
            heard = caller.end_dial(answered)
            continue
        try:
            entry = texts.prompt().strip()
        except (click.Abort, EOFError):
            entry = "h"
        if entry.lower() in ("h", "hang up", "q"):
            break
        if entry.lower().startswith("say "):
            heard = caller.speak(entry[4:])
        elif entry:
            heard = caller.press(entry)
        else:
            heard = caller.stay_silent()
    caller.hang_up()  # Twilio's status callback, with the call's real duration
    texts.echo(f"Call ended after {caller.measured_duration()} seconds.")


def _keep_the_phone_on(texts: TextsArriving) -> None:
    """A text may still be on its way (the confirmation of a choice comes after the goodbye): the phone
    stays on, showing what arrives, until Enter or Ctrl-D."""
    texts.echo("Texts still arriving show here; press Enter (or Ctrl-D) to put the phone down.")
    try:
        texts.prompt()
    except (click.Abort, EOFError):
        pass


def _refused_signature() -> str:
    return (
        "The line refused the phone's signature (HTTP 403): the line checks it with its own auth token (give it in "
        "TWILIO_AUTH_TOKEN) and the URL it knows itself by (its PUBLIC_BASE_URL, to be given as --url)."
    )


def _show(heard: Heard, texts: TextsArriving) -> None:
    if heard.status != 200:
        texts.echo(f"The line answered with HTTP {heard.status}.")
        return
    texts.echo(click.style(f"Line: {heard.text}", bold=True))
