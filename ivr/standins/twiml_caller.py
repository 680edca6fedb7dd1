"""A caller that follows TwiML exactly as Twilio does (signed posts, Gather actions, Redirects, Dial, Hangup),
and a texter who posts messages as Twilio does.

The terminal phone, the test suite and the benchmarks all call and text the line through these classes.
"""

import math
import time
import uuid
import xml.etree.ElementTree as ET
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import cast
from urllib.parse import urljoin

from twilio.request_validator import RequestValidator

# (absolute url, form params, headers) -> (status code, body)
Transport = Callable[[str, dict[str, str], dict[str, str]], tuple[int, str]]


@dataclass
class Heard:
    """What one response of the line contained."""

    status: int
    said: list[str] = field(default_factory=list)
    gather: dict[str, str] | None = None
    redirect: str | None = None
    dial: str | None = None
    dial_action: str | None = None
    hung_up: bool = False

    @property
    def text(self) -> str:
        return " ".join(self.said)

    @property
    def waits_for_silence(self) -> bool:
        """Whether saying and pressing nothing goes anywhere: to the Gather's action, or to a Redirect."""
        return (self.gather is not None and posts_empty_result(self.gather)) or self.redirect is not None


def posts_empty_result(gather: dict[str, str]) -> bool:
    """A Gather with actionOnEmptyResult posts to its action when it times out with no input, rather than
    going on to the next verb."""
    return gather.get("actionOnEmptyResult", "").lower() == "true"


class _TwilioPoster:
    """One phone's side of the line as Twilio sees it: its numbers and account, and signed posts."""

    def __init__(
        self,
        transport: Transport,
        auth_token: str,
        from_number: str,
        to_number: str,
        account_sid: str,
        extra_params: dict[str, str] | None,
    ) -> None:
        self.transport = transport
        self.validator = RequestValidator(auth_token)
        self.from_number = from_number
        self.to_number = to_number
        self.account_sid = account_sid
        self.extra_params = extra_params or {}  # sent, and signed, with every request

    def _post_signed(self, url: str, params: dict[str, str]) -> tuple[int, str]:
        signature = self.validator.compute_signature(url, params)
        return self.transport(url, params, {"X-Twilio-Signature": signature})


