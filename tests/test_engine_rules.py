"""One test per rule of the promise (issue 19, item 8): each fails when its rule is broken in the engine.

`make mutants` breaks each rule in the code and checks that these tests notice (scripts/mutants.py).
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import replace
from datetime import timedelta

import pytest

from meetings_core.errors import GatewayError
from meetings_core.graph.client import GraphResult
from meetings_core.graph.errors import OutcomeUnknown
from meetings_core.idempotency.engine import Outcome, RequestContext
from meetings_core.idempotency.records import Reservation, State
from meetings_core.idempotency.refusal import MAX_REFUSAL_CHARS
from meetings_core.idempotency.store import ReservationExists
from tests.fake_clock import T0
from tests.rules_rig import CTX, DEADLINE, GRACE, LEASE, OTHER_ORGANIZER, Rig, call, key, meeting, rig

OTHER_CALLER = RequestContext(caller="hmac:partner-b", client_request_id="c-2")
POLLED = replace(CTX, respond_async=True)


# --- a stale owner never removes or overwrites the record of the request that took over ---


async def test_a_stale_owners_release_leaves_the_takers_reservation():
    """Graph refused the owner's call after its lease was taken over: its release must be ETag-conditional."""
    r = rig()

    async def taken_over_then_refused() -> GatewayError:
        r.clock.advance(LEASE)  # the owner hung past its lease; another instance took the key over
        await r.take_over("taker")
        return GatewayError(400, "BadRequest", "Graph refused the request.")

    r.graph.script = [taken_over_then_refused]
    with pytest.raises(GatewayError) as refused:
        await r.engine.create_or_get(call(), CTX)
    assert refused.value.status == 400
    record = r.record()
    assert record is not None, "the stale owner's release removed the taker's reservation"
    assert (record.state, record.owner) == (State.IN_PROGRESS, "taker")


async def test_a_stale_owners_completion_leaves_the_takers_reservation():
    """The owner's answer arrives after a takeover: its completion write must be ETag-conditional."""
    r = rig()

    async def taken_over_then_answered() -> object:
        r.clock.advance(LEASE)
        await r.take_over("taker")
        return meeting(201)

    r.graph.script = [taken_over_then_answered]
    assert (await r.engine.create_or_get(call(), CTX)).status == 201  # the caller still gets its meeting
    record = r.record()
    assert record is not None
    assert (record.state, record.owner) == (State.IN_PROGRESS, "taker")


# --- one taker per ended lease: the ETag claim ---


async def test_two_concurrent_status_polls_of_an_ended_lease_make_one_graph_call():
    r = rig(yielding=True)
    r.seed(lease_left=-1)
    first, second = await asyncio.gather(
        r.engine.status(key().digest, CTX), r.engine.status(key().digest, CTX), return_exceptions=True
    )
    assert len(r.graph.calls) == 1, "both polls took the ended lease over"
    assert sorted(o.status for o in (first, second) if not isinstance(o, BaseException)) == [201, 202]


async def test_two_concurrent_duplicates_on_an_ended_lease_make_one_graph_call():
    r = rig(yielding=True)
    r.seed(lease_left=-1)
    answers = await asyncio.gather(*(r.engine.create_or_get(call(), CTX) for _ in range(3)))
    assert len(r.graph.calls) == 1, "more than one duplicate took the ended lease over"
    assert sorted(a.status for a in answers) == [200, 200, 201]


async def test_a_poll_whose_claim_was_beaten_after_its_read_never_calls_graph():
    r = rig(claimed_after_read=True)
    r.seed(lease_left=-1)
    outcome = await r.engine.status(key().digest, CTX)
    assert r.graph.calls == [], "the poll overwrote another taker's claim"
    assert outcome.status == 202
    assert r.record().owner == "other-taker"  # type: ignore[union-attr]


