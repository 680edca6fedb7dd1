"""`flask call` and `flask text`: a phone in the terminal that calls or texts the line as Twilio would,
with no Twilio account.

It signs and posts the same webhooks Twilio does to the app in this process, prints what the line
says, takes key presses or texts, and shows the texts the line sends, which go through the real
Twilio REST client to a local stand-in of Twilio's Messages endpoint rather than to a real phone.
"""

import logging
import uuid
from collections.abc import Callable, Mapping
from urllib.parse import urlsplit

import click
from flask import Flask, current_app
from flask.cli import with_appcontext
from flask.testing import FlaskClient

from ivr.records.phone_numbers import parse_uk_phone_number
from ivr.standins.local_twilio import LocalTwilio
from ivr.standins.twiml_caller import Heard, Texter, Transport, TwimlCaller

LOCAL_ACCOUNT_SID = "AC" + "0" * 32
LOCAL_FROM_NUMBER = "+447700900999"
# Builds the app the phone rings (app.create_app): given by the entry point, so nothing here imports `app`.
AppFactory = Callable[[Mapping[str, object]], Flask]
HELP = (
    "Key digits ('#' ends a number; an NHS number, date of birth or code ends by itself), '*' to repeat, "
    "'say WORDS' to speak, Enter to stay silent, 'h' to hang up."
)


def flask_transport(client: FlaskClient) -> Transport:
    """Post to an app in this process, as Twilio would post over HTTP."""

    def post(url: str, params: dict[str, str], headers: dict[str, str]) -> tuple[int, str]:
        parts = urlsplit(url)
        path = parts.path + (f"?{parts.query}" if parts.query else "")
        response = client.post(path, data=params, headers=headers, base_url=f"{parts.scheme}://{parts.netloc}")
        return response.status_code, response.get_data(as_text=True)

    return post


def _phone_number(from_number: str) -> str:
    number = parse_uk_phone_number(from_number)
    if number is None:
        raise click.BadParameter("not a UK phone number", param_hint="--from")
    return number


def _phone_app(create_app: AppFactory, texts: LocalTwilio, token: str) -> Flask:
    """The app, as configured, but sending its texts to the local stand-in and signed with `token`."""
    logging.getLogger().setLevel(logging.WARNING)  # the conversation, not the app's log, on the terminal
    app = create_app(
        {
            **current_app.extensions["settings"].model_dump(),
            "twilio_account_sid": LOCAL_ACCOUNT_SID,
            "twilio_auth_token": token,
            "twilio_from_number": LOCAL_FROM_NUMBER,
            "twilio_api_base_url": texts.base_url,
            "public_base_url": None,
        }
    )
    # The terminal is this app's outbox worker: before showing texts, it sends what the line queued.
    texts.before_reading = app.extensions["outbox"].send_due
    return app


def _show_new_texts(texts: LocalTwilio, shown: int) -> int:
    received = texts.texts()
    for text in received[shown:]:
        click.echo(click.style(f"  [text to {text.to}] {text.body}", fg="green"))
    return len(received)


def phone_commands(create_app: AppFactory) -> tuple[click.Command, click.Command]:
    """`flask call` and `flask text`, ringing an app that `create_app` builds beside the command's own."""

    @click.command("call", help="Call the line from the terminal (texts go to a local stand-in, never a real phone).")
    @with_appcontext
    @click.option("--from", "from_number", default="07700 900001", show_default=True, help="The number you call from.")
    def call_command(from_number: str) -> None:
        caller_number = _phone_number(from_number)
        token = uuid.uuid4().hex
        with LocalTwilio() as texts:
            caller = TwimlCaller(
                flask_transport(_phone_app(create_app, texts, token).test_client()),
                token,
                "http://localhost",
                call_sid="CA" + uuid.uuid4().hex,
                from_number=caller_number,
                to_number=LOCAL_FROM_NUMBER,
                account_sid=LOCAL_ACCOUNT_SID,
            )
            click.echo(f"Calling the Opt-Out Line from {from_number}. {HELP}")
            _converse(caller, texts)

    @click.command("text", help="Text the line from the terminal (replies go to a local stand-in, never a real phone).")
    @with_appcontext
    @click.option("--from", "from_number", default="07700 900001", show_default=True, help="The number you text from.")
    def text_command(from_number: str) -> None:
        texter_number = _phone_number(from_number)
        token = uuid.uuid4().hex
        with LocalTwilio() as texts:
            texter = Texter(
                flask_transport(_phone_app(create_app, texts, token).test_client()),
                token,
                "http://localhost",
                from_number=texter_number,
                to_number=LOCAL_FROM_NUMBER,
                account_sid=LOCAL_ACCOUNT_SID,
            )
            click.echo(
                f"Texting the Opt-Out Line from {from_number}. Type a message and press Enter (HELP to start); Ctrl-D to stop."
            )
            shown = 0
            while True:
                try:
                    body = click.prompt("  you", default="", show_default=False)
                except (click.Abort, EOFError):
                    break
                if not body.strip():
                    continue
                status = texter.send(body)
                if status != 200:
                    click.echo(f"The line answered with HTTP {status}.")
                for reply in texter.answered_with:
                    click.echo(click.style(f"  [text to {texter_number}] {reply}", fg="green"))
                shown = _show_new_texts(texts, shown)
            click.echo("Stopped texting.")

    return call_command, text_command


def _converse(caller: TwimlCaller, texts: LocalTwilio) -> None:
    shown = 0
    heard = caller.dial()
    while True:
        _show(heard)
        shown = _show_new_texts(texts, shown)
        if heard.hung_up or heard.status != 200:
            break
        if heard.dial:
            answered = click.confirm(f"  (ringing staff on {heard.dial}) Did someone answer?", default=False)
            heard = caller.end_dial(answered)
            continue
        try:
            entry = click.prompt("  you", default="", show_default=False).strip()
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
    caller.hang_up()
    click.echo("Call ended.")


def _show(heard: Heard) -> None:
    if heard.status != 200:
        click.echo(f"The line answered with HTTP {heard.status}.")
        return
    click.echo(click.style(f"Line: {heard.text}", bold=True))
