"""Register runs as people read them: the staff console's list of runs, and what one run did, in a few lines."""

from dataclasses import dataclass

from sqlmodel import Session, col, select

from models import RegisterRun, StaffUser

SYSTEM_USER = "the system user"


@dataclass(frozen=True)
class RegisterRunListing:
    """A register run as the staff console lists it."""

    run: RegisterRun
    by: str  # the staff user's email, or SYSTEM_USER


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
    """The latest register runs first, with who ran each, for the staff console."""
    query = (
        select(RegisterRun, StaffUser.email)
        .outerjoin(StaffUser, col(RegisterRun.staff_user_id) == StaffUser.id)
        .order_by(col(RegisterRun.started_at).desc(), col(RegisterRun.id).desc())
        .limit(limit)
    )
    return [RegisterRunListing(run, email or SYSTEM_USER) for run, email in session.exec(query).all()]
