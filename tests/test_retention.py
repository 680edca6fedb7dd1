"""`flask retention apply`: conversation steps and delivered texts older than the retention age go, in
batches; choices and their history, follow-ups and the audit stay, and recent conversations are untouched."""

from datetime import timedelta

from sqlalchemy import func, update
from sqlmodel import select

from ivr.operations.retention import apply_retention
from models import (
    AuditEntry,
    ChoiceEvent,
    Conversation,
    ConversationStep,
    CurrentChoice,
    IdentityAttempt,
    OutboundMessage,
    StaffSignInAttempt,
    utcnow,
)
from tests.conftest import verify
from tests.test_voice_choices import reading


def _age_conversation(app, sid: str, days: int) -> None:
    """Move a conversation, its steps and its texts `days` into the past, as if it happened then."""
    then = utcnow() - timedelta(days=days)
    with app.extensions["database"].transaction() as session:
        conversation = session.exec(select(Conversation).where(Conversation.twilio_sid == sid)).one()
        session.execute(update(Conversation).where(Conversation.id == conversation.id).values(started_at=then))
        session.execute(update(ConversationStep).where(ConversationStep.conversation_id == conversation.id).values(at=then))
        session.execute(
            update(OutboundMessage).where(OutboundMessage.conversation_id == conversation.id).values(created_at=then)
        )


def _counts(db_session, sid: str) -> tuple[int, int, list[str]]:
    with reading(db_session) as session:
        conversation = session.exec(select(Conversation).where(Conversation.twilio_sid == sid)).one()
        steps = session.exec(
            select(func.count()).select_from(ConversationStep).where(ConversationStep.conversation_id == conversation.id)
        ).one()
        texts = session.exec(
            select(OutboundMessage.status).where(OutboundMessage.conversation_id == conversation.id)
        ).all()
    return conversation.id, steps, sorted(texts)


def _opt_out_by_phone(make_caller, person, twilio, db_session) -> str:
    caller = make_caller()
    caller.dial()
    caller.speak("opt out")  # named: read back the first time, already the choice on later calls
    verify(caller, person, twilio)
    caller.press("1")
    caller.hang_up()
    return caller.call_sid


def _mark_texts_delivered(app, sid: str) -> None:
    with app.extensions["database"].transaction() as session:
        conversation = session.exec(select(Conversation).where(Conversation.twilio_sid == sid)).one()
        session.execute(
            update(OutboundMessage).where(OutboundMessage.conversation_id == conversation.id).values(status="delivered")
        )


def test_old_steps_and_delivered_texts_go_while_the_choice_and_recent_calls_stay(
    app, make_caller, person, twilio, db_session, runner
):
    old_sid = _opt_out_by_phone(make_caller, person, twilio, db_session)
    recent_sid = _opt_out_by_phone(make_caller, person, twilio, db_session)
    _mark_texts_delivered(app, old_sid)
    _mark_texts_delivered(app, recent_sid)
    _age_conversation(app, old_sid, days=401)
    _age_conversation(app, recent_sid, days=399)
    old_id, old_steps, old_texts = _counts(db_session, old_sid)
    _, recent_steps, recent_texts = _counts(db_session, recent_sid)
    assert old_steps > 5 and old_texts == ["delivered", "delivered"]

    result = runner.invoke(args=["retention", "apply"])

    assert result.exit_code == 0, result.output
    assert f"Removed {old_steps} steps of 1 conversations and 2 delivered texts" in result.output
    assert _counts(db_session, old_sid) == (old_id, 0, [])
    assert _counts(db_session, recent_sid)[1:] == (recent_steps, recent_texts)
    with reading(db_session) as session:
        events = session.exec(select(ChoiceEvent).where(ChoiceEvent.nhs_number == person.nhs_number)).all()
        assert [event.conversation_id for event in events] == [old_id]  # the second call changed nothing
        assert session.get(CurrentChoice, person.nhs_number).status == "opted_out"
        audit = session.exec(select(AuditEntry).where(AuditEntry.action == "applied_retention")).one()
        assert f"{old_steps} steps of 1 conversations" in audit.detail

    again = runner.invoke(args=["retention", "apply"])
    assert "Removed 0 steps of 0 conversations and 0 delivered texts" in again.output


