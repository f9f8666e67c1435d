"""The catalogue of rule breaks `make mutants` applies one at a time (scripts/mutants.py).

Each mutant is a small textual patch, found by its code text (whitespace-insensitive) in the files of a glob,
so it survives code moving between modules; the text must occur exactly once there. `new` replaces the
matched text; a line break in it continues at the indentation of the line the match starts on.
`listed` marks the breaks issue 19 (item 8) found no test catching.

Where the engine's code was rewritten (issue 19 splits engine.py into owner.py, duplicate.py, poll.py and
answers.py), a mutant carries both spellings: `edits` for one, `alternatives` for the other.
"""

from __future__ import annotations

from dataclasses import dataclass

IDEMPOTENCY = "meetings_core/idempotency/*.py"
GRAPH = "meetings_core/graph/*.py"
AUTH = "meetings_core/auth/*.py"
TABLE_STORE = "meetings_core/idempotency/table_store.py"

# Test sets, run in this order with -x: the rule tests first, so the report names the test that pins the rule.
ENGINE_TESTS = ("tests/test_engine_rules.py", "tests/test_engine*.py")
GRAPH_TESTS = ("tests/test_graph_outcome_rules.py", "tests/test_graph_client_edges.py")
STORE_TESTS = ("tests/test_store_rules.py",)
CALLER_TESTS = ("tests/test_caller_rules.py", "tests/test_engine_rules.py", "tests/test_hmac_and_policy.py")

Edit = tuple[str, str]  # (old code text, new code text)


def _blind(store: str, record: str) -> str:
    """A replace that re-reads the current ETag first: the write lands whatever changed since `record` was read."""
    current = f"(await {store}.get({record}.key)).etag"
    return f'await {store}.replace(__import__("dataclasses").replace({record}, etag={current}))'


@dataclass(frozen=True, slots=True)
class Mutant:
    name: str
    rule: str
    where: str
    edits: tuple[Edit, ...]
    tests: tuple[str, ...]
    listed: bool = False
    # Other spellings of the same break, tried in order when `edits` does not apply (code before/after a
    # refactor): the first set whose every edit applies is used.
    alternatives: tuple[tuple[Edit, ...], ...] = ()
    # A rule whose code exists only in some versions (the engine lane's deadline and clock checks): where
    # none of its spellings is found it is reported n/a, not stale.
    optional: bool = False


