"""The batch poller: follows a run's Batch API batches, and collects each one that is done.

One pass (`BatchPoller.run_pass`) runs in the reconciler's thread of every worker's main
process, after each reconcile pass, one pass at a time across the fleet (a lock of its own,
`POLLER_LOCK`), and judges the runs of its own queue only, like the reconciler. It acts only
for runs whose endpoint the workers hold an API key for (`prelabel.settings.api_key_for`; a
local endpoint needs none). The work on one run is `poll_run`, which tests call directly.

For each `BatchRecord` of a run (`RunKeys.batches`) the API still holds, when its
`next_poll_at` is due: `batches.retrieve`, the record updated (state, request counts, files),
its next look set `PRELABEL_BATCH_POLL_SECONDS` later, doubling at each look up to
`LONGEST_WAIT`, and the run's `batch_polls` counter moved. A batch the API finished
(`completed`, `expired`, `cancelled`) is collected:

- its output and error files are downloaded, and each line goes into `RunKeys.batch_answers`
  under its `custom_id`: an answer as a `Completion` (JSON of
  `workers.transports.base.Completion`, read by `workers.transports.chat.read_answer`; its
  tokens are the line's usage, `simulated` when the body carries the simulator's
  fingerprint; the model's `refusal` beside it, if any), a refused request as `{"error":
  reason, "requests": ..}` (with the tokens it used, for the item's usage);
- lines that are worth asking again are not stored, whatever `delivery.retry` says (`batch`:
  the shard's next pass puts them into a new batch; `realtime`: that pass asks them through
  the realtime transport): a line the API never ran (`batch_expired`, `batch_cancelled`), and
  one that failed with a 5xx or a 429. The batch's submission is then forgotten
  (`batch_submits`), so that a new batch of the same lines is not taken for this one (no
  cap: a line that fails with a 5xx in every batch is asked again in every batch);
- its requests and tokens are counted once, in the BATCH_* counters and the realtime ones
  (`requests`, `prompt_tokens`, `completion_tokens`, `simulated`), its enqueued tokens are
  released (`prelabel.keys.batch_enqueued_key`), and the record turns `collected`, in one
  guarded step (workers/lua/poller_collect.lua: two pollers never count a batch twice; a
  record `collected` or `failed` is never written again, poller_update.lua); the record's
  `error` says `expired` or `cancelled` when the API did not finish every line;
- its shard goes to the head of the queue (a running run only): the shard's next pass labels
  the stored answers.

A batch that `failed` with `token_limit_exceeded` (the account's enqueued-token limit) is not
a failure of its items: the record turns `failed` with the error, its tokens are released,
and after a wait (a countdown the poller keeps in the record's `next_poll_at`: the poll
interval, doubled for each such failure of the shard, up to `LONGEST_WAIT`) a later pass
forgets its submission and enqueues the shard, whose next pass submits again. Until then a
pass of the shard finds its submission and submits nothing. A batch that failed otherwise
(its file refused) fails its items with the API's reason. A batch the API no longer knows
(404) is forgotten at once and its shard enqueued: its lines go into a new batch.

A cancelled run (`prelabel cancel`): its batches still running are cancelled
(`batches.cancel`), and polled until final, so that the answers they hold (paid for) are
stored. An `auto` run with a deadline: from `deadline - margin_seconds`, its batches still
running are cancelled, its meta field `transport_now` is set to `realtime` (the workers' shard
passes use the realtime transport from then on), and its unfinished shards with no batch in
flight are enqueued; a shard whose batch is being cancelled is enqueued when that batch is
collected, so that the answers it holds are not paid for twice.

Redis writes: the records (`RunKeys.batches`), `RunKeys.batch_answers`, the run's counters
(`batch_polls`, `batch_requests`, `batch_prompt_tokens`, `batch_cached_prompt_tokens`,
`batch_completion_tokens`, `cached_prompt_tokens`,
`requests`, `prompt_tokens`, `completion_tokens`, `simulated`) and `active_at`,
`batch_enqueued_key` (DECRBY), the run's budget (`RunKeys.budget`: the batch's reservation,
made at submission, replaced by what its lines used at the batch price when it is collected,
given back when it fails or is lost, in the same guarded step), `RunKeys.batch_submits`
(HDEL), the run's meta
`transport_now`, the queue (`prelabel.queue.enqueue`, first in line) and `POLLER_LOCK`.
"""

