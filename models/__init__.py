"""SQLModel tables of Opt-Out Line; importing this package registers every table."""

from sqlalchemy import Table
from sqlmodel import SQLModel

from models.choice import ChoiceEvent, ChoiceStatus, CurrentChoice
from models.conversation import Conversation, ConversationStep
from models.follow_up import FollowUp, FollowUpNote
from models.identity_attempt import IdentityAttempt
from models.national_check import NationalCheckReply, NationalCheckRequest
from models.one_time_code import OneTimeCode
from models.outbound_message import OutboundMessage
from models.person import Person
from models.register_run import RegisterRun
from models.staff import AuditEntry, StaffSignInAttempt, StaffUser
from models.text_block import TextBlock
from models.time import utcnow

__all__ = [
    "AuditEntry",
    "ChoiceEvent",
    "ChoiceStatus",
    "Conversation",
    "ConversationStep",
    "CurrentChoice",
    "FollowUp",
    "FollowUpNote",
    "IdentityAttempt",
    "NationalCheckReply",
    "NationalCheckRequest",
    "OneTimeCode",
    "OutboundMessage",
    "Person",
    "RegisterRun",
    "StaffSignInAttempt",
    "StaffUser",
    "TextBlock",
    "table_of",
    "utcnow",
]


def table_of(model: type[SQLModel]) -> Table:
    """A table model's Table, for Core statements (insert of many rows, plain selects)."""
    return model.__table__  # type: ignore[attr-defined]  # set by SQLAlchemy's mapping; SQLModel's types omit it