class TwimlCaller(_TwilioPoster):
    def __init__(
        self,
        transport: Transport,
        auth_token: str,
        base_url: str,
        call_sid: str,
        from_number: str = "+447700900001",
        to_number: str = "+442079460000",
        account_sid: str = "AC" + "0" * 32,
        extra_params: dict[str, str] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__(transport, auth_token, from_number, to_number, account_sid, extra_params)
        self.base_url = base_url.rstrip("/") + "/"
        self.call_sid = call_sid
        self.clock = clock
        self.answered_at: float | None = None  # by `clock`, when the line answered the call
        self.current_url = self.base_url
        self.last: Heard | None = None
        self.transcript: list[Heard] = []
        self._last_request: tuple[str, dict[str, str]] | None = None

    # ---- what a caller does ----------------------------------------------------------------

    def dial(self) -> Heard:
        heard = self._post("/twilio/voice", {"CallStatus": "ringing"})
        self.answered_at = self.clock()
        return heard

    def press(self, keys: str) -> Heard:
        """Key in digits at the current Gather, as Twilio posts them: without the finishing #, and no more than
        its numDigits (Twilio stops listening at the last one; keys pressed after it reach nothing)."""
        gather = self._current_gather()
        finish = gather.get("finishOnKey", "#")
        digits = keys[: keys.index(finish)] if finish and finish in keys else keys
        limit = int(gather["numDigits"]) if gather.get("numDigits", "").isdigit() else None
        finished = finish if finish and finish in keys else ""
        if limit is not None and len(digits) >= limit:
            digits, finished = digits[:limit], ""
        return self._post(gather["action"], {"Digits": digits, "FinishedOnKey": finished})

    def speak(self, words: str, confidence: str | None = "0.9") -> Heard:
        """Say `words` at the current Gather, as Twilio posts its transcript (with its Confidence, unless None)."""
        gather = self._current_gather()
        params = {"SpeechResult": words} if confidence is None else {"SpeechResult": words, "Confidence": confidence}
        return self._post(gather["action"], params)

    def stay_silent(self) -> Heard:
        """Say and press nothing: a Gather with actionOnEmptyResult posts no input to its action; any other
        falls through to the next verb, a Redirect."""
        assert self.last is not None, "the call has not started"
        if self.last.gather is not None and posts_empty_result(self.last.gather):
            return self._post(self.last.gather.get("action", self.current_url), {})
        assert self.last.redirect, "nothing to fall through to"
        return self._post(self.last.redirect, {})

    def end_dial(self, answered: bool) -> Heard:
        assert self.last is not None and self.last.dial_action, "no transfer in progress"
        return self._post(self.last.dial_action, {"DialCallStatus": "completed" if answered else "no-answer"})

    def hang_up(self, duration_seconds: int | None = None) -> int:
        """Twilio posts the call's end to the status callback, with CallDuration: the whole seconds from the
        answer to the hang-up, as this caller's clock measured them (unless told)."""
        if duration_seconds is None:
            duration_seconds = self.measured_duration()
        status, _ = self.send_signed(
            "/twilio/voice/status", {"CallStatus": "completed", "CallDuration": str(duration_seconds)}
        )
        return status

    def measured_duration(self) -> int:
        """Seconds from the answer until now, rounded up as a started second counts (0 if never answered)."""
        if self.answered_at is None:
            return 0
        return max(0, math.ceil(self.clock() - self.answered_at))

    def replay_last(self) -> Heard:
        """Post the last request again, as Twilio does when it retries a webhook."""
        assert self._last_request is not None
        url, params = self._last_request
        return self._post(url, params, replay=True)

    # ---- how Twilio posts ------------------------------------------------------------------

    def call_params(self) -> dict[str, str]:
        return {
            "CallSid": self.call_sid,
            "AccountSid": self.account_sid,
            "From": self.from_number,
            "To": self.to_number,
            "Direction": "inbound",
            "CallStatus": "in-progress",
            "ApiVersion": "2010-04-01",
            **self.extra_params,
        }

    def send_signed(self, url: str, extra: dict[str, str]) -> tuple[int, str]:
        absolute = urljoin(self.current_url, url)
        return self._post_signed(absolute, {**self.call_params(), **extra})

    def _post(self, url: str, extra: dict[str, str], replay: bool = False) -> Heard:
        self._last_request = (url, extra)
        status, body = self.send_signed(url, extra)
        if not replay:
            self.current_url = urljoin(self.current_url, url)
        heard = parse_twiml(status, body)
        self.last = heard
        self.transcript.append(heard)
        return heard

    def _current_gather(self) -> dict[str, str]:
        assert self.last is not None and self.last.gather is not None, "the line is not waiting for input"
        return self.last.gather


def parse_twiml(status: int, body: str) -> Heard:
    heard = Heard(status)
    if status != 200:
        return heard
    root = ET.fromstring(body)
    assert root.tag == "Response", f"not TwiML: {body[:200]}"
    for verb in root:
        if verb.tag == "Say":
            heard.said.append((verb.text or "").strip())
        elif verb.tag == "Gather":
            heard.gather = dict(verb.attrib)
            heard.said.extend((say.text or "").strip() for say in verb.iter("Say"))
        elif verb.tag == "Redirect":
            heard.redirect = (verb.text or "").strip()
        elif verb.tag == "Dial":
            heard.dial_action = verb.attrib.get("action")
            number = verb.find("Number")
            heard.dial = (cast(str, number.text) if number is not None else verb.text or "").strip()  # a <Number> holds one
        elif verb.tag == "Hangup":
            heard.hung_up = True
    return heard


class Texter(_TwilioPoster):
    """Someone texting the line, as Twilio posts each message: signed, with a MessageSid of its own."""

    def __init__(
        self,
        transport: Transport,
        auth_token: str,
        base_url: str,
        from_number: str = "+447700900001",
        to_number: str = "+442079460000",
        account_sid: str = "AC" + "0" * 32,
        extra_params: dict[str, str] | None = None,
    ) -> None:
        super().__init__(transport, auth_token, from_number, to_number, account_sid, extra_params)
        self.url = urljoin(base_url.rstrip("/") + "/", "/twilio/sms")
        self.last_params: dict[str, str] = {}
        self.answered_with: list[str] = []  # <Message> bodies in the webhook's own answer, if any

    def send(self, body: str, message_sid: str | None = None, **extra: str) -> int:
        """Text `body` to the line; the status code of the webhook's answer."""
        params = {
            "MessageSid": message_sid or "SM" + uuid.uuid4().hex,
            "AccountSid": self.account_sid,
            "From": self.from_number,
            "To": self.to_number,
            "Body": body,
            "NumMedia": "0",
            **self.extra_params,
            **extra,
        }
        self.last_params = params
        return self._post(params)

    def resend_last(self) -> int:
        """Post the last message again, as Twilio does when it retries a webhook."""
        return self._post(self.last_params)

    def _post(self, params: dict[str, str]) -> int:
        status, body = self._post_signed(self.url, params)
        self.answered_with = []
        if status == 200:
            root = ET.fromstring(body)
            assert root.tag == "Response", f"not TwiML: {body[:200]}"
            self.answered_with = [(message.text or "").strip() for message in root.iter("Message")]
        return status
