"""Retention: what the line said and heard, and the texts it delivered, are kept for a set age and then removed.

Sign-in and identity-check attempts older than that go too (sign-in attempts are kept at least as long as
the sign-in limits look back, so a member of staff's usual network is still known).

Choices and their history, follow-ups and the audit are kept: they are the organisation's record of what
people asked for and what staff did. A conversation's summary row stays (channel, times, outcome), so the
history can still say a choice came from a call; only its steps, its saved dialogue state and the
texts delivered go. An emptied state is also how a later run knows a conversation is done: it is emptied
once its steps have gone, so a run stopped half way is finished by the next. Rows go in small batches,
each in a transaction of its own that removes at most `batch_size` rows however long a conversation
was, so the write lock is held only briefly and the line keeps answering while a large backlog is removed.
"""

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import cast

from sqlalchemy import delete, func, select, update
from sqlmodel import col

from ivr.db import Database
from ivr.records.audit import record_audit
from ivr.records.staff_accounts import KNOWN_NETWORK_AGE
from models import Conversation, ConversationStep, IdentityAttempt, OutboundMessage, StaffSignInAttempt, utcnow

BATCH_SIZE = 1000


AttemptTable = type[StaffSignInAttempt] | type[IdentityAttempt]


def _attempts_kept(age: timedelta) -> tuple[tuple[AttemptTable, timedelta], ...]:
    """How long each kind of attempt is kept: sign-in attempts at least as long as the sign-in limits look back."""
    return ((StaffSignInAttempt, max(age, KNOWN_NETWORK_AGE)), (IdentityAttempt, age))


@dataclass(frozen=True)
class RetentionReport:
    cutoff: datetime
    conversations: int  # conversations whose steps were removed
    steps: int
    texts: int
    attempts: int = 0  # sign-in and identity-check attempts


def apply_retention(
    database: Database,
    age: timedelta,
    dry_run: bool = False,
    batch_size: int = BATCH_SIZE,
    on_batch: Callable[[RetentionReport], None] | None = None,
) -> RetentionReport:
    """Remove the steps of conversations that began before now - `age`, and texts delivered before then."""
    if age <= timedelta(0):
        raise ValueError("the age must be more than zero")
    cutoff = utcnow() - age
    if dry_run:
        return _count(database, cutoff, age)
    conversations = steps = texts = 0

    def batch_done() -> None:
        if on_batch:
            on_batch(RetentionReport(cutoff, conversations, steps, texts))
        database.give_way()

    while ids := _old_conversations(database, cutoff, batch_size):
        while removed := _remove_steps(database, ids, batch_size):
            steps += removed
            batch_done()
        with database.transaction() as session:
            # A step written since (none should be) goes with the state, so an emptied state means no steps.
            in_batch = col(ConversationStep.conversation_id).in_(ids)
            steps += session.exec(delete(ConversationStep).where(in_batch)).rowcount
            emptied = session.exec(
                update(Conversation)
                .where(col(Conversation.id).in_(ids), col(Conversation.state) != "")
                .values(state="", last_reply="")
            )
            conversations += emptied.rowcount
        batch_done()
    while True:
        with database.transaction() as session:
            text_ids = session.scalars(
                select(col(OutboundMessage.id))
                .where(col(OutboundMessage.status) == "delivered", col(OutboundMessage.created_at) < cutoff)
                .order_by(col(OutboundMessage.id))
                .limit(batch_size)
            ).all()
            if not text_ids:
                break
            gone = session.exec(delete(OutboundMessage).where(col(OutboundMessage.id).in_(text_ids)))
            texts += gone.rowcount
        batch_done()
    attempts = 0
    for table, kept_for in _attempts_kept(age):
        while removed := _remove_old_attempts(database, table, utcnow() - kept_for, batch_size):
            attempts += removed
            batch_done()
    report = RetentionReport(cutoff, conversations, steps, texts, attempts)
    with database.transaction() as session:
        record_audit(
            session,
            None,
            "applied_retention",
            "retention",
            detail=f"Older than {age.days} days: {steps} steps of {conversations} conversations and "
            f"{texts} delivered texts removed; {attempts} sign-in and identity-check attempts removed.",
        )
    return report


def _old_conversations(database: Database, cutoff: datetime, limit: int) -> list[int]:
    """Conversations begun before the cutoff whose steps have not yet gone, oldest first."""
    with database.transaction() as session:
        ids = session.scalars(
            select(col(Conversation.id))
            .where(col(Conversation.started_at) < cutoff, col(Conversation.state) != "")
            .order_by(col(Conversation.id))
            .limit(limit)
        ).all()
        return cast(list[int], list(ids))  # read back from the table: none is None


def _remove_steps(database: Database, conversation_ids: list[int], limit: int) -> int:
    """Remove up to `limit` steps of these conversations, in one transaction; how many went."""
    with database.transaction() as session:
        step_ids = session.scalars(
            select(col(ConversationStep.id)).where(col(ConversationStep.conversation_id).in_(conversation_ids)).limit(limit)
        ).all()
        if not step_ids:
            return 0
        gone = session.exec(delete(ConversationStep).where(col(ConversationStep.id).in_(step_ids)))
        return gone.rowcount


def _remove_old_attempts(database: Database, table: AttemptTable, before: datetime, limit: int) -> int:
    """Remove up to `limit` attempts made before `before`, in one transaction; how many went."""
    with database.transaction() as session:
        ids = session.scalars(select(col(table.id)).where(col(table.at) < before).order_by(col(table.id)).limit(limit)).all()
        if not ids:
            return 0
        return session.exec(delete(table).where(col(table.id).in_(ids))).rowcount


def _count(database: Database, cutoff: datetime, age: timedelta) -> RetentionReport:
    with database.transaction() as session:
        old = select(col(Conversation.id)).where(col(Conversation.started_at) < cutoff, col(Conversation.state) != "")
        conversations = session.scalar(select(func.count()).select_from(old.subquery())) or 0
        steps = session.scalar(
            select(func.count()).select_from(ConversationStep).where(col(ConversationStep.conversation_id).in_(old))
        ) or 0
        texts = session.scalar(
            select(func.count())
            .select_from(OutboundMessage)
            .where(col(OutboundMessage.status) == "delivered", col(OutboundMessage.created_at) < cutoff)
        ) or 0
        attempts = sum(
            session.scalar(select(func.count()).select_from(table).where(col(table.at) < utcnow() - kept_for)) or 0
            for table, kept_for in _attempts_kept(age)
        )
    return RetentionReport(cutoff, conversations, steps, texts, attempts)