from __future__ import annotations

import json
import logging
import secrets
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import openai
import redis
from openai.types import Batch
from pydantic import ValidationError

from prelabel.batches import BatchRecord
from prelabel.counters import RunCounter
from prelabel.errors import ConfigError, PrelabelError
from prelabel.keys import PREFIX, RUNS, RunKeys, batch_enqueued_key
from prelabel.model import RunConfig
from prelabel.pricing import BATCH_DISCOUNT
from prelabel.queue import enqueue
from prelabel.settings import Settings, api_key_for
from workers.budget import micro_usd
from workers.transports.base import Completion
from workers.transports.batch import CACHE_KEY_REFUSED
from workers.transports.chat import read_answer, refuses_cache_key

log = logging.getLogger(__name__)

#: Held by the one poller acting now (a token; it runs out if its holder dies).
POLLER_LOCK = f"{PREFIX}:batch-poller"
#: The longest wait between two looks at a batch, seconds.
LONGEST_WAIT = 600.0
#: `system_fingerprint` of the simulator's completions (`simulator.server.FINGERPRINT`; a
#: batch line carries no headers, so this is how its answers say they were not a model's).
SIMULATOR_FINGERPRINT = "prelabel-simulator"
#: Error codes of lines the API never ran, which a new batch (or the realtime transport) asks
#: again.
NOT_RUN = frozenset({"batch_expired", "batch_cancelled"})
#: Batches a line may go out in before the poller stops asking it again: a line that
#: expires, is cancelled or answers 5xx that often fails its items with the reason (with
#: `--batch-retry realtime` it goes realtime at once instead).
BATCH_TRIES = 3
#: A batch's error code when it would pass the account's enqueued-token limit.
TOKEN_LIMIT = "token_limit_exceeded"
#: The states in which a batch is still running and can be cancelled.
RUNNING = frozenset({"validating", "in_progress", "finalizing"})
#: A record's states after which the poller has nothing more to do with it, but for a
#: `failed` one with a countdown (`next_poll_at` > 0: a token_limit_exceeded batch).
DONE = frozenset({"collected", "failed"})
#: The API's final states whose lines are collected.
FINISHED = frozenset({"completed", "expired", "cancelled"})

_LUA = Path(__file__).parent / "lua"
_UPDATE = (_LUA / "poller_update.lua").read_text()
_COLLECT = (_LUA / "poller_collect.lua").read_text()
_FORGET = (_LUA / "poller_forget.lua").read_text()


@dataclass
class PollReport:
    """What one `poll_run` did to a run's batches (by batch id), and the shards it enqueued."""

    polled: list[str] = field(default_factory=list)
    collected: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    forgotten: list[str] = field(default_factory=list)
    cancelled: list[str] = field(default_factory=list)
    enqueued: list[int] = field(default_factory=list)
    #: True when this call turned the run to the realtime transport (its deadline came).
    switched: bool = False


def wait_after(settings: Settings, looks: int) -> float:
    """Seconds until the next look at a batch looked at `looks` times: the poll interval,
    doubled at each look, up to `LONGEST_WAIT` (or the interval, if longer)."""
    base = settings.batch_poll_seconds
    return min(base * 2.0 ** min(max(looks - 1, 0), 40), max(LONGEST_WAIT, base))


def poll_run(
    client: redis.Redis,
    api: openai.OpenAI,
    settings: Settings,
    run_id: str,
    now: float | None = None,
    keepalive: Callable[[], object] | None = None,
) -> PollReport:
    """One look at each of the run's batches whose time has come (see the module's doc);
    `api` is a client for the run's endpoint, `now` the time the schedule is judged by,
    `keepalive` called after each call to the API (the fleet's pass keeps its lock)."""
    at = time.time() if now is None else now
    return _RunPoller(client, api, settings, run_id, at, keepalive).poll()