def test_texts_that_were_not_delivered_are_kept_for_staff(app, make_caller, person, twilio, db_session, runner):
    sid = _opt_out_by_phone(make_caller, person, twilio, db_session)
    with app.extensions["database"].transaction() as session:
        conversation = session.exec(select(Conversation).where(Conversation.twilio_sid == sid)).one()
        session.execute(
            update(OutboundMessage).where(OutboundMessage.conversation_id == conversation.id).values(status="undelivered")
        )
    _age_conversation(app, sid, days=500)

    runner.invoke(args=["retention", "apply"])

    assert _counts(db_session, sid)[1:] == (0, ["undelivered", "undelivered"])


def test_a_dry_run_counts_and_removes_nothing_and_the_age_can_be_set(app, make_caller, person, twilio, db_session, runner):
    sid = _opt_out_by_phone(make_caller, person, twilio, db_session)
    _mark_texts_delivered(app, sid)
    _age_conversation(app, sid, days=40)
    before = _counts(db_session, sid)

    dry = runner.invoke(args=["retention", "apply", "--older-than-days", "30", "--dry-run"])
    assert dry.exit_code == 0
    assert f"Would remove {before[1]} steps of 1 conversations and 2 delivered texts" in dry.output
    assert _counts(db_session, sid) == before

    untouched = runner.invoke(args=["retention", "apply"])  # 400 days by default
    assert "Removed 0 steps" in untouched.output
    runner.invoke(args=["retention", "apply", "--older-than-days", "30"])
    assert _counts(db_session, sid)[1:] == (0, [])


def test_many_conversations_go_in_small_batches(app, make_caller, person, twilio, db_session):
    sids = [_opt_out_by_phone(make_caller, person, twilio, db_session) for _ in range(5)]
    for sid in sids:
        _age_conversation(app, sid, days=401)
    batches = []

    report = apply_retention(app.extensions["database"], timedelta(days=400), batch_size=2, on_batch=batches.append)

    assert report.conversations == 5
    assert batches[-1].conversations == 5
    assert all(_counts(db_session, sid)[1] == 0 for sid in sids)
    # However many steps a conversation has, no one transaction removes more than a batch of rows.
    removed = [(batch.steps, batch.texts) for batch in batches]
    for (steps_before, texts_before), (steps_after, texts_after) in zip([(0, 0), *removed], removed, strict=False):
        assert steps_after - steps_before + texts_after - texts_before <= 2
    assert report.steps > 2 * len(sids), "each call left more steps than a batch"


def test_an_age_below_one_day_is_refused_with_one_line(runner):
    result = runner.invoke(args=["retention", "apply", "--older-than-days", "0"])
    assert result.exit_code == 1
    assert result.output.strip() == "Error: --older-than-days must be at least 1."


def _attempts(app) -> tuple[int, int]:
    with app.extensions["database"].transaction() as session:
        return (
            session.exec(select(func.count()).select_from(StaffSignInAttempt)).one(),
            session.exec(select(func.count()).select_from(IdentityAttempt)).one(),
        )


def test_old_sign_in_and_identity_check_attempts_go_and_recent_ones_stay(app, runner):
    """The tables that count attempts do not grow for ever; sign-in attempts stay as long as the sign-in
    limits look back (90 days), even under a shorter retention age."""
    now = utcnow()
    with app.extensions["database"].transaction() as session:
        for days in (1, 45, 100, 500):
            session.add(StaffSignInAttempt(email_hash="e", source_hash="s", succeeded=True, at=now - timedelta(days=days)))
            session.add(IdentityAttempt(nhs_number_hash="n", caller_hash="c", kind="details", at=now - timedelta(days=days)))
    assert _attempts(app) == (4, 4)

    dry = runner.invoke(args=["retention", "apply", "--older-than-days", "30", "--dry-run"])
    assert "and 5 old sign-in and identity-check attempts" in dry.output  # 2 sign-in (100, 500), 3 identity
    assert _attempts(app) == (4, 4)

    runner.invoke(args=["retention", "apply"])  # 400 days
    assert _attempts(app) == (3, 3)
    runner.invoke(args=["retention", "apply", "--older-than-days", "30"])
    assert _attempts(app) == (2, 1)
