"""The outbox: texts are written in the caller's transaction, then sent through the Twilio REST client by a
worker (`flask outbox send --watch`), never by a web request, so a slow Twilio never holds up a caller.

A text is sent only while it is pending and claimed by one sender, so a repeated send does nothing;
a failed send is retried with backoff and, after the give-up time, becomes a follow-up for staff.
A send whose answer never came (a timeout) may have reached Twilio: before trying again, the worker
asks Twilio whether the text is there, so a text is never sent twice. Nothing is dropped silently:
without a Twilio account a text is kept as not_sent and logged masked.
"""

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

import psycopg
from sqlalchemy import func, or_
from sqlalchemy import text as sql
from sqlmodel import Session, col, select
from twilio.base.exceptions import TwilioRestException
from twilio.http.http_client import TwilioHttpClient
from twilio.rest import Client

from ivr.db import Database
from ivr.records.follow_ups import raise_follow_up
from ivr.records.gsm import for_sending
from ivr.records.phone_numbers import mask_phone_number
from ivr.settings import Settings
from models import OutboundMessage, TextBlock, utcnow

log = logging.getLogger(__name__)

BLOCKED_REASON = "The number has texted STOP (or the like) to its network; our texts cannot reach it."
TWILIO_UNSUBSCRIBED_RECIPIENT = "21610"  # Twilio's error for a number that has blocked the sender
CLAIM_LEASE = timedelta(minutes=2)  # a sender that dies mid-send frees its texts after this
RATE_LIMITED_PAUSE = timedelta(seconds=60)  # after Twilio answers 429, the least wait before the next try
# Twilio's clock and ours may differ, and its dates are to the second: a text it lists as created this much
# before ours was written may still be ours.
CLOCK_MARGIN = timedelta(minutes=1)
# Our own error code for a send whose answer never came: it may have reached Twilio.
NO_ANSWER = "no_answer"
NOTIFY_CHANNEL = "outbox"  # PostgreSQL: queuing a text wakes the workers at once
FINAL_STATUSES = frozenset({"delivered", "undelivered", "failed", "not_sent", "blocked"})
# Twilio's message statuses, in the order a message moves through them.
STATUS_ORDER = {
    "pending": 0,
    "sending": 1,
    "accepted": 2,
    "scheduled": 2,
    "queued": 3,
    "sending_provider": 4,
    "sent": 5,
    "delivered": 6,
    "undelivered": 6,
    "failed": 6,
    "read": 6,
}


@dataclass(frozen=True)
class Text:
    """A text to queue: `masked_body` is what may be stored and logged once it has gone."""

    idempotency_key: str
    purpose: str
    to_number: str
    body: str
    masked_body: str
    conversation_id: int | None = None
    give_up_at: datetime | None = None  # when the text stops being of use, if it ever does


@dataclass(frozen=True)
class SendReport:
    sent: int = 0
    retrying: int = 0
    failed: int = 0
    rate_limited: bool = False  # Twilio said 429: the rest waits

    @property
    def busy(self) -> bool:
        """Whether this round did anything, so another may find more at once."""
        return bool(self.sent or self.retrying or self.failed)