def records(client: redis.Redis, run_id: str) -> list[BatchRecord]:
    """The run's batch records, oldest first."""
    raw = cast("dict[bytes, bytes]", client.hgetall(RunKeys(run_id).batches))
    found = [BatchRecord.model_validate_json(value) for value in raw.values()]
    return sorted(found, key=lambda r: (r.created_at, r.batch_id))


class _RunPoller:
    """One `poll_run` call."""

    def __init__(
        self,
        client: redis.Redis,
        api: openai.OpenAI,
        settings: Settings,
        run_id: str,
        now: float,
        keepalive: Callable[[], object] | None,
    ) -> None:
        self.client = client
        self.keepalive = keepalive or (lambda: None)
        self.api = api
        self.settings = settings
        self.run_id = run_id
        self.now = now
        self.keys = RunKeys(run_id)
        self.report = PollReport()
        self._update = client.register_script(_UPDATE)
        self._collect = client.register_script(_COLLECT)
        self._forget = client.register_script(_FORGET)
        #: Shards to enqueue at the end of the call (first in line, each once).
        self._shards: set[int] = set()

    def poll(self) -> PollReport:
        status, raw_config, switched = cast(
            "list[bytes | None]",
            self.client.hmget(self.keys.meta, ["status", "config", "transport_now"]),
        )
        if raw_config is None:
            return self.report  # the run is gone
        self.config = RunConfig.model_validate_json(raw_config)
        self.running = status == b"running"
        delivery = self.config.delivery
        deadline = delivery.deadline
        past_deadline = (
            self.running
            and delivery.transport == "auto"
            and deadline is not None
            and self.now >= deadline - delivery.margin_seconds
        )
        if status == b"cancelled" or past_deadline:
            self._cancel_running()
        if past_deadline and switched != b"realtime":
            self._switch_to_realtime()
        for record in records(self.client, self.run_id):
            if record.status not in DONE and record.next_poll_at <= self.now:
                self._look(record)
                self.keepalive()
            elif record.status == "failed" and 0 < record.next_poll_at <= self.now:
                self._forget_submission(record)
        if self._shards and self.running:
            shards = sorted(self._shards)
            enqueue(self.settings, self.run_id, shards, first=True)
            self.report.enqueued += shards
            log.info("run %s: shards %s enqueued for their batch answers", self.run_id, shards)
        return self.report

    # --- cancelling and the deadline ------------------------------------------------------

    def _cancel_running(self) -> None:
        """Cancel the run's batches still running (the API keeps what they answered)."""
        for record in records(self.client, self.run_id):
            if record.status not in RUNNING:
                continue
            self.keepalive()
            try:
                batch = self.api.batches.cancel(record.batch_id)
            except openai.ConflictError:  # final already: the next look collects it
                self._write(record.model_copy(update={"next_poll_at": self.now}))
                continue
            except openai.NotFoundError:
                self._lost(record)
                continue
            except openai.APIError as exc:
                log.warning("run %s: cancelling batch %s: %s", self.run_id, record.batch_id, exc)
                continue
            self.report.cancelled.append(record.batch_id)
            log.info("run %s: batch %s cancelled", self.run_id, record.batch_id)
            # Cancelling takes little time: look again soon, whatever the backoff had reached.
            seen = _seen(record, batch)
            due = self.now if batch.status in FINISHED or batch.status == "failed" else None
            wait = self.settings.batch_poll_seconds
            self._write(seen.model_copy(update={"next_poll_at": due or self.now + wait}))

    def _switch_to_realtime(self) -> None:
        """The run's deadline less its margin has come: the realtime transport from now on,
        and the shards with no batch in flight enqueued for it."""
        if not self.client.hsetnx(self.keys.meta, "transport_now", "realtime"):
            return  # another poller did it
        self.report.switched = True
        waiting = {r.shard for r in records(self.client, self.run_id) if r.status not in DONE}
        done = {int(n) for n in cast("set[bytes]", self.client.smembers(self.keys.done))}
        self._shards.update(
            n for n in range(self.config.shards) if n not in done and n not in waiting
        )
        log.warning(
            "run %s: its deadline less %.0f min has come: what is left goes through the "
            "realtime transport",
            self.run_id,
            self.config.delivery.margin_seconds / 60,
        )

    # --- one batch ------------------------------------------------------------------------

    def _look(self, record: BatchRecord) -> None:
        try:
            batch = self.api.batches.retrieve(record.batch_id)
        except openai.NotFoundError:
            self._lost(record)
            return
        except openai.APIError as exc:
            log.warning("run %s: batch %s: %s", self.run_id, record.batch_id, exc)
            self._later(record.model_copy(update={"polls": record.polls + 1}))
            return
        self.client.hincrby(self.keys.counters, RunCounter.BATCH_POLLS, 1)
        self.report.polled.append(record.batch_id)
        seen = _seen(record, batch)
        if batch.status in FINISHED:
            self._collect_lines(seen, batch)
        elif batch.status == "failed":
            self._failed(seen, batch)
        else:
            self._later(seen)

    def _later(self, record: BatchRecord) -> None:
        """Look at the record again after its wait (its files could not be read now)."""
        wait = wait_after(self.settings, record.polls)
        self._write(record.model_copy(update={"next_poll_at": self.now + wait}))

    def _write(self, record: BatchRecord) -> bool:
        """Write a record the API still holds (never over a collected or failed one)."""
        return bool(self._update(keys=[self.keys.batches], args=[record.batch_id, _json(record)]))

    def _collect_lines(self, record: BatchRecord, batch: Batch) -> None:
        try:
            lines = [*self._lines(batch.output_file_id), *self._lines(batch.error_file_id)]
        except openai.APIError as exc:  # the files come at a later look
            log.warning("run %s: batch %s files: %s", self.run_id, record.batch_id, exc)
            self._later(record)
            return
        answers: dict[str, str] = {}
        again: dict[str, str] = {}
        spent: Counter[str] = Counter()
        share = record.prompt_tokens // max(record.requests, 1)
        for line in lines:
            name = line.get("custom_id")
            if not isinstance(name, str):
                continue
            answer = _line_answer(line, share, spent)
            if answer is not None:
                answers[name] = answer
            else:
                again[name] = _why_again(line)
        answers |= self._out_of_tries(again)
        if any(_refuses_cache_key(line) for line in lines):
            # Asked again (above), and without the key: every process's next lines read this.
            self.client.hset(self.keys.meta, CACHE_KEY_REFUSED, "1")
        final = record.model_copy(
            update={
                "status": "collected",
                "next_poll_at": 0.0,
                "error": "" if batch.status == "completed" else batch.status,
            }
        )
        # Some lines are to be asked again: their shard's next batch may hold exactly them,
        # and must not be taken for this one.
        forget = _submission(record) if len(answers) < record.requests else ""
        if self._finish(final, answers, spent, forget):
            self.report.collected.append(record.batch_id)
            self._shards.add(record.shard)
            log.info(
                "run %s: batch %s %s, %d of %d lines stored",
                self.run_id,
                record.batch_id,
                batch.status,
                len(answers),
                record.requests,
            )

    def _out_of_tries(self, again: dict[str, str]) -> dict[str, str]:
        """Error answers for the lines to ask again that have gone out `BATCH_TRIES` times
        already (`again`: custom_id → why it was not answered), so that a line the API keeps
        leaving fails its items instead of going out forever."""
        if not again:
            return {}
        pipe = self.client.pipeline(transaction=False)
        for name in again:
            pipe.hincrby(self.keys.batch_tries, name, 1)
        tries = [int(n) for n in pipe.execute()]
        return {
            name: json.dumps(
                {
                    "error": f"the Batch API left it unanswered in {n} batches (last: {why}); "
                    "run it again with --batch-retry realtime, or later",
                    "requests": 0,
                }
            )
            for (name, why), n in zip(again.items(), tries, strict=True)
            if n >= BATCH_TRIES
        }

    def _failed(self, record: BatchRecord, batch: Batch) -> None:
        errors = list(batch.errors.data or []) if batch.errors is not None else []
        if any(e.code == TOKEN_LIMIT for e in errors):
            refusals = sum(
                1
                for r in records(self.client, self.run_id)
                if r.shard == record.shard and r.status == "failed"
                if r.error.startswith(TOKEN_LIMIT)
            )
            wait = wait_after(self.settings, refusals + 1)
            message = next(e.message for e in errors if e.code == TOKEN_LIMIT)
            final = record.model_copy(
                update={
                    "status": "failed",
                    "error": f"{TOKEN_LIMIT}: {message}",
                    "next_poll_at": self.now + wait,
                }
            )
            if self._finish(final, {}, Counter(), ""):
                self.report.failed.append(record.batch_id)
                log.warning(
                    "run %s: batch %s is over the enqueued-token limit: shard %d submits "
                    "again in %.0f s",
                    self.run_id,
                    record.batch_id,
                    record.shard,
                    wait,
                )
            return
        # The API refused the file: asking again would fail again; its items fail.
        try:
            names = self._custom_ids(record.input_file_id)
        except openai.APIError as exc:
            log.warning("run %s: batch %s input: %s", self.run_id, record.batch_id, exc)
            self._later(record)
            return
        by_line = {e.line: e for e in errors if e.line is not None}
        first = errors[0] if errors else None
        whole = f"{first.code}: {first.message}" if first is not None else "no reason given"
        answers: dict[str, str] = {}
        for number, name in names:
            own = by_line.get(number)
            reason = f"{own.code}: {own.message}" if own is not None else whole
            refused = f"the Batch API refused the batch ({reason})"
            answers[name] = json.dumps({"error": refused, "requests": 0})
        final = record.model_copy(update={"status": "failed", "error": whole, "next_poll_at": 0.0})
        if self._finish(final, answers, Counter(), ""):
            self.report.failed.append(record.batch_id)
            self._shards.add(record.shard)
            log.warning("run %s: batch %s failed: %s", self.run_id, record.batch_id, whole)

    def _lost(self, record: BatchRecord) -> None:
        """The API does not know the batch (any more): forget it, so that its shard's next
        pass submits its lines again."""
        final = record.model_copy(
            update={
                "status": "failed",
                "error": "not_found: the Batch API no longer knows this batch",
                "next_poll_at": 0.0,
            }
        )
        if self._finish(final, {}, Counter(), _submission(record)):
            self.report.failed.append(record.batch_id)
            self._shards.add(record.shard)
            log.warning("run %s: batch %s is unknown to the API", self.run_id, record.batch_id)

    def _forget_submission(self, record: BatchRecord) -> None:
        """A token_limit_exceeded batch's wait is over: its shard submits again."""
        kept = record.model_copy(update={"next_poll_at": 0.0})
        args = [record.batch_id, _submission(record), _json(kept)]
        if self._forget(keys=[self.keys.batches, self.keys.batch_submits], args=args):
            self.report.forgotten.append(record.batch_id)
            self._shards.add(record.shard)

    def _finish(
        self, final: BatchRecord, answers: dict[str, str], spent: Counter[str], forget: str
    ) -> bool:
        """The guarded step to a final record (poller_collect.lua); True if this call took it.

        The batch's budget reservation is settled in the same step: replaced by what `spent`
        says its lines used, at the batch price (a failed batch spent nothing: it is given
        back)."""
        endpoint = self.config.endpoint
        budget_tokens = budget_musd = 0
        if final.reserved_tokens or final.reserved_musd:
            used_prompt = spent[RunCounter.BATCH_PROMPT_TOKENS]
            used_completion = spent[RunCounter.BATCH_COMPLETION_TOKENS]
            used_cached = spent[RunCounter.BATCH_CACHED_PROMPT_TOKENS]
            used_musd = micro_usd(
                self.config, used_prompt, used_completion, BATCH_DISCOUNT, used_cached
            )
            budget_tokens = used_prompt + used_completion - final.reserved_tokens
            budget_musd = used_musd - final.reserved_musd
        keys = [
            self.keys.batches,
            self.keys.batch_answers,
            self.keys.counters,
            batch_enqueued_key(endpoint.base_url, endpoint.model),
            self.keys.batch_submits,
            self.keys.meta,
            self.keys.budget,
        ]
        pairs = [part for item in answers.items() for part in item]
        args: list[str | int | float] = [
            final.batch_id,
            _json(final),
            final.prompt_tokens,
            forget,
            json.dumps(dict(spent)),
            time.time(),
            budget_tokens,
            budget_musd,
            *pairs,
        ]
        return bool(self._collect(keys=keys, args=args))

    def _lines(self, file_id: str | None) -> Iterator[dict[str, Any]]:
        if not file_id:
            return iter(())
        text = self.api.files.content(file_id).text
        return (line for line in map(_parse, text.splitlines()) if line is not None)

    def _custom_ids(self, file_id: str) -> list[tuple[int, str]]:
        """(line number, custom_id) of each request in an input file."""
        if not file_id:
            return []
        text = self.api.files.content(file_id).text
        found = []
        for number, raw in enumerate(text.splitlines(), 1):
            line = _parse(raw)
            if line is not None and isinstance(line.get("custom_id"), str):
                found.append((number, line["custom_id"]))
        return found


