"""The console's forms: what staff may type, checked, with messages in the design system's words."""

from datetime import date
from typing import Any

from flask_wtf import FlaskForm
from wtforms import Form, PasswordField, RadioField, SelectField, StringField, TextAreaField
from wtforms.fields.choices import SelectChoice
from wtforms.validators import DataRequired, InputRequired, Length, Optional, Regexp, StopValidation, ValidationError

from ivr.console.conversations import OUTCOMES
from ivr.console.languages import console_languages
from ivr.records.follow_ups import KIND_NAMES, NOTE_MAX_LENGTH

OUTCOME_NAMES = {
    "choice_recorded": "Choice recorded",
    "checked": "Choice checked",
    "verification_failed": "Verification failed",
    "transferred": "Transferred to staff",
    "callback_requested": "Call back requested",
    "abandoned": "Abandoned",
}
CHANNEL_NAMES = {"voice": "Call", "sms": "Text"}
YEARS = (1900, 2100)  # dates staff may filter by: anything else is a typing slip


class DateInputField(StringField):
    """A date typed as day, month and year in three boxes (the design system's date input).

    Reads NAME-day, NAME-month and NAME-year; an empty date is None, a partial or impossible one an error.
    """

    PARTS = ("day", "month", "year")

    def process(self, formdata: Any, data: Any = None, extra_filters: Any = None) -> None:
        self.process_errors = []
        self.first_wrong_part = None
        self.data: date | None = None
        self.parts = {part: "" for part in self.PARTS}
        if formdata is None:
            return
        self.parts = {part: (formdata.get(f"{self.name}-{part}") or "").strip()[:8] for part in self.PARTS}
        given = [part for part in self.PARTS if self.parts[part]]
        if not given:
            return
        label = self.label.text
        missing = [part for part in self.PARTS if not self.parts[part]]
        if missing:
            self.process_errors.append(f"{label} must include a {' and '.join(missing)}")
            self.first_wrong_part = missing[0]
            return
        if (
            not all(value.isascii() and value.isdigit() for value in self.parts.values())
            or len(self.parts["year"]) != 4
        ):
            self.process_errors.append(f"{label} must be a real date, for example 27 3 2026")
            return
        try:
            typed = date(int(self.parts["year"]), int(self.parts["month"]), int(self.parts["day"]))
        except ValueError:
            typed = None
        if typed is None or not YEARS[0] <= typed.year <= YEARS[1]:
            self.process_errors.append(f"{label} must be a real date, for example 27 3 2026")
            return
        self.data = typed

    first_wrong_part: str | None = None  # the box to mark, when one is missing; otherwise all are

    @property
    def error_anchor(self) -> str:
        return f"{self.id}-{self.first_wrong_part or 'day'}"


class ChoiceField(SelectField):
    """A select whose value must be one of its options; the message names what to do."""

    def pre_validate(self, form: Form) -> None:
        if self.data not in {choice.value for choice in self.choices}:
            raise ValidationError(f"Select {self.label.text.lower()} from the list")


def _choices(names: dict[str, str], everything: str | None = None) -> list[SelectChoice]:
    options = {"": everything, **names} if everything is not None else names
    return [SelectChoice(value, label) for value, label in options.items()]


def stripped(value: str | None) -> str | None:
    """A filter: what was typed, without spaces around it."""
    return value.strip() if value else value


class RadiosField(RadioField):
    """Radios whose answer must be one of the options; `message` says what to select when it is not.

    Without `options`, the page sets `choices` (SelectChoice) for each request before validating.
    """

    def __init__(self, label: str, message: str, options: dict[str, str] | None = None, **kwargs: Any) -> None:
        super().__init__(label, choices=_choices(options or {}), validate_choice=False, **kwargs)
        self.message = message

    def pre_validate(self, form: Form) -> None:
        if self.data not in {choice.value for choice in self.choices}:
            raise StopValidation(self.message)


class ConversationFilterForm(Form):
    """Filters in the query string (a GET form): no CSRF token, nothing changes."""

    channel = ChoiceField("Channel", choices=_choices(CHANNEL_NAMES, "Calls and texts"), default="")
    outcome = ChoiceField(
        "Outcome", choices=_choices({name: OUTCOME_NAMES[name] for name in OUTCOMES}, "Any outcome"), default=""
    )
    started_from = DateInputField("Start date")
    started_to = DateInputField("End date")
    language = ChoiceField(
        "Language",
        choices=_choices({code: language.label for code, language in console_languages().items()}, "Any language"),
        default="",
    )
    caller_ending = StringField(
        "Last digits of the caller's number",
        validators=[Optional(), Regexp(r"^[0-9]{3,4}$", message="Enter the last 3 or 4 digits of the caller's number")],
        filters=[lambda value: value.replace(" ", "") if value else value],
    )

    def validate_started_to(self, field: DateInputField) -> None:
        if field.data and self.started_from.data and field.data < self.started_from.data:
            raise ValidationError("End date must be the same as or after the start date")


class FollowUpFilterForm(Form):
    status = ChoiceField(
        "Status", choices=_choices({"open": "Open", "resolved": "Resolved", "all": "Open and resolved"}), default="open"
    )
    kind = ChoiceField("Kind", choices=_choices(KIND_NAMES, "Every kind"), default="")


class SignInForm(FlaskForm):
    email = StringField("Email address", validators=[InputRequired("Enter your email address"), Length(max=254)])
    password = PasswordField("Password", validators=[InputRequired("Enter your password"), Length(max=1000)])


class NoteForm(FlaskForm):
    note = TextAreaField(
        "Add a note",
        validators=[
            DataRequired("Enter a note"),
            Length(max=NOTE_MAX_LENGTH, message=f"A note must be {NOTE_MAX_LENGTH} characters or fewer"),
        ],
        filters=[stripped],
    )


class AssignForm(FlaskForm):
    """Who takes a follow-up on: the choices are set per request, from the staff who may act on it."""

    assignee = SelectField(
        "Give it to a colleague",
        choices=[],
        validators=[InputRequired("Choose a colleague to give it to")],
        validate_choice=False,
    )

    def validate_assignee(self, field: SelectField) -> None:
        offered = {choice.value for choice in field.choices if choice.value}
        if field.data not in offered:
            raise ValidationError("Choose a colleague to give it to")


class ActionForm(FlaskForm):
    """A button that changes something: only its CSRF token to check."""


def error_list(form: Form) -> list[dict[str, str]]:
    """The form's errors as the error summary lists them, each linking to its field."""
    found = []
    for field in form:
        if field.errors:
            anchor = getattr(field, "error_anchor", field.id)
            found.append({"text": str(field.errors[0]), "href": f"#{anchor}"})
    return found