CATALOGUE: tuple[Mutant, ...] = (
    # --- the eight breaks issue 19 found uncaught ---
    Mutant(
        "release-unconditional",
        "a reservation is deleted only by the ETag it was read with (a stale owner never deletes a taker's record)",
        IDEMPOTENCY,
        (("await self._store.delete(record)", "await self._store.remove(record.key)"),),
        ENGINE_TESTS,
        listed=True,
        alternatives=(
            (("await self.store.delete(record)", "await self.store.remove(record.key)"),),
            # The release is an ETag replace marking the record released: made blind, it lands on a taker's record.
            (
                (
                    "await self.store.replace(record.as_released(self.clock()))",
                    _blind("self.store", "record.as_released(self.clock())"),
                ),
            ),
            (
                (
                    "await self.store.replace(record.as_released(self.clock(), refusal))",
                    _blind("self.store", "record.as_released(self.clock(), refusal)"),
                ),
            ),
        ),
    ),
    Mutant(
        "store-delete-unconditional",
        "the Table store's delete sends the ETag (If-Match), so a stale copy's delete is refused",
        TABLE_STORE,
        (
            (
                "ROW_KEY, etag=record.etag, match_condition=MatchConditions.IfNotModified,",
                "ROW_KEY, etag=None, match_condition=MatchConditions.Unconditionally,",
            ),
        ),
        STORE_TESTS,
        listed=True,
    ),
    Mutant(
        "poll-takeover-without-claim",
        "a status poll takes an ended lease over only by winning the ETag replace",
        IDEMPOTENCY,
        (
            (
                "taken = await self._take(record, mine, _Forward.of_record(record))",
                "taken = record.with_owner(mine, self._clock() + self._config.lease, record.api_version, "
                "record.request)",
            ),
        ),
        ENGINE_TESTS,
        listed=True,
        alternatives=(
            (
                (
                    "forward = Forward.of_record(record, version) taken = await owner.take(record, forward, turn)",
                    "forward = Forward.of_record(record, version)\n"
                    "taken = record.with_owner(turn.mine, owner.clock() + owner.config.lease, forward.api_version, "
                    "forward.request, owner.config.lease.total_seconds())",
                ),
            ),
        ),
    ),
    Mutant(
        "read-timeout-retried",
        "a read timeout is an unknown outcome: never retried (the retry decision treats it as never sent)",
        GRAPH,
        (
            (
                "except (_NotProcessed, *_NEVER_SENT) as exc:",
                "except (_NotProcessed, *_NEVER_SENT, httpx.ReadTimeout) as exc:",
            ),
        ),
        GRAPH_TESTS,
        listed=True,
    ),
    Mutant(
        "read-timeout-as-never-sent",
        "a read timeout is an unknown outcome (classed with the failures that never reached Graph)",
        GRAPH,
        (("_NEVER_SENT = (httpx.ConnectError,", "_NEVER_SENT = (httpx.ReadTimeout, httpx.ConnectError,"),),
        GRAPH_TESTS,
    ),
    Mutant(
        "any-2xx-is-the-meeting",
        "only 200 and 201 with a JSON body are the meeting; any other 2xx is an unknown outcome",
        GRAPH,
        (
            (
                "if status in _UNKNOWN_STATUSES or (status < 400 and status not in (200, 201)):",
                "if status in _UNKNOWN_STATUSES or 300 <= status < 400:",
            ),
            ("if status in (200, 201):", "if 200 <= status < 300:"),
        ),
        GRAPH_TESTS,
        listed=True,
    ),
    Mutant(
        "replay-caller-unchecked",
        "a createOrGet replay answers only the record's own caller (or a readOthers caller)",
        IDEMPOTENCY,
        (
            (
                "_check_caller(record, ctx) self._check_fingerprint(record, call) if record.api_version",
                "self._check_fingerprint(record, call)\nif record.api_version",
            ),
        ),
        ENGINE_TESTS,
        listed=True,
        alternatives=(
            (
                (
                    "check_caller(record, ctx) check_fingerprint(record, call, self._owner.config) "
                    "return replayed(record)",
                    "check_fingerprint(record, call, self._owner.config)\nreturn replayed(record)",
                ),
            ),
        ),
    ),
    Mutant(
        "in-progress-fingerprint-unchecked",
        "a duplicate of an in-progress key with another body is 422 (a takeover would send that body)",
        IDEMPOTENCY,
        (("self._check_fingerprint(record, call) now = self._clock()", "now = self._clock()"),),
        ENGINE_TESTS,
        listed=True,
        alternatives=(
            (
                (
                    "check_fingerprint(record, call, config) now = record.judged_at(owner.clock())",
                    "now = record.judged_at(owner.clock())",
                ),
            ),
        ),
    ),
    Mutant(
        "key-without-organizer",
        "the reservation key is (organizer, externalId): one externalId under two organizers is two meetings",
        IDEMPOTENCY,
        (('raw = f"{self.organizer_id}\\n{self.external_id}".encode()', 'raw = f"{self.external_id}".encode()'),),
        ENGINE_TESTS,
        listed=True,
    ),
    Mutant(
        "no-takeover-at-lease-end",
        "a lease covers [start, end): at exactly its end it may be taken over",
        IDEMPOTENCY,
        (("self.lease_until <= now", "self.lease_until < now"),),
        ENGINE_TESTS,
        listed=True,
    ),
    # --- the other rules of the promise ---
    Mutant(
        "takeover-before-lease-end",
        "nobody takes a lease over before its end",
        IDEMPOTENCY,
        (("self.lease_until <= now", "self.lease_until <= now + timedelta(seconds=1)"),),
        ENGINE_TESTS,
    ),
    Mutant(
        "duplicate-takeover-without-claim",
        "a waiting duplicate takes an ended lease over only by winning the ETag replace",
        IDEMPOTENCY,
        (
            (
                "return await self._store.replace(record.with_owner(mine, lease_until, forward.api_version, "
                "forward.request))",
                "taken = record.with_owner(mine, lease_until, forward.api_version, forward.request)\n"
                "return " + _blind("self._store", "taken"),
            ),
        ),
        ENGINE_TESTS,
        alternatives=((("return await self.store.replace(taken)", "return " + _blind("self.store", "taken")),),),
    ),
    Mutant(
        "in-progress-caller-unchecked",
        "a duplicate of another caller's in-progress key is refused (it would wait for or take over their call)",
        IDEMPOTENCY,
        (
            (
                "_check_caller(record, ctx) self._check_fingerprint(record, call) now = self._clock()",
                "self._check_fingerprint(record, call)\nnow = self._clock()",
            ),
        ),
        ENGINE_TESTS,
        alternatives=(
            (
                (
                    "check_caller(record, ctx) check_fingerprint(record, call, config) now = record.judged_at(",
                    "check_fingerprint(record, call, config)\nnow = record.judged_at(",
                ),
            ),
        ),
    ),
    Mutant(
        "completion-without-etag",
        "the completion write is ETag-conditional (a stale owner never overwrites a taker's record)",
        IDEMPOTENCY,
        (("stored = await self._store.replace(done)", "stored = " + _blind("self._store", "done")),),
        ENGINE_TESTS,
        alternatives=((("stored = await self.store.replace(done)", "stored = " + _blind("self.store", "done")),),),
    ),
    Mutant(
        "store-replace-unconditional",
        "the Table store's replace sends the ETag (If-Match)",
        TABLE_STORE,
        (
            (
                "mode=UpdateMode.REPLACE, etag=record.etag, match_condition=MatchConditions.IfNotModified,",
                "mode=UpdateMode.REPLACE, etag=None, match_condition=MatchConditions.Unconditionally,",
            ),
        ),
        STORE_TESTS,
    ),
    Mutant(
        "store-insert-upserts",
        "the Table store's insert fails when the key exists (the serialization point)",
        TABLE_STORE,
        (("self._table.create_entity(_to_entity(record))", "self._table.upsert_entity(_to_entity(record))"),),
        STORE_TESTS,
        alternatives=(
            (("self._table.create_entity(to_entity(record))", "self._table.upsert_entity(to_entity(record))"),),
            (
                (
                    "self._table.create_entity(to_entity(record), request_id=_request_id())",
                    "self._table.upsert_entity(to_entity(record), request_id=_request_id())",
                ),
            ),
            (
                (
                    "self._table.create_entity(to_entity(record), request_id=_request_id(), "
                    "response_preference=_NO_CONTENT)",
                    "self._table.upsert_entity(to_entity(record), request_id=_request_id())",
                ),
            ),
        ),
    ),
    Mutant(
        "takeover-keeps-old-lease",
        "a takeover renews the lease for its own Graph call",
        IDEMPOTENCY,
        (("lease_until = self._clock() + self._config.lease", "lease_until = record.lease_until"),),
        ENGINE_TESTS,
        alternatives=(
            (
                (
                    "taken = record.with_owner(turn.mine, now + lease,",
                    "taken = record.with_owner(turn.mine, record.lease_until,",
                ),
            ),
        ),
    ),
    Mutant(
        "retry-500",
        "a 500 is an unknown outcome: never retried",
        GRAPH,
        (("_NOT_PROCESSED_STATUSES = frozenset({429, 503})", "_NOT_PROCESSED_STATUSES = frozenset({429, 500, 503})"),),
        GRAPH_TESTS,
    ),
    Mutant(
        "retry-after-sending",
        "a connection that fails after the request was sent is never retried",
        GRAPH,
        (
            (
                "except (_NotProcessed, *_NEVER_SENT) as exc:",
                "except (_NotProcessed, *_NEVER_SENT, httpx.TransportError) as exc:",
            ),
        ),
        GRAPH_TESTS,
    ),
    Mutant(
        "deadline-ignored",
        "no Graph attempt outlives the deadline the engine gives (lease minus grace)",
        GRAPH,
        (
            (
                "budget = min(self._deadline_seconds, deadline_seconds or self._deadline_seconds)",
                "budget = self._deadline_seconds",
            ),
        ),
        GRAPH_TESTS,
    ),
    Mutant(
        "release-after-unknown-outcome",
        "an unknown outcome keeps the key reserved until its lease ends",
        IDEMPOTENCY,
        (("self._hold(record, exc)", "await self._release(record)"),),
        ENGINE_TESTS,
        alternatives=(
            (("self._hold(record, exc, turn)", "await self._release(record)"),),
            (("self._hold(record, exc, lease)", "await self._release(record)"),),
        ),
    ),
    Mutant(
        "release-after-unexpected-failure",
        "an unexpected failure while calling Graph is an unknown outcome: the key stays reserved",
        IDEMPOTENCY,
        (("self._hold(record, unknown)", "await self._release(record)"),),
        ENGINE_TESTS,
        alternatives=(
            (("self._hold(record, unknown, turn)", "await self._release(record)"),),
            (("self._hold(record, unknown, lease)", "await self._release(record)"),),
        ),
    ),
    Mutant(
        "hold-after-definite-error",
        "a definite refusal by Graph releases the key at once",
        IDEMPOTENCY,
        (("await self._release(record) raise", "raise"),),
        ENGINE_TESTS,
        alternatives=(
            (("await (self._restore(record, restore) if restore else self._release(record)) raise", "raise"),),
            (
                (
                    "await (self._restore(record, restore) if restore else self._release(record, Refusal.of(error))) "
                    "raise",
                    "raise",
                ),
            ),
        ),
    ),
    Mutant(
        "definite-failure-deletes",
        "a definite failure keeps the record, marked released, so a poller of its status URL is answered, not 404",
        IDEMPOTENCY,
        (("await self.store.replace(record.as_released(self.clock()))", "await self.store.delete(record)"),),
        ENGINE_TESTS,
        alternatives=(
            (
                (
                    "await self.store.replace(record.as_released(self.clock(), refusal))",
                    "await self.store.delete(record)",
                ),
            ),
        ),
    ),
    Mutant(
        "released-refuses-a-corrected-request",
        "a released record (Graph created nothing) is taken over by a request with another body, as a deleted key was",
        IDEMPOTENCY,
        (("record = _corrected(record, call) check_caller(record, ctx)", "check_caller(record, ctx)"),),
        ENGINE_TESTS,
    ),
    Mutant(
        "released-waits-the-grace",
        "a released record is taken over at once: Graph created nothing, so there is no grace to wait",
        IDEMPOTENCY,
        (("return self.released or (self.lease_until", "return (self.lease_until"),),
        ENGINE_TESTS,
    ),
    Mutant(
        "refusal-poll-resends",
        "a status poll of a request Graph refused answers the kept refusal, never sends the request again",
        IDEMPOTENCY,
        (("if record.refusal is not None and version == record.api_version:", "if False:"),),
        ENGINE_TESTS,
    ),
    Mutant(
        "refusal-not-kept",
        "a release after Graph refused the request keeps Graph's refusal on the record",
        IDEMPOTENCY,
        (("self._release(record, Refusal.of(error))", "self._release(record, None)"),),
        ENGINE_TESTS,
    ),
    Mutant(
        "refusal-kept-for-any-failure",
        "only Graph's refusal of the request (a 4xx but 408, 429) is kept; a poll resends after any other failure",
        IDEMPOTENCY,
        (("if not 400 <= error.status < 500 or error.status in _NOT_ABOUT_THE_REQUEST:", "if False:"),),
        ENGINE_TESTS,
    ),
    Mutant(
        "refusal-in-any-version",
        "a poll naming the other API version of a refused record asks Graph in that version",
        IDEMPOTENCY,
        (
            (
                "if record.refusal is not None and version == record.api_version:",
                "if record.refusal is not None:",
            ),
        ),
        ENGINE_TESTS,
    ),
    Mutant(
        "refusal-refuses-its-own-caller",
        "the caller's own request (the same body) takes a refused record over: Graph may accept it now",
        IDEMPOTENCY,
        (
            (
                "record = _corrected(record, call) check_caller(record, ctx)",
                "record = _corrected(record, call)\nif record.refusal is not None:\n    raise record.refusal.error()\n"
                "check_caller(record, ctx)",
            ),
        ),
        ENGINE_TESTS,
    ),
    Mutant(
        "released-counted-stuck",
        "a released record awaits a retry: the stuck count (and its alert) leaves it out",
        "meetings_core/stats.py",
        (("and record.lease_until is not None and not record.released", "and record.lease_until is not None"),),
        ("tests/test_stats.py",),
    ),
    Mutant(
        "released-purged-early",
        "the purge keeps a released record while a status URL handed out before its release may be polled",
        "meetings_core/idempotency/purge.py",
        (("if record.released_at is not None and record.released_at > now - RELEASED_KEPT_FOR:", "if False:"),),
        ("tests/test_retention.py",),
    ),
    Mutant(
        "budget-without-grace",
        "the owner's Graph call ends a grace before its lease ends",
        IDEMPOTENCY,
        (
            (
                "budget = record.lease_left(self._clock()) - self._config.grace_seconds",
                "budget = record.lease_left(self._clock())",
            ),
        ),
        ENGINE_TESTS,
        alternatives=((("budget = min(lease_left - self.config.grace_seconds,", "budget = min(lease_left,"),),),
    ),
    Mutant(
        "late-owner-calls-graph",
        "an owner confirmed too late to finish inside its lease never calls Graph",
        IDEMPOTENCY,
        (("if budget < MIN_GRAPH_SECONDS:", "if budget < -1e9:"),),
        ENGINE_TESTS,
    ),
    Mutant(
        "live-lease-taken-over",
        "a duplicate never takes over a live lease",
        IDEMPOTENCY,
        (("if record.lease_ended(now):", "if True:"),),
        ENGINE_TESTS,
        alternatives=((("if record.lease_ended(now) or record.state is State.COMPLETED:", "if True:"),),),
    ),
    Mutant(
        "replay-fingerprint-unchecked",
        "a replay of a completed key with another body is 422",
        IDEMPOTENCY,
        (
            (
                "self._check_fingerprint(record, call) if record.api_version == call.api_version:",
                "if record.api_version == call.api_version:",
            ),
        ),
        ENGINE_TESTS,
        alternatives=(
            (
                (
                    "check_fingerprint(record, call, self._owner.config) return replayed(record)",
                    "return replayed(record)",
                ),
            ),
        ),
    ),
    Mutant(
        "replay-calls-graph",
        "a replay is answered from the record, without Graph",
        IDEMPOTENCY,
        (("if record.api_version == call.api_version:", "if False:"),),
        ENGINE_TESTS,
    ),
    Mutant(
        "own-retried-insert-ignored",
        "a request recognises its own committed write reported as a conflict (no wait for its own lease)",
        IDEMPOTENCY,
        (("if _held_by(record, mine):", "if False:"),),
        ENGINE_TESTS,
        alternatives=(
            (("if turn.holds(record):", "if False:"),),
            (("if (lease := turn.held(record)) is not None:", "if False:"),),
        ),
    ),
    Mutant(
        "status-shows-other-callers",
        "a status poll shows only the caller's own records (or to a readOthers caller)",
        IDEMPOTENCY,
        (("mine = record.caller == ctx.caller or ctx.read_others", "mine = True"),),
        ENGINE_TESTS,
    ),
    Mutant(
        "status-ignores-policy",
        "a status poll shows a record only if the caller's policy allows its organizer and version",
        IDEMPOTENCY,
        (("return mine and ctx.allows(record.key.organizer_id, record.api_version)", "return mine"),),
        ENGINE_TESTS,
        alternatives=(
            (
                (
                    "return mine and ctx.allows(organizer, record.api_version) and ctx.allows(organizer, version)",
                    "return mine",
                ),
            ),
        ),
    ),
    Mutant(
        "scope-ignored",
        "two callers' same externalId are two keys and two Graph externalIds",
        IDEMPOTENCY,
        (('return f"{scope_tag(scope)}.{external_id}"', "return external_id"),),
        CALLER_TESTS,
    ),
    Mutant(
        "policy-any-organizer",
        "a caller's policy limits its organizers",
        AUTH,
        (
            (
                "if ANY not in rule.organizers and organizer_id not in {o.lower() for o in rule.organizers}:",
                "if False:",
            ),
        ),
        CALLER_TESTS,
    ),
    Mutant(
        "policy-any-version",
        "a caller's policy limits its API versions",
        AUTH,
        (("if api_version not in rule.versions:", "if False:"),),
        CALLER_TESTS,
    ),
    Mutant(
        "policy-allows-unknown-callers",
        "a policy denies a caller it has no rule for",
        AUTH,
        (
            (
                "rule = self._rules.get(caller.id) if rule is None:",
                "rule = self._rules.get(caller.id) or CallerRule(organizers=[ANY])\nif rule is None:",
            ),
        ),
        CALLER_TESTS,
    ),
    # --- the engine lane's deadline and clock checks (issue 19, items 1 and 2): only where that code exists ---
    Mutant(
        "reinsert-loop-ignores-deadline",
        "the duplicate's insert-again loop stops when the answer's deadline is near",
        IDEMPOTENCY,
        (("if owner.left(turn) < config.owner_step_seconds: raise busy(", "if False:\n    raise busy("),),
        ENGINE_TESTS,
        optional=True,
    ),
    Mutant(
        "takeover-ignores-deadline",
        "a duplicate takes over only with time left for the owner's whole path before the answer is due",
        IDEMPOTENCY,
        (("if owner.left(turn) < config.owner_step_seconds: return", "if False:\n    return"),),
        ENGINE_TESTS,
        optional=True,
    ),
    Mutant(
        "budget-ignores-answer-deadline",
        "the owner's Graph budget leaves room for the completion before the answer is due",
        IDEMPOTENCY,
        (
            (
                "budget = min(lease_left - self.config.grace_seconds, self.left(turn) - 2 * self.config.store_seconds)",
                "budget = lease_left - self.config.grace_seconds",
            ),
        ),
        ENGINE_TESTS,
        optional=True,
    ),
    Mutant(
        "insert-again-loop-unchecked",
        "the record-gone, insert-again loop stops before the answer is due (both of its checks skipped)",
        IDEMPOTENCY,
        (
            ("if owner.left(turn) < config.owner_step_seconds: raise busy(", "if False:\n    raise busy("),
            ("if owner.left(turn) < config.store_seconds:", "if False:"),
        ),
        ENGINE_TESTS,
        optional=True,
    ),
    Mutant(
        "late-takeover-unchecked",
        "a takeover late in the wait still answers in time (the takeover's check and the budget's term skipped)",
        IDEMPOTENCY,
        (
            ("if owner.left(turn) < config.owner_step_seconds: return", "if False:\n    return"),
            (
                "budget = min(lease_left - self.config.grace_seconds, self.left(turn) - 2 * self.config.store_seconds)",
                "budget = lease_left - self.config.grace_seconds",
            ),
        ),
        ENGINE_TESTS,
        optional=True,
    ),
    Mutant(
        "lease-judged-by-local-clock",
        "a lease's end is judged by storage's clock, not the instance's",
        IDEMPOTENCY,
        (("return self.read_at or local_now", "return local_now"),),
        ENGINE_TESTS,
        optional=True,
    ),
    Mutant(
        "owner-lease-from-its-call",
        "an owner measures its lease from before its write was sent, not from when the write was acknowledged",
        IDEMPOTENCY,
        (("sent = turn.leased_at or self.clock()", "sent = self.clock()"),),
        ENGINE_TESTS,
        alternatives=((("(self.clock() - lease.sent_at)", "(self.clock() - self.clock())"),),),
        optional=True,
    ),
)
