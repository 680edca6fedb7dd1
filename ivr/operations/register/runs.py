"""Register runs as people read them: the staff console's list of runs (with the national reply each used) and of
the national checks sent, and what one run did, in a few lines."""

from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

from sqlmodel import Session, col, select

from models import NationalCheckReply, NationalCheckRequest, RegisterRun, StaffUser

SYSTEM_USER = "the system user"
SHORT_CHECKSUM = 12  # hex digits of a sha256 shown to people: enough to tell files apart by eye


@dataclass(frozen=True)
class NationalReplyUsed:
    """The national reply a run applied, as staff read it: the file, when it came and how old it was then."""

    received_at: datetime
    age_when_used: timedelta
    short_checksum: str
    file_name: str | None  # None when the reply's record is no longer there
    request: NationalCheckRequest | None  # the request it answered, whose file a manager may download

    @property
    def age_in_words(self) -> str:
        return age_in_words(self.age_when_used)


@dataclass(frozen=True)
class RegisterRunListing:
    """A register run as the staff console lists it."""

    run: RegisterRun
    by: str  # the staff user's email, or SYSTEM_USER
    national: NationalReplyUsed | None = None  # None: the run used our register only


@dataclass(frozen=True)
class NationalCheckListing:
    """A request sent to the national check and what has come back for it, for the staff console."""

    request: NationalCheckRequest
    replies: int
    error_replies: int
    last_received_at: datetime | None  # None: nothing back yet


def _plural(count: int, unit: str) -> str:
    return f"{count} {unit}{'' if count == 1 else 's'}"