async def test_a_duplicate_whose_claim_was_beaten_after_its_read_waits_for_the_winner():
    r = rig(claimed_after_read=True)
    r.seed(lease_left=-1)

    def winner_finishes() -> None:
        current = r.record()
        assert current is not None
        if current.state is State.IN_PROGRESS:
            done = current.as_completed(201, meeting(201).body, None, r.clock(), timedelta(days=1))
            r.store.records[key().digest] = replace(done, etag="W/winner-done")

    r.clock.on_sleep = winner_finishes
    outcome = await r.engine.create_or_get(call(), CTX)
    assert r.graph.calls == [], "the duplicate overwrote another taker's claim"
    assert outcome.status == 200


async def test_a_takeover_renews_the_lease_for_its_own_graph_call():
    r = rig()
    r.seed(lease_left=-1)
    seen = []

    async def look() -> object:
        seen.append(r.record())
        return meeting(201)

    r.graph.script = [look]
    await r.engine.status(key().digest, CTX)
    held = seen[0]
    assert held is not None
    assert held.owner != "crashed-owner"
    assert held.lease_until == r.graph.calls[0]["at"] + timedelta(seconds=LEASE)
    assert r.graph.calls[0]["deadline"] <= LEASE - GRACE


# --- a lease covers [start, end): nobody takes over before its end, a poll at its end does ---


async def test_no_takeover_an_instant_before_the_lease_ends():
    r = rig()
    r.seed(lease_left=1e-6, owner="live-owner")
    outcome = await r.engine.status(key().digest, CTX)
    assert outcome.status == 202
    assert r.graph.calls == []


async def test_a_takeover_at_exactly_the_leases_end():
    r = rig()
    r.seed(lease_left=0, owner="crashed-owner")
    outcome = await r.engine.status(key().digest, CTX)
    assert outcome.status == 201
    assert [c["at"] for c in r.graph.calls] == [r.clock()]


@pytest.mark.parametrize("left", [40.0, 60.0])
async def test_a_duplicate_takes_over_only_with_time_for_the_owners_whole_path(left: float):
    """An ended lease found with less than the owner's step left (4 store calls + the Graph deadline: 50 s
    with the defaults) is answered 503 at once; taking it would start a Graph call the answer cannot wait for."""
    r = rig()
    r.seed(lease_left=0)
    ctx = replace(CTX, spent_seconds=110.0 - left)  # the HTTP layer already spent the rest
    if left < 50.0:
        with pytest.raises(GatewayError) as raised:
            await r.engine.create_or_get(call(), ctx)
        assert (raised.value.status, raised.value.code) == (503, "RequestInProgress")
        assert r.graph.calls == []
    else:
        assert (await r.engine.create_or_get(call(), ctx)).status == 201
        assert len(r.graph.calls) == 1


async def test_a_duplicate_takes_over_at_the_leases_end_not_before():
    r = rig()
    seeded = r.seed(lease_left=LEASE)
    assert (await r.engine.create_or_get(call(), CTX)).status == 201
    assert len(r.graph.calls) == 1
    assert r.graph.calls[0]["at"] >= seeded.lease_until


# --- an unknown outcome holds the key; only what never reached Graph is released ---


async def test_an_unknown_outcome_keeps_the_key_reserved_until_the_lease_ends():
    r = rig()
    r.graph.script = [OutcomeUnknown("Graph did not answer.", timeout=True)]
    with pytest.raises(OutcomeUnknown):
        await r.engine.create_or_get(call(), CTX)
    record = r.record()
    assert record is not None, "the key was released after an unknown outcome"
    assert record.state is State.IN_PROGRESS
    assert not record.released
    assert "delete" not in r.store.operations
    duplicate = await r.engine.create_or_get(call(), replace(CTX, respond_async=True))
    assert duplicate.status == 202  # told to poll; nothing reaches Graph before the lease ends
    assert len(r.graph.calls) == 1


async def test_an_unexpected_failure_while_calling_graph_keeps_the_key():
    r = rig()
    r.graph.script = [RuntimeError("a bug between the request and its answer")]
    with pytest.raises(OutcomeUnknown):
        await r.engine.create_or_get(call(), CTX)
    record = r.record()
    assert record is not None
    assert record.state is State.IN_PROGRESS
    assert not record.released, "an unknown outcome was released for takeover"
    duplicate = await r.engine.create_or_get(call(), replace(CTX, respond_async=True))
    assert duplicate.status == 202
    assert len(r.graph.calls) == 1


