"""Retention: what the line said and heard, and the texts it delivered, are kept for a set age and then removed.

Choices and their history, follow-ups and the audit are kept: they are the organisation's record of what
people asked for and what staff did. A conversation's summary row stays (channel, times, outcome), so the
history can still say a choice came from a call; only its steps, its saved dialogue state and the
texts delivered go. An emptied state is also how a later run knows a conversation is done. Rows go in
small batches, each in its own transaction, so the line keeps
answering while a large backlog is removed.
"""

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import delete, func, select, update
from sqlmodel import col

from ivr.audit import record_audit
from ivr.db import Database
from models import Conversation, ConversationStep, OutboundMessage, utcnow

BATCH_SIZE = 1000


@dataclass(frozen=True)
class RetentionReport:
    cutoff: datetime
    conversations: int  # conversations whose steps were removed
    steps: int
    texts: int


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
        return _count(database, cutoff)
    conversations = steps = texts = 0
    while True:
        with database.transaction() as session:
            ids = session.scalars(
                select(Conversation.id)
                .where(Conversation.started_at < cutoff, Conversation.state != "")
                .order_by(Conversation.id)
                .limit(batch_size)
            ).all()
            if not ids:
                break
            in_batch = col(ConversationStep.conversation_id).in_(ids)
            steps += session.execute(delete(ConversationStep).where(in_batch)).rowcount  # type: ignore[attr-defined]
            session.execute(update(Conversation).where(col(Conversation.id).in_(ids)).values(state="", last_reply=""))
            conversations += len(ids)
        if on_batch:
            on_batch(RetentionReport(cutoff, conversations, steps, texts))
    while True:
        with database.transaction() as session:
            ids = session.scalars(
                select(OutboundMessage.id)
                .where(OutboundMessage.status == "delivered", OutboundMessage.created_at < cutoff)
                .order_by(OutboundMessage.id)
                .limit(batch_size)
            ).all()
            if not ids:
                break
            gone = session.execute(delete(OutboundMessage).where(col(OutboundMessage.id).in_(ids)))
            texts += gone.rowcount  # type: ignore[attr-defined]
        if on_batch:
            on_batch(RetentionReport(cutoff, conversations, steps, texts))
    report = RetentionReport(cutoff, conversations, steps, texts)
    with database.transaction() as session:
        record_audit(
            session,
            None,
            "applied_retention",
            "retention",
            detail=f"Older than {age.days} days: {steps} steps of {conversations} conversations and "
            f"{texts} delivered texts removed.",
        )
    return report


def _count(database: Database, cutoff: datetime) -> RetentionReport:
    with database.transaction() as session:
        old = select(Conversation.id).where(Conversation.started_at < cutoff, Conversation.state != "")
        conversations = session.scalar(select(func.count()).select_from(old.subquery())) or 0
        steps = session.scalar(
            select(func.count()).select_from(ConversationStep).where(col(ConversationStep.conversation_id).in_(old))
        ) or 0
        texts = session.scalar(
            select(func.count())
            .select_from(OutboundMessage)
            .where(OutboundMessage.status == "delivered", OutboundMessage.created_at < cutoff)
        ) or 0
    return RetentionReport(cutoff, conversations, steps, texts)
