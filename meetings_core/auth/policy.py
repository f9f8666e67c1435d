"""Per-caller policy: which organizers and API versions each caller may use. Deny by default once set."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from ..errors import GatewayError
from .caller import Caller, forbidden

ANY = "*"


class CallerRule(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    organizers: list[str] = Field(default_factory=list, description="organizer object ids, or ['*'] for all")
    versions: list[str] = Field(default_factory=lambda: ["v1.0", "beta"])
    read_others: bool = Field(default=False, alias="readOthers", description="may replay other callers' results")


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