async def test_a_definite_graph_refusal_releases_the_key_for_takeover():
    """Graph created nothing: the record stays, marked released with its request, and the caller's own retry takes
    it over at once (insert refused, read, ETag replace): no wait for the lease."""
    r = rig()
    r.graph.script = [GatewayError(503, "ServiceUnavailable", "Graph is unavailable.")]
    with pytest.raises(GatewayError):
        await r.engine.create_or_get(call(), CTX)
    released = r.record()
    assert released is not None, "the key was deleted: a poller of its status URL would get 404"
    assert released.state is State.IN_PROGRESS
    assert released.released_at == r.clock()
    assert released.request is not None
    assert "delete" not in r.store.operations
    r.store.operations.clear()
    assert (await r.engine.create_or_get(call(), CTX)).status == 201
    assert r.store.operations[:3] == ["insert-conflict", "get", "replace"]
    assert len(r.graph.calls) == 2
    assert r.graph.calls[1]["at"] == r.graph.calls[0]["at"], "the retry waited for a released lease"


async def test_a_corrected_request_takes_a_released_record_over_and_owns_its_key():
    """Graph refused the first body (400): a request with another body for the same externalId goes through (Graph
    created nothing), and its replays are replays, not 422; an ended lease is still 422 for another body."""
    r = rig()
    r.graph.script = [GatewayError(400, "BadRequest", "The subject is too long.")]
    with pytest.raises(GatewayError):
        await r.engine.create_or_get(call(), CTX)
    corrected = call(subject="Kick-off, shorter")
    assert (await r.engine.create_or_get(corrected, CTX)).status == 201
    assert r.graph.calls[1]["body"]["subject"] == "Kick-off, shorter"
    assert (await r.engine.create_or_get(corrected, CTX)).status == 200
    with pytest.raises(GatewayError) as reused:
        await r.engine.create_or_get(call(), CTX)
    assert reused.value.status == 422


async def test_a_waiting_duplicate_takes_a_released_record_over_without_the_grace():
    r = rig()
    waiting: list[asyncio.Task[Outcome]] = []

    async def duplicate_waits_then_refused() -> GatewayError:
        waiting.append(asyncio.create_task(r.engine.create_or_get(call(), CTX)))
        for _ in range(5):  # the duplicate finds the live lease and waits
            await asyncio.sleep(0)
        return GatewayError(429, "TooManyRequests", "Graph is throttling requests.")

    r.graph.script = [duplicate_waits_then_refused]
    with pytest.raises(GatewayError) as refused:
        await r.engine.create_or_get(call(), CTX)
    assert refused.value.status == 429
    released_at = r.clock()
    assert "insert-conflict" in r.store.operations, "the duplicate did not wait on the owner's lease"
    assert (await waiting[0]).status == 201
    assert len(r.graph.calls) == 2
    assert (r.graph.calls[1]["at"] - released_at).total_seconds() < 2, "the duplicate waited out the lease"
    assert r.store.operations.count("insert") == 1  # it took the released record over; nothing deleted it


@pytest.mark.parametrize("recovered", [True, False])
async def test_a_poll_after_a_definite_failure_resends_the_request_never_404(recovered: bool):
    """The owner's refusal released the key: the status poll takes it over and answers Graph's meeting, or Graph's
    own refusal with its reason, never "no such operation"."""
    r = rig()
    polled = replace(CTX, respond_async=True)
    accepted: list[Outcome] = []

    async def polled_then_refused() -> GatewayError:
        accepted.append(await r.engine.create_or_get(call(), polled))
        return GatewayError(503, "ServiceUnavailable", "Graph is unavailable.")

    forbidden = GatewayError(403, "Forbidden", "Application is not allowed to perform operations on the user.")
    r.graph.script = [polled_then_refused] + ([] if recovered else [forbidden])
    with pytest.raises(GatewayError):
        await r.engine.create_or_get(call(), CTX)
    assert accepted[0].status == 202
    operation = accepted[0].headers["Location"].rsplit("/", 1)[1]
    if recovered:
        done = await r.engine.status(operation, polled)
        assert (done.status, json.loads(done.body)["id"]) == (201, "MSo1")
    else:
        with pytest.raises(GatewayError) as refused:
            await r.engine.status(operation, polled)
        assert (refused.value.status, refused.value.message) == (403, forbidden.message)
    assert len(r.graph.calls) == 2