def _seen(record: BatchRecord, batch: Batch) -> BatchRecord:
    """The record as the API's Batch object now says, one look more."""
    counts = batch.request_counts
    errors = batch.errors.data if batch.errors is not None and batch.errors.data else []
    return record.model_copy(
        update={
            "status": batch.status,
            "completed": counts.completed if counts is not None else record.completed,
            "failed": counts.failed if counts is not None else record.failed,
            "output_file_id": batch.output_file_id,
            "error_file_id": batch.error_file_id,
            "polls": record.polls + 1,
            "error": f"{errors[0].code}: {errors[0].message}" if errors else record.error,
        }
    )


def _line_answer(line: dict[str, Any], share: int, spent: Counter[str]) -> str | None:
    """What to store for one output or error line (None: ask it again), counting in `spent`
    what the line cost (`share`: prelabel's estimate of a line's prompt, when the line
    reports no usage). An error carries what its request used (`requests`, tokens), for the
    item's usage; an answer is a `Completion`, with the model's `refusal` beside it if any."""
    response = line.get("response")
    if not isinstance(response, dict):  # never ran
        error = line.get("error")
        code = error.get("code") if isinstance(error, dict) else None
        if code in NOT_RUN:
            return None
        message = error.get("message") if isinstance(error, dict) else None
        reason = f"the Batch API did not run the request ({code}): {message}"
        return json.dumps({"error": reason, "requests": 0})
    spent[RunCounter.REQUESTS] += 1
    spent[RunCounter.BATCH_REQUESTS] += 1
    status = response.get("status_code")
    body = response.get("body")
    if status != 200:
        if not isinstance(status, int) or status >= 500 or status == 429:
            return None
        if _refuses_cache_key(line):  # asked again without the key
            return None
        reason = f"the endpoint rejected the request ({status}): {_message(body)}"
        return json.dumps({"error": reason, "requests": 1})
    answer = read_answer(body)
    prompt = answer.prompt_tokens if answer.prompt_tokens is not None else share
    completion = answer.completion_tokens or 0
    prompt, completion = max(prompt, 0), max(completion, 0)
    cached = min(answer.cached_tokens, prompt)  # 0 when the prompt count was missing
    simulated = isinstance(body, dict) and body.get("system_fingerprint") == SIMULATOR_FINGERPRINT
    spent.update(
        {
            RunCounter.PROMPT_TOKENS: prompt,
            RunCounter.COMPLETION_TOKENS: completion,
            RunCounter.CACHED_PROMPT_TOKENS: cached,
            RunCounter.BATCH_PROMPT_TOKENS: prompt,
            RunCounter.BATCH_CACHED_PROMPT_TOKENS: cached,
            RunCounter.BATCH_COMPLETION_TOKENS: completion,
            RunCounter.SIMULATED: int(simulated),
        }
    )
    used = {"requests": 1, "prompt_tokens": prompt, "completion_tokens": completion}
    if answer.problem:
        reason = f"the Batch API answered with {answer.problem}: not a chat completion"
        return json.dumps({"error": reason, **used})
    completion_value = Completion(
        content=answer.content or "",
        prompt_tokens=prompt,
        completion_tokens=completion,
        simulated=simulated,
        finish_reason=answer.finish_reason,
        requests=1,
        choices=answer.choices,
        cached_tokens=cached,
    )
    refusal = {"refusal": answer.refusal} if answer.refusal else {}
    return json.dumps(completion_value.to_json() | refusal)


