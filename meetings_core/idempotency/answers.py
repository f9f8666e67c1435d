"""The engine's own answers (not Graph's): replays, status URLs, "still in progress" and its errors."""

from __future__ import annotations

import logging
from datetime import datetime

from ..errors import GatewayError, retry_after_header
from ..validation import CreateOrGetCall
from .context import EngineConfig, Outcome, RequestContext
from .records import Reservation
from .store import RecordUnreadable, StoreUnavailable

log = logging.getLogger("meetings_core.idempotency")

_IN_PROGRESS_RETRY_MAX_SECONDS = 5.0


def replayed(record: Reservation) -> Outcome:
    """The stored meeting, answered without Graph."""
    headers = {"Idempotent-Replayed": "true"}
    if record.graph_request_id:  # the Graph call that created it, to trace the meeting end to end
        headers["graph-request-id"] = record.graph_request_id
    return Outcome(200, stored(record).body, headers, replay_of=record)


def stored(record: Reservation) -> Outcome:
    # A completed record always has both (checked when the record is built).
    assert record.status is not None
    assert record.body is not None
    return Outcome(record.status, record.body)


def retry_after(record: Reservation, local_now: datetime) -> float:
    """When to come back: the lease left (by storage's clock when read), between 1 and 5 s."""
    left = record.lease_left(record.judged_at(local_now))
    return min(_IN_PROGRESS_RETRY_MAX_SECONDS, max(1.0, left))


def accepted(record: Reservation, version: str, retry_in: float) -> Outcome:
    """202 with a status URL naming the caller's version: it answers the meeting in that version's shape."""
    return Outcome(
        202,
        b'{"status":"inProgress"}',
        {"Location": f"/operations/{record.key.digest}_{version}", **retry_after_header(retry_in)},
    )


def busy(config: EngineConfig, retry_in: float) -> GatewayError:
    """Past the wait (or out of time for another step): come back after Retry-After."""
    retry = retry_after_header(retry_in)
    if config.in_progress_answer == "conflict":
        return GatewayError(
            409,
            "RequestInProgress",
            "Another request with this externalId for this organizer is still being processed. Send the "
            "same request again after the Retry-After delay to get its meeting, or send "
            "'Prefer: respond-async' to get a status URL to poll.",
            headers=retry,
        )
    return GatewayError(
        503,
        "RequestInProgress",
        "Another request with this externalId for this organizer is still being processed and did not "
        "finish within the gateway's wait. Send the same request again after the Retry-After delay to get "
        "its meeting.",
        headers=retry,
    )


def check_caller(record: Reservation, ctx: RequestContext) -> None:
    if record.caller != ctx.caller and not ctx.read_others:
        raise GatewayError(
            403,
            "Forbidden",
            "This externalId for this organizer belongs to another caller; use your own externalId.",
        )


def check_fingerprint(record: Reservation, call: CreateOrGetCall, config: EngineConfig) -> None:
    if record.fingerprint in call.fingerprints or config.return_existing_on_mismatch:
        return
    raise GatewayError(
        422,
        "ExternalIdReused",
        f"externalId '{call.external_id}' was already used for this organizer with a different request "
        "body. A retry must send exactly the same body; to create another meeting, use a new externalId.",
    )


def may_see(record: Reservation, ctx: RequestContext, version: str) -> bool:
    """A status poll's check: the caller's own record (or `readOthers`), in versions its policy allows."""
    mine = record.caller == ctx.caller or ctx.read_others
    organizer = record.key.organizer_id
    return mine and ctx.allows(organizer, record.api_version) and ctx.allows(organizer, version)


def operation_not_found() -> GatewayError:
    """The one answer for an unknown, expired or not-yours operation id (and a bad status URL signature)."""
    return GatewayError(
        404,
        "NotFound",
        "No such operation. It may have failed (the original request got the error) or expired; "
        "send the createOrGet request again.",
    )


def unreadable(exc: RecordUnreadable) -> GatewayError:
    log.error("reservation unreadable: %s", exc)
    return GatewayError(
        500,
        "InternalServerError",
        "The gateway's reservation for this externalId cannot be read, so no request was sent to Graph. An "
        "operator must remove it: python -m meetings_core.cli remove --force <organizerId> <externalId> "
        "(with --caller <caller id> for an entra or hmac caller).",
    )


def unrecoverable() -> GatewayError:
    return GatewayError(
        404,
        "NotFound",
        "The gateway kept no copy of this operation's request (an older gateway version, or a request too large "
        "to keep beside the meeting), so it cannot finish it; send the createOrGet request again.",
    )


def unsettled(message: str, settle_in: float) -> GatewayError:
    return GatewayError(
        503,
        "ServiceUnavailable",
        f"{message} No request reached Graph; send the same request again after the Retry-After delay.",
        headers=retry_after_header(settle_in + 1),
    )


def storage_unavailable(exc: StoreUnavailable) -> GatewayError:
    """The one answer for an unreachable reservation store: 503, no Graph call made."""
    log.error("table storage unavailable: %s", exc)
    return GatewayError(
        503,
        "ServiceUnavailable",
        "The gateway's reservation store is unreachable, so no meeting was requested from Graph. "
        "Send the same request again after the Retry-After delay.",
        headers=retry_after_header(5),
    )
