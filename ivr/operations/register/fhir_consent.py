"""The register as FHIR R4: one `Consent` resource per person with a choice, in a `collection` Bundle written entry
by entry.

The shape is NHS England's for the national data opt-out, the NDOP-Consent-1 profile (STU3, published by NHS
Digital in nhsconnect/FHIR-NOO-API: its element pages and Examples/Consent-Example-2.json), carried into R4 as NHS
England's R4 Consent profiles carry it (NHSDigital/ra-sandbox, RAConsentExample1: scope, provision.purpose and
policy as below), with the identifiers of the NHS England R4 profiles in place of NDOP's Spine reference URLs:

- status: `active` while an opt-out is in force, `inactive` once the person has opted back in ("consent_status");
- scope `patient-privacy`; category NDOP's own code, which tells a data opt-out from other consent records;
- patient and organization by identifier: the NHS number, and our ODS code (the opt-out is ours, not NHS
  England's: NDOP puts its own, X26, there);
- dateTime: when the choice was made; the source of the choice in NDOP's Extension-NDOP-OptOutSource-1;
- policy: the National Data Guardian's review, which set the opt-out's terms, as NDOP cites it; provision: a
  `deny` whose purpose is NDOP's SNOMED CT "Limiting access to confidential patient information".

No profile is claimed in `meta`: NDOP-Consent-1 is an STU3 profile, and this is R4.
"""

import json
import re
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, BinaryIO

from ivr.records.choices import RegisterEntry
from models import ChoiceStatus

NHS_NUMBER_SYSTEM = "https://fhir.nhs.uk/Id/nhs-number"
ODS_CODE_SYSTEM = "https://fhir.nhs.uk/Id/ods-organization-code"
OPT_OUT_SOURCE_EXTENSION = "https://fhir.nhs.uk/STU3/StructureDefinition/Extension-NDOP-OptOutSource-1"
OPT_OUT_SOURCE_SYSTEM = "https://fhir.nhs.uk/STU3/CodeSystem/NDOP-OptOutSource-1"
CATEGORY_SYSTEM = "https://fhir.nhs.uk/STU3/CodeSystem/NDOP-Categories-1"
CONSENT_SCOPE_SYSTEM = "http://terminology.hl7.org/CodeSystem/consentscope"
SNOMED_CT = "http://snomed.info/sct"
POLICY_AUTHORITY = "https://www.gov.uk/"
POLICY_URI = "https://www.gov.uk/government/uploads/system/uploads/attachment_data/file/535024/data-security-review.PDF"

STATUS_OF_CHOICE = {ChoiceStatus.OPTED_OUT: "active", ChoiceStatus.ALLOWED: "inactive"}
# NDOP's sources (OP online, GP, PFSP app, FN form on NHS.UK, CC call centre, PP paper) that fit ours: the line is
# a call centre by phone and by text; staff act on a phone call or a letter. None: no NDOP source fits.
_NDOP_SOURCES = {"call_centre": ("CC", "Call Centre"), "paper": ("PP", "Paper Process")}


@dataclass(frozen=True)
class Organisation:
    ods_code: str
    name: str


def _source_of(entry: RegisterEntry) -> tuple[str | None, str]:
    """The NDOP source code of a choice (None when none fits), and how it was made in our own words."""
    if entry.channel == "voice":
        return "call_centre", "By phone, on the telephone line"
    if entry.channel == "sms":
        return "call_centre", "By text message, on the text line"
    if entry.source == "letter":
        return "paper", "By staff, from a letter by post"
    if entry.source == "phone_call":
        return "call_centre", "By staff, on a phone call"
    return None, "By staff"


def _source_extension(source: tuple[str | None, str]) -> dict[str, Any]:
    kind, words = source
    concept: dict[str, Any] = {}
    if kind is not None:
        code, display = _NDOP_SOURCES[kind]
        concept["coding"] = [{"system": OPT_OUT_SOURCE_SYSTEM, "code": code, "display": display}]
    concept["text"] = words
    return {"url": OPT_OUT_SOURCE_EXTENSION, "valueCodeableConcept": concept}


