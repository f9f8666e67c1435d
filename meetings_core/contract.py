"""The createOrGet request contract: Graph's request body, as its SDKs encode it, in pydantic."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from enum import StrEnum
from typing import Annotated, Any

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    field_validator,
    model_validator,
)
from pydantic.alias_generators import to_camel

MAX_EXTERNAL_ID_LENGTH = 512
_CONTROL_CHARS = re.compile(r"[\x00-\x1f\x7f-\x9f]")
# OData instance and property annotations: "@odata.type", "subject@odata.type", "@microsoft.graph.x".
_ANNOTATION = re.compile(r"[A-Za-z0-9_]*@[A-Za-z_]\w*(\.\w+)+")


def is_annotation(key: str) -> bool:
    """True for an OData annotation key, which Graph accepts at any level and the gateway forwards."""
    return bool(_ANNOTATION.fullmatch(key))


# ISO 8601 calendar date and time (extended format); pydantic alone also reads "1700000000" as a Unix time.
_ISO_DATE_TIME = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt][0-9]{2}:[0-9]{2}")
_ISO_EXAMPLE = "an ISO 8601 date-time string such as 2026-03-01T09:00:00Z"


def _iso_string(value: Any) -> Any:
    # JSON numbers and digit strings would be read as Unix times; Graph only takes ISO 8601 strings.
    if (isinstance(value, str) and _ISO_DATE_TIME.match(value)) or isinstance(value, datetime):
        return value
    raise ValueError(f"must be {_ISO_EXAMPLE}")


def _utc_representable(value: datetime) -> datetime:
    # 9999-12-31T23:59:59-14:00 parses, but is past year 9999 in UTC, where Graph and the fingerprint compare it.
    try:
        value.astimezone(UTC)
    except OverflowError:
        raise ValueError(
            "is outside the years 0001 to 9999 once converted to UTC: send a date-time in that range"
        ) from None
    return value


DateTimeOffset = Annotated[AwareDatetime, BeforeValidator(_iso_string), AfterValidator(_utc_representable)]


class _GraphObject(BaseModel):
    """A Graph complex type: camelCase fields, unknown fields rejected, annotations let through."""

    model_config = ConfigDict(extra="forbid", alias_generator=to_camel, frozen=True)

    @model_validator(mode="before")
    @classmethod
    def _skip_annotations(cls, data: Any) -> Any:
        if isinstance(data, dict):
            return {k: v for k, v in data.items() if not (isinstance(k, str) and is_annotation(k))}
        return data


class OnlineMeetingRole(StrEnum):
    attendee = "attendee"
    presenter = "presenter"
    producer = "producer"
    coorganizer = "coorganizer"
    unknown_future_value = "unknownFutureValue"


class Identity(_GraphObject):
    id: str | None = None
    display_name: str | None = None
    tenant_id: str | None = None
    user_identity_type: str | None = None


class IdentitySet(_GraphObject):
    """identitySet, with the properties of its communicationsIdentitySet subtype."""

    application: Identity | None = None
    device: Identity | None = None
    user: Identity | None = None
    application_instance: Identity | None = None
    asserted_identity: Identity | None = None
    azure_communication_services_user: Identity | None = None
    encrypted: Identity | None = None
    guest: Identity | None = None
    on_premises: Identity | None = None
    phone: Identity | None = None
    endpoint_type: str | None = None


class MeetingParticipantInfo(_GraphObject):
    identity: IdentitySet | None = None
    role: OnlineMeetingRole | None = None
    upn: str | None = None


class MeetingParticipants(_GraphObject):
    attendees: list[MeetingParticipantInfo] | None = None
    organizer: MeetingParticipantInfo | None = None
    # Deprecated beta-only properties; v1.0 rejects them (see `validate_body`).
    contributors: list[MeetingParticipantInfo] | None = None
    producers: list[MeetingParticipantInfo] | None = None


class ChatInfo(_GraphObject):
    thread_id: str | None = None
    message_id: str | None = None
    reply_chain_message_id: str | None = None


class CreateOrGetBody(_GraphObject):
    """The createOrGet request body (v1.0 and beta; `chatInfo` is in both versions' metadata)."""

    external_id: str = Field(min_length=1, max_length=MAX_EXTERNAL_ID_LENGTH)
    start_date_time: DateTimeOffset | None = None
    end_date_time: DateTimeOffset | None = None
    subject: str | None = None
    participants: MeetingParticipants | None = None
    chat_info: ChatInfo | None = None

    @field_validator("external_id")
    @classmethod
    def _external_id(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("must not be empty or only spaces")
        if _CONTROL_CHARS.search(value):
            raise ValueError("must not contain control characters (tabs, line breaks, NUL)")
        return value

    @model_validator(mode="after")
    def _time_window(self) -> CreateOrGetBody:
        if self.end_date_time is not None:
            if self.start_date_time is None:
                raise ValueError(
                    "endDateTime was sent without startDateTime: send both, or only startDateTime "
                    "(Graph then ends the meeting one hour later)"
                )
            if self.end_date_time < self.start_date_time:
                raise ValueError("endDateTime is earlier than startDateTime: send an end after the start")
        return self