def age_in_words(age: timedelta) -> str:
    """How old something was, in the words staff use ("3 hours", "1 day 2 hours"), rounded down, so a reply is
    never made to sound younger than it was."""
    minutes = max(int(age.total_seconds()) // 60, 0)
    days, hours, minutes = minutes // (24 * 60), minutes // 60 % 24, minutes % 60
    if days:
        return _plural(days, "day") + (f" {_plural(hours, 'hour')}" if hours else "")
    if hours:
        return _plural(hours, "hour") + (f" {_plural(minutes, 'minute')}" if minutes else "")
    return _plural(minutes, "minute") if minutes else "less than a minute"


def summary_lines(run: RegisterRun) -> list[str]:
    """What a run did, in a few lines for a person; never an NHS number."""
    if run.national_reply_sha256 is not None:
        return _national_summary_lines(run)
    if run.keep_unmatched:
        kept = f"kept {run.rows_kept:,} (including {run.kept_unmatched:,} with a missing or invalid NHS number)"
        withheld = f"withheld {run.withheld_opted_out:,} (opted out)"
    else:
        kept = f"kept {run.rows_kept:,}"
        withheld_total = run.withheld_opted_out + run.withheld_invalid
        withheld = (
            f"withheld {withheld_total:,} (opted out {run.withheld_opted_out:,}; "
            f"missing or invalid NHS number {run.withheld_invalid:,})"
        )
    if run.register_as_of is None:
        register = f"Register: no choices recorded yet, {run.register_opted_out:,} opted out."
    else:
        register = f"Register: choices up to {run.register_as_of:%Y-%m-%d %H:%M:%S} UTC, {run.register_opted_out:,} opted out."
    return [
        f"Read {run.rows_read:,} {'row' if run.rows_read == 1 else 'rows'}: {kept}; {withheld}.",
        register,
        f"Kept rows written to {run.output_name}; recorded as register run {run.id}.",
    ]


def _register_line(run: RegisterRun) -> str:
    if run.register_as_of is None:
        return f"Register: no choices recorded yet, {run.register_opted_out:,} opted out."
    return f"Register: choices up to {run.register_as_of:%Y-%m-%d %H:%M:%S} UTC, {run.register_opted_out:,} opted out."


def _national_summary_lines(run: RegisterRun) -> list[str]:
    national, both, not_in_request = run.withheld_national or 0, run.withheld_both or 0, run.withheld_not_in_request or 0
    withheld_total = run.withheld_opted_out + national + both + not_in_request + run.withheld_invalid
    received = f"{run.national_reply_received_at:%Y-%m-%d %H:%M:%S} UTC" if run.national_reply_received_at else "unknown"
    return [
        f"Read {run.rows_read:,} {'row' if run.rows_read == 1 else 'rows'}: kept {run.rows_kept:,}; withheld "
        f"{withheld_total:,} (national opt-out {national:,}; opted out with us {run.withheld_opted_out:,}; both {both:,}; "
        f"not in the national request {not_in_request:,}; missing or invalid NHS number {run.withheld_invalid:,}).",
        _register_line(run),
        f"National reply: sha256 {run.national_reply_sha256[:12] if run.national_reply_sha256 else ''}, received {received}.",
        f"Kept rows written to {run.output_name}; recorded as register run {run.id}.",
    ]


def list_register_runs(session: Session, limit: int = 100) -> list[RegisterRunListing]:
    """The latest register runs first, with who ran each and the national reply each used, for the staff console."""
    query = (
        select(RegisterRun, StaffUser.email)
        .outerjoin(StaffUser, col(RegisterRun.staff_user_id) == StaffUser.id)
        .order_by(col(RegisterRun.started_at).desc(), col(RegisterRun.id).desc())
        .limit(limit)
    )
    found = session.exec(query).all()
    replies = _replies_by_checksum(session, {run.national_reply_sha256 for run, _ in found if run.national_reply_sha256})
    return [RegisterRunListing(run, email or SYSTEM_USER, _national_reply_used(run, replies)) for run, email in found]


def _replies_by_checksum(
    session: Session, checksums: set[str]
) -> dict[str, list[tuple[NationalCheckReply, NationalCheckRequest]]]:
    if not checksums:
        return {}
    query = (
        select(NationalCheckReply, NationalCheckRequest)
        .join(NationalCheckRequest, col(NationalCheckReply.request_id) == NationalCheckRequest.id)
        .where(col(NationalCheckReply.sha256).in_(checksums))
    )
    replies: dict[str, list[tuple[NationalCheckReply, NationalCheckRequest]]] = {}
    for reply, request in session.exec(query).all():
        replies.setdefault(reply.sha256, []).append((reply, request))
    return replies


def _national_reply_used(
    run: RegisterRun, replies: dict[str, list[tuple[NationalCheckReply, NationalCheckRequest]]]
) -> NationalReplyUsed | None:
    """The reply a run applied: the run keeps its checksum and time received, which name the stored reply
    (`register apply` takes the latest reply with that checksum, so the same file received twice is told apart
    by the time)."""
    if run.national_reply_sha256 is None or run.national_reply_received_at is None:
        return None
    received_at = run.national_reply_received_at
    matches = replies.get(run.national_reply_sha256, [])
    stored = next(((reply, request) for reply, request in matches if reply.received_at == received_at), None)
    return NationalReplyUsed(
        received_at=received_at,
        age_when_used=run.started_at - received_at,
        short_checksum=run.national_reply_sha256[:SHORT_CHECKSUM],
        file_name=Path(stored[0].path).name if stored else None,
        request=stored[1] if stored else None,
    )


def list_national_checks(session: Session, limit: int = 20) -> list[NationalCheckListing]:
    """The latest requests sent to the national check first, with how many replies and error replies came back."""
    requests = session.exec(
        select(NationalCheckRequest)
        .order_by(col(NationalCheckRequest.created_at).desc(), col(NationalCheckRequest.id).desc())
        .limit(limit)
    ).all()
    ids = [request.id for request in requests]
    replies = session.exec(select(NationalCheckReply).where(col(NationalCheckReply.request_id).in_(ids))).all() if ids else []
    listings = []
    for request in requests:
        mine = [reply for reply in replies if reply.request_id == request.id]
        listings.append(
            NationalCheckListing(
                request,
                replies=sum(not reply.is_error for reply in mine),
                error_replies=sum(reply.is_error for reply in mine),
                last_received_at=max((reply.received_at for reply in mine), default=None),
            )
        )
    return listings