class Outbox:
    def __init__(self, settings: Settings, database: Database, number_hash: Callable[[str], str]) -> None:
        self.settings = settings
        self.database = database
        self.number_hash = number_hash
        # Texts this sender claimed but could not finish because the database went away mid-round: its next
        # round carries on with them, rather than leave them to wait out their lease.
        self._unfinished: list[OutboundMessage] = []
        self._unfinished_lock = threading.Lock()

    def queue(self, session: Session, text: Text) -> OutboundMessage | None:
        """Write the text in the caller's transaction; None if a text with this key was queued before."""
        existing = session.exec(
            select(OutboundMessage).where(OutboundMessage.idempotency_key == text.idempotency_key)
        ).first()
        if existing is not None:
            return None
        message = OutboundMessage(
            idempotency_key=text.idempotency_key,
            purpose=text.purpose,
            to_number=text.to_number,
            body=for_sending(text.body),
            masked_body=for_sending(text.masked_body),
            conversation_id=text.conversation_id,
            give_up_at=text.give_up_at,
        )
        if self.is_blocked(session, text.to_number):
            message.status = "blocked"
            message.body = message.masked_body
            message.last_error = BLOCKED_REASON
            log.warning("Text not sent: the %s has blocked our texts", mask_phone_number(text.to_number))
            session.add(message)
            session.flush()
            _raise_failed_text(session, message)
            return message
        if not self.settings.can_send_texts:
            message.status = "not_sent"
            message.body = message.masked_body
            message.last_error = "No Twilio account is configured; the text is kept in the local outbox only."
            log.info(
                "Text not sent (no Twilio account) to %s: %s", mask_phone_number(text.to_number), text.masked_body
            )
        session.add(message)
        session.flush()
        # The receipt names our row too, so it finds the text even before its SID is stored.
        message.status_callback_url = self._status_callback_url(message.id)
        if message.status == "pending" and not self.database.is_sqlite:
            session.execute(sql("SELECT pg_notify(:channel, '')"), {"channel": NOTIFY_CHANNEL})
        return message

    # ---- Numbers that told their network to stop our texts ---------------------------------

    def is_blocked(self, session: Session, number: str) -> bool:
        block = session.get(TextBlock, self.number_hash(number))
        return block is not None and block.blocked

    def record_network_word(self, session: Session, number: str, blocked: bool, word: str) -> bool:
        """Keep what the number's network was told (STOP or START); True if that changed anything."""
        block = session.get(TextBlock, self.number_hash(number), with_for_update=True)
        if block is None:
            if not blocked:
                return False
            block = TextBlock(number_hash=self.number_hash(number), number_last_digits=number[-4:], word=word)
            session.add(block)
        elif block.blocked == blocked:
            return False
        block.blocked = blocked
        block.word = word[:16]
        block.changed_at = utcnow()
        session.flush()
        return True

    def _status_callback_url(self, message_id: int | None) -> str | None:
        base = self.settings.public_base_url
        return f"{base.rstrip('/')}/twilio/sms/status?outbound={message_id}" if base else None

    # ---- Sending ---------------------------------------------------------------------------

    def send_due(self, ids: list[int] | None = None, limit: int = 50) -> SendReport:
        """Send pending texts whose time has come (only `ids`, when given)."""
        if not self.settings.can_send_texts:
            return SendReport()
        with self._unfinished_lock:
            unfinished, self._unfinished = self._unfinished, []
        now = utcnow()
        # One no longer of use is left to its lease: the claim that follows marks it failed.
        claimed = [message for message in unfinished if message.give_up_at is None or message.give_up_at > now]
        try:
            claimed += self._claim(ids, limit)
        except Exception:
            self._keep_unfinished(claimed)
            raise
        sent = retrying = failed = 0
        client = self._client() if claimed else None
        for position, message in enumerate(claimed):
            try:
                if not self._still_claimed(message):
                    continue  # its lease ran out and another sender has it now
            except Exception:
                self._keep_unfinished(claimed[position:])
                raise
            try:
                outcome = self._send_one(client, message)
            except Exception:
                # The database went away mid-send: the text may have reached Twilio (only its recording
                # failed), so the next try asks Twilio first; the rest of the round was not tried.
                message.error_code = NO_ANSWER
                self._keep_unfinished(claimed[position:])
                raise
            sent += outcome == "sent"
            retrying += outcome in ("retrying", "rate_limited")
            failed += outcome == "failed"
            if outcome == "rate_limited":
                # The account is over Twilio's rate: the rest of this round waits too.
                self._release(claimed[position + 1 :], RATE_LIMITED_PAUSE)
                return SendReport(sent, retrying, failed, rate_limited=True)
        return SendReport(sent, retrying, failed)

    def _keep_unfinished(self, messages: list[OutboundMessage]) -> None:
        with self._unfinished_lock:
            self._unfinished = messages + self._unfinished

    def _still_claimed(self, message: OutboundMessage) -> bool:
        """Whether the text is still being sent by us: each claim counts an attempt, so another's changes it."""
        with self.database.transaction() as session:
            row = session.exec(
                select(OutboundMessage.status, OutboundMessage.attempts).where(OutboundMessage.id == message.id)
            ).first()
        return row is not None and tuple(row) == ("sending", message.attempts)

    def next_due_in(self) -> timedelta | None:
        """How long until the earliest pending text is due (zero if one is due now); None if none is pending."""
        with self.database.transaction() as session:
            earliest = session.exec(
                select(func.min(OutboundMessage.next_attempt_at)).where(
                    or_(col(OutboundMessage.status) == "pending", col(OutboundMessage.status) == "sending")
                )
            ).one()
        if earliest is None:
            return None
        if earliest.tzinfo is None:
            earliest = earliest.replace(tzinfo=utcnow().tzinfo)
        return max(earliest - utcnow(), timedelta(0))

    def watch(self, stop: threading.Event, idle_wait: float = 5.0, on_round: Callable[[SendReport], None] | None = None) -> None:
        """The worker: send what is due, round after round, until `stop` is set.

        Between rounds it waits until the next text is due, at most `idle_wait` seconds; on PostgreSQL a
        newly queued text wakes it at once (LISTEN/NOTIFY), on SQLite it looks again every half second.
        A failure (the database or Twilio out of reach) is logged and the worker carries on.
        """
        listener = _Listener(self.database.url) if not self.database.is_sqlite else None
        try:
            if listener is not None:
                listener.listen()  # before the first look, so no text queued meanwhile goes unnoticed
            while not stop.is_set():
                try:
                    report = self.send_due()
                    if on_round is not None:
                        on_round(report)
                    if report.busy and not report.rate_limited:
                        continue
                    due_in = self.next_due_in()
                except Exception as error:
                    log.error("Sending texts failed (%s); trying again shortly", type(error).__name__)
                    due_in = None
                wait = idle_wait if due_in is None else min(due_in.total_seconds(), idle_wait)
                if listener is not None:
                    listener.wait(wait, stop)
                else:
                    stop.wait(min(wait, 0.5))
        finally:
            if listener is not None:
                listener.close()

    def _release(self, messages: list[OutboundMessage], pause: timedelta) -> None:
        """Hand claimed texts back, untried, to be sent after `pause`."""
        if not messages:
            return
        with self.database.transaction() as session:
            for message in messages:
                row = session.get(OutboundMessage, message.id, with_for_update=True)
                if row is not None and row.status == "sending":
                    row.status = "pending"
                    row.attempts = max(row.attempts - 1, 0)
                    row.next_attempt_at = utcnow() + pause

    def _claim(self, ids: list[int] | None, limit: int) -> list[OutboundMessage]:
        """Mark due texts as being sent by us, so no other sender sends them too."""
        now = utcnow()
        with self.database.transaction() as session:
            query = (
                select(OutboundMessage)
                .where(
                    or_(col(OutboundMessage.status) == "pending", col(OutboundMessage.status) == "sending"),
                    OutboundMessage.next_attempt_at <= now,
                    col(OutboundMessage.twilio_sid).is_(None),  # Twilio has it already
                )
                .order_by(col(OutboundMessage.id))
                .limit(limit)
                .with_for_update(skip_locked=True)
            )
            if ids is not None:
                query = query.where(col(OutboundMessage.id).in_(ids))
            claimed = []
            for message in session.exec(query).all():
                if message.give_up_at is not None and message.give_up_at <= now:
                    message.status = "failed"
                    message.body = message.masked_body
                    message.last_error = "Not sent in time to be of use."
                    message.updated_at = now
                    continue
                claimed.append(message)
            for message in claimed:
                if message.status == "sending":
                    # Its sender died (or lost the database) mid-send, so it may have reached Twilio: ask first.
                    message.error_code = NO_ANSWER
                message.status = "sending"
                message.attempts += 1
                message.next_attempt_at = now + CLAIM_LEASE
                message.updated_at = now
            session.flush()
            for message in claimed:
                session.expunge(message)
        return claimed

    def _client(self) -> Client:
        http_client = TwilioHttpClient(timeout=self.settings.twilio_timeout_seconds)
        client = Client(self.settings.twilio_account_sid, self.settings.twilio_auth_token, http_client=http_client)
        if self.settings.twilio_api_base_url:
            client.api.base_url = self.settings.twilio_api_base_url
        return client

    def _send_one(self, client: Client | None, message: OutboundMessage) -> str:
        assert client is not None
        if message.error_code == NO_ANSWER:
            try:
                found = self._find_at_twilio(client, message)
            except Exception as error:
                return self._after_failure(
                    message, f"Could not ask Twilio about an earlier try: {type(error).__name__}", NO_ANSWER, False
                )
            if found is not None:
                log.info("Text %s had reached Twilio as %s before; not sending it again", message.id, found[0])
                return self._record_sent(message, *found)
        extra = {"status_callback": message.status_callback_url} if message.status_callback_url else {}
        try:
            sent = client.messages.create(
                to=message.to_number, from_=self.settings.twilio_from_number, body=message.body, **extra
            )
        except TwilioRestException as error:
            if error.status == 429:
                self._after_failure(
                    message, "Twilio answered 429 (too many requests)", str(error.code or ""), False, RATE_LIMITED_PAUSE
                )
                return "rate_limited"
            permanent = 400 <= error.status < 500
            code = str(error.code or "")
            if code == TWILIO_UNSUBSCRIBED_RECIPIENT:
                with self.database.transaction() as session:
                    self.record_network_word(session, message.to_number, True, "21610")
            return self._after_failure(message, f"Twilio answered {error.status}", code, permanent)
        except Exception as error:
            # A timeout or a dropped connection: the text may have reached Twilio; the next try asks first.
            return self._after_failure(message, f"No answer from Twilio: {type(error).__name__}", NO_ANSWER, False)
        return self._record_sent(message, sent.sid, sent.status or "queued")

    def _record_sent(self, message: OutboundMessage, sid: str, status: str) -> str:
        with self.database.transaction() as session:
            row = session.get(OutboundMessage, message.id, with_for_update=True)
            assert row is not None
            if row.twilio_sid is None:
                row.twilio_sid = sid
            row.status = _forward_status(row.status, status)
            if row.status == "sending":  # a receipt may have moved it on already
                row.status = "queued"
            row.body = row.masked_body  # the provider has it now; keep no code at rest
            row.last_error = None
            row.error_code = None
            row.updated_at = utcnow()
        log.info("Text %s handed to Twilio as %s", message.id, sid)
        return "sent"

    def _find_at_twilio(self, client: Client, message: OutboundMessage) -> tuple[str, str] | None:
        """The SID and status of this text at Twilio, if an earlier try that got no answer did reach it.

        The same words often go to one number more than once (a reply, a confirmation), so only a text sent
        after this one was written, and not already known as another of ours, can be it.
        """
        written = message.created_at if message.created_at.tzinfo else message.created_at.replace(tzinfo=utcnow().tzinfo)
        candidates = [
            found
            for found in client.messages.list(to=message.to_number, date_sent_after=written - timedelta(days=1), limit=50)
            if found.body == message.body
            and found.from_ in (None, self.settings.twilio_from_number)
            and (found.date_created is None or found.date_created >= written - CLOCK_MARGIN)
        ]
        if not candidates:
            return None
        with self.database.transaction() as session:
            known = set(
                session.exec(
                    select(OutboundMessage.twilio_sid).where(
                        col(OutboundMessage.twilio_sid).in_([found.sid for found in candidates])
                    )
                ).all()
            )
        for found in reversed(candidates):  # Twilio lists the newest first: take the earliest unclaimed
            if found.sid not in known:
                return found.sid, found.status or "queued"
        return None

    def _after_failure(
        self, message: OutboundMessage, reason: str, code: str | None, permanent: bool, least_wait: timedelta = timedelta(0)
    ) -> str:
        now = utcnow()
        with self.database.transaction() as session:
            row = session.get(OutboundMessage, message.id, with_for_update=True)
            assert row is not None
            row.last_error = reason
            row.error_code = code
            row.updated_at = now
            give_up_at = row.give_up_at or row.created_at + timedelta(hours=self.settings.text_give_up_hours)
            if permanent or now >= give_up_at:
                row.status = "failed"
                row.body = row.masked_body
                _raise_failed_text(session, row)
                log.warning("Text %s failed for good: %s", row.id, reason)
                return "failed"
            row.status = "pending"
            row.next_attempt_at = now + max(retry_delay(row.attempts), least_wait)
        log.warning("Text %s not sent (%s); will retry", message.id, reason)
        return "retrying"

    # ---- Delivery receipts -------------------------------------------------------------------

    def apply_receipt(self, twilio_sid: str, status: str, error_code: str | None, message_id: int | None = None) -> bool:
        """A delivery receipt from Twilio, in a transaction of its own."""
        with self.database.transaction() as session:
            return self.record_status(session, twilio_sid, status, error_code, message_id)

    def record_status(
        self, session: Session, twilio_sid: str, status: str, error_code: str | None, message_id: int | None = None
    ) -> bool:
        """Apply a Twilio status callback; late or repeated receipts never move a text backwards.

        `message_id` is our row's id from the callback URL: a receipt that overtakes the answer to the send
        (or follows a send whose answer was lost) still finds its text, and tells us its SID.
        """
        if status not in STATUS_ORDER:
            return False
        row = session.exec(
            select(OutboundMessage).where(OutboundMessage.twilio_sid == twilio_sid).with_for_update()
        ).first()
        if row is None and message_id is not None:
            # Locked by id alone: a sender recording this very SID may hold the row, and once it commits the
            # row must still be found (with "twilio_sid IS NULL" in the query the receipt would be lost).
            row = session.exec(
                select(OutboundMessage).where(OutboundMessage.id == message_id).with_for_update()
            ).first()
            if row is not None and row.twilio_sid not in (None, twilio_sid):
                row = None  # a receipt naming our id cannot take over a text that has its own SID
            if row is not None and row.twilio_sid is None:
                row.twilio_sid = twilio_sid
                if row.error_code == NO_ANSWER:
                    row.error_code = None
                if row.status == "pending":  # an earlier try reached Twilio after all: never send it again
                    row.status = "sending"
                row.body = row.masked_body
        if row is None:
            return False
        new_status = _forward_status(row.status, status)
        if new_status == row.status:
            return False
        row.status = new_status
        row.error_code = error_code or row.error_code
        row.updated_at = utcnow()
        if new_status in ("undelivered", "failed"):
            _raise_failed_text(session, row)
        return True


