"""Follow-ups: work the line hands to staff (call backs, callers who could not be verified, failed texts)."""

from sqlmodel import Session

from models import FollowUp

KINDS = ("callback", "unverified_caller", "failed_text", "network_stop", "proxy_request")


def raise_follow_up(
    session: Session,
    kind: str,
    detail: str = "",
    conversation_id: int | None = None,
    person_id: int | None = None,
    phone: str | None = None,
) -> FollowUp:
    if kind not in KINDS:
        raise ValueError(f"unknown follow-up kind {kind!r}")
    follow_up = FollowUp(kind=kind, detail=detail, conversation_id=conversation_id, person_id=person_id, phone=phone)
    session.add(follow_up)
    session.flush()
    return follow_up