def _fhir_instant(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat()


def consent_resource(entry: RegisterEntry, organisation: Organisation, resource_id: str) -> dict[str, Any]:
    """The Consent resource for one person's current choice."""
    return _consent(
        resource_id, entry.nhs_number, _fhir_instant(entry.recorded_at), entry.status, _source_of(entry), organisation
    )


def _consent(
    resource_id: str,
    nhs_number: str,
    date_time: str,
    status: ChoiceStatus,
    source: tuple[str | None, str],
    organisation: Organisation,
) -> dict[str, Any]:
    return {
        "resourceType": "Consent",
        "id": resource_id,
        "extension": [_source_extension(source)],
        "status": STATUS_OF_CHOICE[status],
        "scope": {"coding": [{"system": CONSENT_SCOPE_SYSTEM, "code": "patient-privacy", "display": "Privacy Consent"}]},
        "category": [{"coding": [{"system": CATEGORY_SYSTEM, "code": "NDOP"}], "text": "Data opt-out"}],
        "patient": {"identifier": {"system": NHS_NUMBER_SYSTEM, "value": nhs_number}},
        "dateTime": date_time,
        "organization": [
            {"identifier": {"system": ODS_CODE_SYSTEM, "value": organisation.ods_code}, "display": organisation.name}
        ],
        "policy": [{"authority": POLICY_AUTHORITY, "uri": POLICY_URI}],
        "provision": {
            "type": "deny",
            "purpose": [
                {"system": SNOMED_CT, "code": "370856009", "display": "Limiting access to confidential patient information"}
            ],
        },
    }


_HOLE = re.compile("\ue000(id|nhs_number|date_time)\ue000")  # private-use marks: never in a name or a code


class EntryTemplates:
    """A bundle entry as JSON, with holes where each person's values go, made once for each kind of choice (its
    status and source): json.dumps of a whole resource for each person would take most of an export's time."""

    def __init__(self, organisation: Organisation) -> None:
        self._organisation = organisation
        self._pieces: dict[tuple[ChoiceStatus, str | None, str], list[str]] = {}

    def entry_json(self, entry: RegisterEntry) -> str:
        """The entry for one person's current choice: the JSON of consent_resource, with a new id."""
        source = _source_of(entry)
        key = (entry.status, *source)
        pieces = self._pieces.get(key)
        if pieces is None:
            pieces = self._pieces[key] = self._template(entry.status, source)
        values = {
            "id": str(uuid.uuid4()),
            "nhs_number": json.dumps(entry.nhs_number)[1:-1],
            "date_time": _fhir_instant(entry.recorded_at),
        }
        # re.split leaves the text between holes at even places and the holes' names at odd ones.
        return "".join(values[piece] if place % 2 else piece for place, piece in enumerate(pieces))

    def _template(self, status: ChoiceStatus, source: tuple[str | None, str]) -> list[str]:
        resource_id, nhs_number, date_time = ("\ue000id\ue000", "\ue000nhs_number\ue000", "\ue000date_time\ue000")
        resource = _consent(resource_id, nhs_number, date_time, status, source, self._organisation)
        entry = {"fullUrl": f"urn:uuid:{resource_id}", "resource": resource}
        return _HOLE.split(json.dumps(entry, separators=(",", ":"), ensure_ascii=False))


def write_consent_bundle(
    stream: BinaryIO, batches: Iterable[list[RegisterEntry]], organisation: Organisation, *, at: datetime
) -> int:
    """Write the Bundle as JSON, one entry at a time as the batches come, and return how many entries it holds.

    The Bundle is never one object in memory: its opening is written first, then each entry, then its close.
    A bundle of nobody has no `entry` at all (FHIR allows no empty arrays).
    """
    opening = {"resourceType": "Bundle", "id": str(uuid.uuid4()), "type": "collection", "timestamp": _fhir_instant(at)}
    stream.write(json.dumps(opening, separators=(",", ":"))[:-1].encode())  # without its closing brace
    templates = EntryTemplates(organisation)
    count = 0
    for batch in batches:
        pieces = []
        for entry in batch:
            pieces.append((',"entry":[' if count == 0 else ",") + templates.entry_json(entry))
            count += 1
        stream.write("".join(pieces).encode())
    stream.write(b"]}\n" if count else b"}\n")
    return count
