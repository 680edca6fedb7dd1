"""Dates of birth as people key and text them: every real date in every supported form reads back as itself,
impossible dates are refused, and no text at all makes the parser fail."""

from datetime import date, timedelta

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from ivr.records.identity_format import parse_keyed_date_of_birth, parse_written_date_of_birth

TODAY = date.today()
FIXED_TODAY = date(2026, 3, 14)
EARLIEST = date(1900, 1, 1)
MONTH_ABBREVIATIONS = {9: ("Sep", "Sept")}


def month_names(day: date) -> list[str]:
    full = day.strftime("%B")
    return [full, full[:3], *MONTH_ABBREVIATIONS.get(day.month, ())]


def ordinal(n: int) -> str:
    suffix = "th" if 11 <= n % 100 <= 13 else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
    return f"{n}{suffix}"


def written_forms(day: date) -> list[str]:
    """Every way of writing a date the SMS line promises to read."""
    d, m, y = day.day, day.month, day.year
    numeric = [
        f"{d:02d}/{m:02d}/{y}",
        f"{d}/{m}/{y}",
        f"{d}-{m}-{y}",
        f"{d:02d}-{m:02d}-{y}",
        f"{d}.{m}.{y}",
        f"{d} {m} {y}",
        f"{d:02d} / {m:02d} / {y}",
        f"{d:02d}{m:02d}{y}",
    ]
    worded = []
    for month in month_names(day):
        worded += [
            f"{d} {month} {y}",
            f"{ordinal(d)} {month} {y}",
            f"{ordinal(d)} of {month} {y}",
            f"{d} {month}, {y}",
            f"{month} {d} {y}",
            f"{month} {d}, {y}",
            f"{month} {ordinal(d)}, {y}",
            f"{month}. {d} {y}",
        ]
    forms = numeric + worded
    return forms + [form.upper() for form in worded] + [form.lower() for form in worded] + [f"  {numeric[0]}  \n"]


dates_of_birth = st.dates(min_value=EARLIEST, max_value=TODAY)


@settings(max_examples=300, deadline=None)
@given(born=dates_of_birth)
@example(born=EARLIEST)
@example(born=TODAY)
@example(born=date(2000, 2, 29))
@example(born=date(1984, 9, 30))
def test_any_real_date_written_in_any_supported_form_parses_back_to_itself(born):
    for form in written_forms(born):
        assert parse_written_date_of_birth(form, TODAY) == born, form


@settings(max_examples=300, deadline=None)
@given(born=st.dates(min_value=date(FIXED_TODAY.year - 99, 1, 1), max_value=FIXED_TODAY))
@example(born=date(1927, 1, 1))
@example(born=date(2026, 1, 1))
@example(born=date(2000, 1, 1))
def test_a_two_digit_year_is_the_latest_such_year_not_in_the_future(born):
    for form in (f"{born:%d/%m/%y}", f"{born.day}-{born.month}-{born:%y}"):
        assert parse_written_date_of_birth(form, FIXED_TODAY) == born, form


@settings(max_examples=300, deadline=None)
@given(born=dates_of_birth)
@example(born=EARLIEST)
@example(born=TODAY)
def test_any_real_date_keyed_as_ddmmyyyy_parses_back_to_itself(born):
    assert parse_keyed_date_of_birth(born.strftime("%d%m%Y"), TODAY) == born


@settings(max_examples=500, deadline=None)
@given(day=st.integers(0, 40), month=st.integers(0, 15), year=st.integers(1000, 2999))
@example(day=29, month=2, year=1983)
@example(day=29, month=2, year=1900)
@example(day=31, month=12, year=1899)
@example(day=31, month=4, year=1984)
def test_a_numeric_date_is_read_exactly_when_it_is_a_real_date_from_1900_to_today(day, month, year):
    try:
        real: date | None = date(year, month, day)
    except ValueError:
        real = None
    if real is not None and not EARLIEST <= real <= TODAY:
        real = None
    assert parse_written_date_of_birth(f"{day:02d}/{month:02d}/{year}", TODAY) == real
    assert parse_keyed_date_of_birth(f"{day:02d}{month:02d}{year}", TODAY) == real
    if 1 <= month <= 12:
        worded = f"{day} {date(2000, month, 1):%B} {year}"
        assert parse_written_date_of_birth(worded, TODAY) == real, worded


