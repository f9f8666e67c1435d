"""Per-caller policy: which organizers and API versions each caller may use. Deny by default once set."""

from __future__ import annotations

import re
from collections.abc import Collection, Mapping

from pydantic import BaseModel, ConfigDict, Field, field_validator

from ..errors import GatewayError
from ..validation import API_VERSIONS
from .caller import Caller, forbidden

ANY = "*"
# Organizers are Entra object ids, which is what the path's userId must be (validation.validate_organizer_id).
_OBJECT_ID = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")


class CallerRule(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    organizers: list[str] = Field(default_factory=list, description="organizer object ids, or ['*'] for all")
    versions: list[str] = Field(default_factory=lambda: ["v1.0", "beta"])
    read_others: bool = Field(default=False, alias="readOthers", description="may replay other callers' results")

    @field_validator("organizers")
    @classmethod
    def _object_ids(cls, value: list[str]) -> list[str]:
        # An entry that is no object id (an e-mail address, say) never matches a path: every call would be 403.
        if wrong := [o for o in value if o != ANY and not _OBJECT_ID.fullmatch(o)]:
            raise ValueError(f"must be Entra object ids (GUIDs) or '*', not {_quoted(wrong)}")
        return value

    @field_validator("versions")
    @classmethod
    def _api_versions(cls, value: list[str]) -> list[str]:
        if wrong := [v for v in value if v not in API_VERSIONS]:
            raise ValueError(f"must be among {_quoted(API_VERSIONS)}, not {_quoted(wrong)}")
        return value


def unreachable_callers(
    rules: Mapping[str, CallerRule], modes: Collection[str], partners: Collection[str]
) -> dict[str, str]:
    """The policy's caller ids that no enabled auth mode can produce, each with the reason."""
    found = {caller_id: _unreachable(caller_id, modes, partners) for caller_id in rules}
    return {caller_id: reason for caller_id, reason in found.items() if reason}


def _unreachable(caller_id: str, modes: Collection[str], partners: Collection[str]) -> str | None:
    mode, colon, name = caller_id.partition(":")
    if not (caller_id == "function-key" or (colon and mode in ("entra", "hmac") and name)):
        return "caller ids are 'function-key', 'entra:<app or object id>' or 'hmac:<partner>'"
    if mode not in modes:
        return f"CALLER_AUTH does not include {mode}"
    if mode == "hmac" and name not in partners:
        return f"PARTNER_SECRETS has no partner '{name}'"
    return None


def _quoted(values: Collection[str]) -> str:
    return ", ".join(f"'{v}'" for v in values)


class CallerPolicy:
    """Rules keyed by caller id (`entra:<id>`, `hmac:<partner>`, `function-key`).

    `None` rules (only possible with function keys alone: settings demand a policy for entra and hmac) let
    the one `function-key` caller use every organizer, but never read other callers' records.
    """

    def __init__(self, rules: dict[str, CallerRule] | None) -> None:
        self._rules = rules

    def authorize(self, caller: Caller, organizer_id: str, api_version: str) -> None:
        if self._rules is None:
            return
        rule = self._rules.get(caller.id)
        if rule is None:
            raise forbidden("This caller has no access policy on the gateway; ask its operator to add one.")
        if api_version not in rule.versions:
            raise forbidden(f"This caller may not use the {api_version} API.")
        if ANY not in rule.organizers and organizer_id not in {o.lower() for o in rule.organizers}:
            raise forbidden("This caller may not create meetings for this organizer.")

    def allows(self, caller: Caller, organizer_id: str, api_version: str) -> bool:
        try:
            self.authorize(caller, organizer_id, api_version)
        except GatewayError:
            return False
        return True

    def may_read_others(self, caller: Caller) -> bool:
        if self._rules is None:
            return False
        rule = self._rules.get(caller.id)
        return rule is not None and rule.read_others