# --- Graph's refusal of a request is kept on its released record: a poll answers it, never sends it again ---

BAD_REQUEST = GatewayError(
    400,
    "BadRequest",
    "The subject is too long.",
    headers={"graph-request-id": "graph-1"},
    inner={"graph-request-id": "graph-1", "graph-date": "2026-11-29T09:00:00"},
)


async def _refused_with_a_poller(r: Rig, refusal: GatewayError) -> str:
    """The owner's call refused by Graph while a respond-async duplicate got its 202: the status URL's operation."""
    accepted: list[Outcome] = []

    async def polled_then_refused() -> GatewayError:
        accepted.append(await r.engine.create_or_get(call(), POLLED))
        return refusal

    r.graph.script = [polled_then_refused]
    with pytest.raises(GatewayError):
        await r.engine.create_or_get(call(), CTX)
    assert accepted[0].status == 202
    return accepted[0].headers["Location"].rsplit("/", 1)[1]


async def test_a_poll_of_a_request_graph_refused_answers_the_refusal_without_sending_it_again():
    r = rig()
    operation = await _refused_with_a_poller(r, BAD_REQUEST)
    kept = r.record()
    r.store.operations.clear()
    with pytest.raises(GatewayError) as polled:
        await r.engine.status(operation, POLLED)
    refusal = polled.value
    assert (refusal.status, refusal.code, refusal.message) == (400, "BadRequest", BAD_REQUEST.message)
    assert (refusal.headers, refusal.inner) == (BAD_REQUEST.headers, BAD_REQUEST.inner)  # Graph's ids, to trace it
    assert len(r.graph.calls) == 1, "the poll sent the refused request to Graph again"
    assert r.store.operations == ["get"]
    assert r.record() == kept  # still released, its refusal kept, for the next poll or the caller's own request


async def test_a_corrected_request_while_a_refused_request_is_polled_goes_through():
    """The race docs/IDEMPOTENCY.md described: a poll used to take the refused record over and send it to Graph
    again, and a corrected request arriving during that call found another body in progress (422)."""
    r = rig()
    corrected = call(subject="Kick-off, shorter")
    answers: list[Outcome | GatewayError] = []

    async def corrected_request() -> None:
        try:
            answers.append(await r.engine.create_or_get(corrected, CTX))
        except GatewayError as error:
            answers.append(error)

    async def graph_answers() -> GatewayError | GraphResult:
        if r.graph.calls[-1]["body"]["subject"] == "Kick-off":  # the refused body, sent again by the poll
            await corrected_request()  # arrives while that call is in flight
            return BAD_REQUEST
        return meeting(201)

    operation = await _refused_with_a_poller(r, BAD_REQUEST)
    r.graph.script = [graph_answers, graph_answers]
    with pytest.raises(GatewayError) as polled:
        await r.engine.status(operation, POLLED)
    assert polled.value.status == 400
    if not answers:
        await corrected_request()
    answer = answers[0]
    assert isinstance(answer, Outcome), f"the corrected request got {answer.status} {answer.code}"
    assert answer.status == 201
    assert [c["body"]["subject"] for c in r.graph.calls] == ["Kick-off", "Kick-off, shorter"]
    done = await r.engine.status(operation, POLLED)  # the poller now gets the meeting Graph made for the externalId
    assert (done.status, json.loads(done.body)["id"]) == (201, "MSo1")