@pytest.mark.parametrize(
    "impossible",
    [
        "31/02/1984",
        "29/02/1983",
        "30 February 2000",
        "00/01/1984",
        "32/01/1984",
        "01/13/1984",
        "01/00/1984",
        "31 April 1984",
        "31/12/1899",
        "1 January 1899",
        (TODAY + timedelta(days=1)).strftime("%d/%m/%Y"),
        f"{(TODAY + timedelta(days=1)).day} {(TODAY + timedelta(days=1)):%B %Y}",
        "01/01/3000",
        "1 Smarch 1984",
        "1 March",
        "March 1984",
        "1984",
        "1984-03-01 01/03/1984",
        "",
        "  ",
        "o1/o3/1984",
    ],
)
def test_impossible_or_incomplete_dates_are_none(impossible):
    assert parse_written_date_of_birth(impossible, TODAY) is None


@pytest.mark.parametrize(
    "impossible",
    ["31021984", "29021983", "00011984", "01131984", "31121899", "0103198", "010319840", "", "abcdefgh", "０１０３１９８４"],
)
def test_impossible_keyed_dates_are_none(impossible):
    assert parse_keyed_date_of_birth(impossible, TODAY) is None


def test_a_date_is_never_in_the_future_of_the_given_today():
    assert parse_written_date_of_birth("15/03/2026", FIXED_TODAY) is None
    assert parse_written_date_of_birth("14/03/2026", FIXED_TODAY) == FIXED_TODAY
    assert parse_keyed_date_of_birth("15032026", FIXED_TODAY) is None


@settings(max_examples=1000, deadline=None)
@given(text=st.text(max_size=300))
@example(text="1" * 10_000)
@example(text="01/03/1984" * 50)
@example(text="٠١/٠٣/١٩٨٤")
@example(text="１/３/１９８４")
@example(text="1st of the March 1984")
@example(text="99999999999999999999/1/1984")
def test_arbitrary_text_never_raises_and_gives_a_date_in_range_or_none(text):
    for parse in (parse_written_date_of_birth, parse_keyed_date_of_birth):
        found = parse(text, TODAY)
        assert found is None or (isinstance(found, date) and EARLIEST <= found <= TODAY)


@settings(max_examples=300, deadline=None)
@given(text=st.text(alphabet=st.sampled_from("0123456789/-. stndrhofJanuryFebMchApilMyJugSepOctNovD,"), max_size=40))
def test_date_like_text_never_raises(text):
    found = parse_written_date_of_birth(text, TODAY)
    assert found is None or EARLIEST <= found <= TODAY


@pytest.mark.parametrize(
    ("written", "locale"),
    [
        ("1 de marzo de 1984", "es_ES"),
        ("1 marzo 1984", "es_ES"),
        ("1 mar. 1984", "es_ES"),
        ("01 MARZO 1984", "es_ES"),
        ("1 مارس 1984", "ar_EG"),
        ("١ مارس ١٩٨٤", "ar_EG"),
        ("١/٣/١٩٨٤", "ar_EG"),
        ("1 March 1984", "es_ES"),  # English's month names are read in any language
        ("1 March 1984", "ar_EG"),
    ],
)
def test_a_month_named_in_the_conversations_language_is_read(written, locale):
    assert parse_written_date_of_birth(written, TODAY, locale) == date(1984, 3, 1)


def test_a_month_of_another_language_is_not_guessed_at():
    assert parse_written_date_of_birth("1 marzo 1984", TODAY) is None  # English: "marzo" is no month
    assert parse_written_date_of_birth("1 مارس 1984", TODAY, "es_ES") is None