def _forward_status(current: str, reported: str) -> str:
    if current in FINAL_STATUSES:
        return current
    if STATUS_ORDER.get(reported, -1) <= STATUS_ORDER.get(current, -1):
        return current
    return reported


def retry_delay(attempts: int) -> timedelta:
    """Exponential backoff: 30 s, 1 min, 2 min ... capped at 30 min."""
    return timedelta(seconds=min(30 * 2 ** max(attempts - 1, 0), 1800))


def _raise_failed_text(session: Session, message: OutboundMessage) -> None:
    # A code or a reply is of no use by the time staff could act; a confirmation is owed to the person.
    if message.purpose != "choice_confirmation":
        return
    raise_follow_up(
        session,
        "failed_text",
        f"The confirmation text to the {mask_phone_number(message.to_number)} could not be sent or delivered"
        + (" (the number has blocked our texts)." if message.status == "blocked" else "."),
        conversation_id=message.conversation_id,
        phone=message.to_number,
    )


class _Listener:
    """A PostgreSQL connection that LISTENs for newly queued texts, so a worker wakes as soon as one is."""

    def __init__(self, url: str) -> None:
        self.url = url.replace("postgresql+psycopg://", "postgresql://", 1)
        self.connection: psycopg.Connection | None = None

    def listen(self) -> bool:
        """Connect and LISTEN, unless already listening; False (logged) if the database is out of reach."""
        if self.connection is not None and not self.connection.closed:
            return True
        try:
            self.connection = psycopg.connect(self.url, autocommit=True, connect_timeout=5)
            self.connection.execute(f"LISTEN {NOTIFY_CHANNEL}")
        except psycopg.Error as error:
            log.warning("Could not listen for new texts (%s); looking again shortly", type(error).__name__)
            self.close()
            return False
        return True

    def wait(self, seconds: float, stop: threading.Event) -> None:
        """Until a text is queued, `seconds` pass or `stop` is set, whichever comes first."""
        deadline = time.monotonic() + seconds
        if not self.listen():
            stop.wait(min(seconds, 1.0))
            return
        assert self.connection is not None
        try:
            while not stop.is_set() and (remaining := deadline - time.monotonic()) > 0:
                # In slices of at most a second, so that a stop is noticed soon.
                for _ in self.connection.notifies(timeout=min(remaining, 1.0), stop_after=1):
                    return
        except psycopg.Error as error:
            log.warning("Waiting for new texts failed (%s); looking again shortly", type(error).__name__)
            self.close()
            stop.wait(min(seconds, 1.0))

    def close(self) -> None:
        if self.connection is not None:
            self.connection.close()
            self.connection = None