def _refuses_cache_key(line: dict[str, Any]) -> bool:
    """Whether the endpoint answered the line with a 400 refusing `prompt_cache_key`."""
    response = line.get("response")
    if not isinstance(response, dict) or response.get("status_code") != 400:
        return False
    return refuses_cache_key(_message(response.get("body")))


def _why_again(line: dict[str, Any]) -> str:
    """Why a line is asked again, in a few words: the API's code, or the answer's status."""
    response = line.get("response")
    if isinstance(response, dict):
        return f"HTTP {response.get('status_code')}"
    error = line.get("error")
    return str(error.get("code")) if isinstance(error, dict) else "no answer"


def _message(body: object) -> str:
    if isinstance(body, dict):
        inner = body.get("error", body)
        if isinstance(inner, dict) and inner.get("message"):
            return str(inner["message"])[:200]
    return str(body)[:200]


def _parse(raw: str) -> dict[str, Any] | None:
    try:
        line = json.loads(raw)
    except ValueError:
        return None
    return line if isinstance(line, dict) else None


def _submission(record: BatchRecord) -> str:
    """The record's field in `RunKeys.batch_submits`."""
    return f"{record.shard}:{record.key}"


def _json(record: BatchRecord) -> str:
    return record.model_dump_json()


# --- the fleet's pass -------------------------------------------------------------------