async def test_the_callers_own_request_takes_a_refused_record_over_and_asks_graph_again():
    """Graph may accept the same body later (an access policy added meanwhile): a stored refusal stops only polls."""
    r = rig()
    await _refused_with_a_poller(r, GatewayError(403, "Forbidden", "Application is not allowed."))
    assert (await r.engine.create_or_get(call(), CTX)).status == 201
    assert len(r.graph.calls) == 2
    assert r.record().refusal is None  # type: ignore[union-attr]


@pytest.mark.parametrize(
    "failure",
    [
        GatewayError(503, "ServiceUnavailable", "Graph is unavailable."),  # throttled or unavailable to the deadline
        GatewayError(502, "BadGateway", "Graph refused the gateway's own token."),
        GatewayError(429, "TooManyRequests", "Throttled."),
        GatewayError(408, "RequestTimeout", "Timed out."),
    ],
)
async def test_a_failure_that_says_nothing_about_the_request_keeps_no_refusal_and_a_poll_resends_it(
    failure: GatewayError,
):
    r = rig()
    operation = await _refused_with_a_poller(r, failure)
    released = r.record()
    assert released is not None
    assert released.released
    assert released.refusal is None
    done = await r.engine.status(operation, POLLED)
    assert (done.status, len(r.graph.calls)) == (201, 2)


async def test_a_refusal_too_long_to_keep_is_not_kept_and_a_poll_resends_the_request():
    r = rig()
    operation = await _refused_with_a_poller(r, GatewayError(400, "BadRequest", "x" * MAX_REFUSAL_CHARS))
    assert r.record().refusal is None  # type: ignore[union-attr]
    assert (await r.engine.status(operation, POLLED)).status == 201


async def test_a_poll_in_the_other_version_of_a_refused_record_sends_it_in_that_version():
    """The refusal was Graph's answer in the record's version; a status URL naming the other one asks Graph."""
    r = rig()
    operation = await _refused_with_a_poller(r, BAD_REQUEST)
    other = operation.replace("_v1.0", "_beta")
    assert other != operation
    assert (await r.engine.status(other, POLLED)).status == 201
    assert [c["version"] for c in r.graph.calls] == ["v1.0", "beta"]


async def test_the_owners_graph_call_ends_a_grace_before_its_lease():
    r = rig()
    await r.engine.create_or_get(call(), CTX)
    assert r.graph.calls[0]["deadline"] <= min(DEADLINE, LEASE - GRACE)


async def test_a_live_lease_is_never_taken_over_by_a_duplicate():
    r = rig()
    r.seed(lease_left=LEASE, owner="live-owner")

    def renew() -> None:  # the owner is alive: its lease never runs out during the wait
        current = r.record()
        assert current is not None
        r.store.records[key().digest] = replace(current, lease_until=r.clock() + timedelta(seconds=LEASE))

    r.clock.on_sleep = renew
    with pytest.raises(GatewayError) as waited:
        await r.engine.create_or_get(call(), CTX)
    assert waited.value.status == 503
    assert r.graph.calls == []


# --- what belongs to a caller and to a request ---


@pytest.mark.parametrize("cache_size", [0, 100], ids=["cache-off", "cache-on"])
async def test_a_replay_of_another_callers_completed_record_is_refused(cache_size: int):
    r = rig(cache_size=cache_size)
    assert (await r.engine.create_or_get(call(), CTX)).status == 201
    with pytest.raises(GatewayError) as refused:
        await r.engine.create_or_get(call(), OTHER_CALLER)
    assert refused.value.status == 403
    reader = replace(OTHER_CALLER, read_others=True)  # the policy's readOthers is the only way in
    assert (await r.engine.create_or_get(call(), reader)).status == 200
    assert len(r.graph.calls) == 1


async def test_a_duplicate_of_another_callers_in_progress_record_is_refused():
    r = rig()
    r.seed(lease_left=LEASE, owner="live-owner")
    with pytest.raises(GatewayError) as refused:
        await r.engine.create_or_get(call(), OTHER_CALLER)
    assert refused.value.status == 403
    assert r.graph.calls == []


