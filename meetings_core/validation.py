"""Turn a request into a validated createOrGet call, or into a 400 that says what to fix."""

from __future__ import annotations

import re
import types
import typing
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ValidationError
from pydantic_core import ErrorDetails

from .contract import CreateOrGetBody
from .errors import GatewayError
from .fingerprint import canonical_json, fingerprint, legacy_fingerprint
from .idempotency.keys import ReservationKey, scoped_external_id, unscoped_body

API_VERSIONS = ("v1.0", "beta")
_GUID = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")
_BETA_ONLY = ("contributors", "producers")


@dataclass(frozen=True, slots=True)
class CreateOrGetCall:
    """One validated call: where it goes, the body Graph gets, and the fingerprint of what the caller sent.

    `scope` is the caller id for callers whose externalIds are their own (entra, hmac), `None` for the one
    function-key caller; `body` carries the externalId Graph sees (`scoped_external_id`).
    """

    api_version: str
    organizer_id: str
    body: dict[str, Any]
    model: CreateOrGetBody
    fingerprint: str
    legacy_fingerprint: str
    scope: str | None = None

    @property
    def external_id(self) -> str:
        """The externalId as the caller sent it (for messages)."""
        return self.model.external_id

    @property
    def key(self) -> ReservationKey:
        return ReservationKey(self.organizer_id, str(self.body["externalId"]))

    def caller_body(self, graph_body: bytes) -> bytes:
        """Graph's answer with the caller's own externalId in it."""
        return unscoped_body(graph_body, self.scope)

    @property
    def fingerprints(self) -> tuple[str, str]:
        """Every fingerprint a stored record of this same request may carry (current, then legacy)."""
        return (self.fingerprint, self.legacy_fingerprint)


def validate_organizer_id(user_id: str) -> str:
    """The organizer's object id from the path, canonical (lower case), or a 400."""
    if not _GUID.fullmatch(user_id):
        raise GatewayError(
            400,
            "BadRequest",
            "The userId in the path must be the organizer's Entra object ID, a GUID such as "
            "1f35f2e6-9cab-44ad-8d5a-b74c14720000 (a UPN or e-mail address is not accepted here).",
        )
    return user_id.lower()


def validate_call(api_version: str, organizer_id: str, body: Any, scope: str | None = None) -> CreateOrGetCall:
    """Validate the body for a canonical organizer id; raise `GatewayError(400)` listing every problem.

    `scope` (the caller id, or `None` for function keys) namespaces the externalId sent to Graph.
    """
    if not isinstance(body, dict):
        raise GatewayError(400, "BadRequest", 'The request body must be a JSON object such as {"externalId": "..."}.')
    _check_encodable(body)
    try:
        model = CreateOrGetBody.model_validate(body)
    except ValidationError as exc:
        raise _bad_request(exc.errors(include_url=False)) from None
    participants = body.get("participants")
    if api_version == "v1.0" and isinstance(participants, dict):
        for name in _BETA_ONLY:
            if name in participants:
                raise GatewayError(
                    400,
                    "BadRequest",
                    f"participants.{name} exists only on the beta API: call /beta/... or move "
                    "these people to participants.attendees with a role.",
                )
    # Unscoped (function keys): forwarded exactly as sent; scoped: only the externalId differs.
    graph_body = body if scope is None else {**body, "externalId": scoped_external_id(scope, model.external_id)}
    return CreateOrGetCall(
        api_version, organizer_id, graph_body, model, fingerprint(model), legacy_fingerprint(body), scope
    )


def _check_encodable(body: dict[str, Any]) -> None:
    # JSON may escape a lone UTF-16 surrogate ("\udfff"), which no UTF-8 text (Graph's, our store's) can hold.
    try:
        canonical_json(body)
    except UnicodeEncodeError as exc:
        raise GatewayError(
            400,
            "BadRequest",
            "The request body contains an unpaired UTF-16 surrogate escape (such as \\udfff), which is not "
            "valid Unicode text: send well-formed characters.",
        ) from exc


def _bad_request(errors: list[ErrorDetails]) -> GatewayError:
    details = [{"code": _detail_code(e), "target": _dotted(e["loc"]), "message": _describe(e)} for e in errors]
    summary = " ".join(d["message"] for d in details[:5])
    more = f" ({len(details) - 5} more problems in details.)" if len(details) > 5 else ""
    return GatewayError(400, "BadRequest", f"The request body is not valid. {summary}{more}", details=details)


def _detail_code(error: ErrorDetails) -> str:
    return {"extra_forbidden": "UnknownField", "missing": "MissingField"}.get(error["type"], "InvalidValue")


def _describe(error: ErrorDetails) -> str:
    where = _dotted(error["loc"])
    kind = error["type"]
    if kind == "extra_forbidden":
        accepted = ", ".join(_accepted_fields(error["loc"][:-1]))
        return f"Unknown field '{where}'. Accepted fields there: {accepted} (and @odata.* annotations)."
    if kind == "missing":
        return f"Field '{where}' is required."
    message = str(error["msg"]).removeprefix("Value error, ")
    if kind == "timezone_aware":
        message = "must include a UTC offset or Z, such as 2026-03-01T09:00:00Z"
    elif kind == "enum":
        message = "must be one of " + str(error.get("ctx", {}).get("expected", "")).replace("'", "")
    sentence = f"Field '{where}' {message}" if where else message
    return sentence if sentence.endswith(".") else sentence + "."


def _dotted(loc: tuple[int | str, ...]) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def _accepted_fields(loc: tuple[int | str, ...]) -> list[str]:
    """Walk the contract along `loc` and list the JSON names accepted at that object."""
    model: type[BaseModel] = CreateOrGetBody
    for part in loc:
        if isinstance(part, int):
            continue
        field = next((f for f in model.model_fields.values() if f.alias == part), None)
        inner = _model_in(field.annotation) if field else None
        if inner is None:
            return []
        model = inner
    return sorted(str(f.alias) for f in model.model_fields.values())


def _model_in(annotation: Any) -> type[BaseModel] | None:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    if typing.get_origin(annotation) in (typing.Union, types.UnionType, list):
        for arg in typing.get_args(annotation):
            found = _model_in(arg)
            if found is not None:
                return found
    return None