class BatchPoller:
    """The poller of one worker's reconciler thread: its clients, one per endpoint."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._clients: dict[tuple[str, str], openai.OpenAI] = {}
        self._no_key: set[str] = set()

    def run_pass(self, client: redis.Redis, now: float | None = None) -> dict[str, PollReport]:
        """Poll every run of this worker's queue that has batches, if no other poller is
        acting now; returns what it did, by run."""
        token = secrets.token_hex(8)
        lock_ms = max(int(self.settings.reconcile_interval * 2000), 1000)
        if not client.set(POLLER_LOCK, token, nx=True, px=lock_ms):
            return {}
        done: dict[str, PollReport] = {}

        def keepalive() -> None:
            """A long pass keeps its lock (a dead poller's runs out)."""
            if client.get(POLLER_LOCK) == token.encode():
                client.pexpire(POLLER_LOCK, lock_ms)

        try:
            for run_id, config in _runs_with_batches(client, self.settings.queue):
                api = self._client(config.endpoint.base_url)
                if api is None:
                    continue
                try:
                    done[run_id] = poll_run(client, api, self.settings, run_id, now, keepalive)
                except (openai.APIError, PrelabelError, ValidationError) as exc:
                    log.warning("batch poller: run %s: %s", run_id, exc)
        finally:
            if client.get(POLLER_LOCK) == token.encode():
                client.delete(POLLER_LOCK)
        return done

    def _client(self, base_url: str) -> openai.OpenAI | None:
        """The client for `base_url`, or None when the workers hold no key for it."""
        try:
            key = api_key_for(self.settings, base_url)
        except ConfigError:
            if base_url not in self._no_key:
                self._no_key.add(base_url)
                log.info("batch poller: no API key for %s here: its batches are left", base_url)
            return None
        if (base_url, key) not in self._clients:
            self._clients[(base_url, key)] = openai.OpenAI(
                base_url=base_url, api_key=key, timeout=self.settings.request_timeout
            )
        return self._clients[(base_url, key)]

    def close(self) -> None:
        for api in self._clients.values():
            api.close()
        self._clients.clear()


def _runs_with_batches(client: redis.Redis, queue: str) -> Iterable[tuple[str, RunConfig]]:
    """Runs of `queue` (whatever their status) with a batch the poller still has work on."""
    default = Settings.model_fields["queue"].default
    for raw in cast("list[bytes]", client.zrange(RUNS, 0, -1)):
        run_id = raw.decode()
        keys = RunKeys(run_id)
        if not client.exists(keys.batches):
            continue
        run_queue, raw_config = cast(
            "list[bytes | None]", client.hmget(keys.meta, ["queue", "config"])
        )
        if raw_config is None or (run_queue or default.encode()) != queue.encode():
            continue
        pending = any(
            r.status not in DONE or (r.status == "failed" and r.next_poll_at > 0)
            for r in records(client, run_id)
        )
        if pending:
            yield run_id, RunConfig.model_validate_json(raw_config)