@pytest.mark.parametrize("cache_size", [0, 100], ids=["cache-off", "cache-on"])
async def test_a_replay_with_another_body_is_422(cache_size: int):
    r = rig(cache_size=cache_size)
    await r.engine.create_or_get(call(), CTX)
    with pytest.raises(GatewayError) as reused:
        await r.engine.create_or_get(call(subject="Another meeting"), CTX)
    assert reused.value.status == 422
    assert len(r.graph.calls) == 1


async def test_an_in_progress_duplicate_with_another_body_is_422_at_once():
    r = rig()
    r.seed(lease_left=LEASE, owner="live-owner")
    with pytest.raises(GatewayError) as reused:
        await r.engine.create_or_get(call(subject="Another meeting"), CTX)
    assert reused.value.status == 422
    assert r.clock() == r.record().created_at  # type: ignore[union-attr]
    assert r.graph.calls == []


async def test_a_duplicate_with_another_body_never_takes_over_to_send_it():
    r = rig()
    r.seed(lease_left=-1)  # the owner crashed: a taker would send its own body to Graph
    with pytest.raises(GatewayError) as reused:
        await r.engine.create_or_get(call(subject="Another meeting"), CTX)
    assert reused.value.status == 422
    assert r.graph.calls == []


async def test_one_external_id_under_two_organizers_is_two_meetings():
    r = rig()
    r.graph.script = [meeting(201, "meeting-a"), meeting(201, "meeting-b")]
    first = await r.engine.create_or_get(call(), CTX)
    second = await r.engine.create_or_get(call(organizer=OTHER_ORGANIZER), CTX)
    assert (first.status, second.status) == (201, 201)
    assert [c["organizer"] for c in r.graph.calls] == [call().organizer_id, OTHER_ORGANIZER]
    assert b"meeting-b" in second.body
    assert r.record() is not None
    assert r.record(OTHER_ORGANIZER) is not None
    assert key().digest != key(OTHER_ORGANIZER).digest


async def test_a_replay_is_answered_from_the_record_without_graph():
    r = rig(cache_size=0)
    await r.engine.create_or_get(call(), CTX)
    replay = await r.engine.create_or_get(call(), CTX)
    assert (replay.status, replay.headers.get("Idempotent-Replayed")) == (200, "true")
    assert len(r.graph.calls) == 1


@pytest.mark.parametrize(
    "ctx",
    [
        OTHER_CALLER,
        replace(CTX, allows=lambda organizer, version: False),
    ],
    ids=["other-caller", "policy-refuses"],
)
async def test_a_status_poll_never_shows_a_record_the_caller_may_not_see(ctx: RequestContext):
    r = rig(cache_size=0)
    await r.engine.create_or_get(call(), CTX)
    with pytest.raises(GatewayError) as hidden:
        await r.engine.status(key().digest, ctx)
    assert hidden.value.status == 404
    assert (await r.engine.status(key().digest, CTX)).status == 201


# --- the owner's own writes and timing ---


async def test_an_owner_confirmed_too_late_never_calls_graph():
    r = rig()

    def slow_ack(operation: str, record: Reservation) -> None:
        if operation == "insert":
            r.clock.advance(LEASE - GRACE - 0.5)  # less than a second of the lease would be left for Graph

    r.store.after = slow_ack
    with pytest.raises(GatewayError) as late:
        await r.engine.create_or_get(call(), CTX)
    assert late.value.status == 503
    assert r.graph.calls == []


async def test_a_request_recognises_its_own_insert_reported_as_a_conflict():
    """The SDK retried an insert that had committed: the request owns the key and calls Graph at once."""
    r = rig()

    def retried(operation: str, record: Reservation) -> None:
        if operation == "insert":
            r.store.after = None
            raise ReservationExists(record.key)

    r.store.after = retried
    assert (await r.engine.create_or_get(call(), CTX)).status == 201
    assert [c["at"] for c in r.graph.calls] == [T0]
