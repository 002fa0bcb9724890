"""Every Redis key prelabel writes, in one place, so the data layout reads at a glance.

Per run (`{run}` is the run id):

    prelabel:run:{run}                 hash    config (RunConfig JSON), status, error, timestamps
                                               (created_at, updated_at, active_at: a worker's
                                               last spend), skipped (the input items that could
                                               not be read, JSON list of [id, reason]), caps
                                               (the caps workers apply, JSON), queue (Celery's:
                                               only that queue's reconcilers judge the run),
                                               out (`run --out`, absolute), counters (the
                                               task type's own, JSON list of CounterSpec)
    prelabel:run:{run}:counters        hash    the run's counters, named by
                                               `prelabel.counters.RunCounter`: labeled, failed,
                                               requests, prompt_tokens, completion_tokens,
                                               rate_limited, retries and the task type's own
                                               (NER: unaligned) from creation, at 0;
                                               cache_hits, simulated, bucket_wait_ms,
                                               paused_ms, pause_until_ms, pause_asked_ms (once
                                               first written)
    prelabel:run:{run}:shard:{n}       string  the shard's records, JSON list of Record
    prelabel:run:{run}:results         hash    item id -> ItemResult JSON (written once, HSETNX)
    prelabel:run:{run}:done            set     shards whose every item is committed
    prelabel:run:{run}:attempts        hash    shard -> how many times a task started on it
    prelabel:run:{run}:leases          zset    shard -> server time (s) its lease runs out;
                                               a worker heartbeats it while labeling the shard
    prelabel:run:{run}:holders         hash    shard -> token of the task holding its lease
    prelabel:run:{run}:budget          hash    tokens and musd (micro-dollars) reserved or spent
    prelabel:run:{run}:fewshot         string  the few-shot example pool, JSON list of
                                               {text, mentions} (only with --few-shot)
    prelabel:runs                      zset    run ids by creation time

Shared by all runs:

    prelabel:cache:{digest}            string  a completed answer, by hash of (endpoint, model,
                                               messages, parameters); expires
    prelabel:reconciler                string  lock held by the one reconciler acting now
    {queue} (default `prelabel`)       list    Celery's queue of shard tasks (Kombu's; its
                                               `unacked` hash and `unacked_index` zset hold
                                               the messages delivered and not yet acknowledged)

Shared by every run against one account (endpoint, model, key fingerprint):

    prelabel:bucket:{account}          hash    req and tok levels, ts (their last refill), creq
                                               and ctok (running totals charged)
    prelabel:bucket:{account}:pause    string  server time (µs) before which nothing is admitted
"""

from __future__ import annotations

from dataclasses import dataclass

PREFIX = "prelabel"
RUNS = f"{PREFIX}:runs"


@dataclass(frozen=True, slots=True)
class RunKeys:
    """The keys of one run."""

    run_id: str

    @property
    def meta(self) -> str:
        return f"{PREFIX}:run:{self.run_id}"

    @property
    def counters(self) -> str:
        return f"{self.meta}:counters"

    @property
    def results(self) -> str:
        return f"{self.meta}:results"

    def shard(self, n: int) -> str:
        return f"{self.meta}:shard:{n}"

    @property
    def done(self) -> str:
        return f"{self.meta}:done"

    @property
    def attempts(self) -> str:
        return f"{self.meta}:attempts"

    @property
    def leases(self) -> str:
        return f"{self.meta}:leases"

    @property
    def holders(self) -> str:
        return f"{self.meta}:holders"

    @property
    def budget(self) -> str:
        return f"{self.meta}:budget"

    @property
    def batches(self) -> str:
        """Batch API batches by id: a `prelabel.batches.BatchRecord` JSON each."""
        return f"{self.meta}:batches"

    @property
    def batch_submits(self) -> str:
        """Submission key (`SHARD:KEY`) → `submitting:<unix time>` before the batch is created,
        its batch id after: a task that died in between finds the batch by its metadata."""
        return f"{self.meta}:batch-submits"

    @property
    def batch_tries(self) -> str:
        """A batch line's `custom_id` → how many batches left it unanswered (expired,
        cancelled, 5xx): past `workers.batch_poller.BATCH_TRIES` its items fail."""
        return f"{self.meta}:batch-tries"

    @property
    def batch_answers(self) -> str:
        """A collected batch line's `custom_id` → its answer (a `Completion` as JSON) or why it
        failed (`{"error": ...}`), until the shard's next pass labels it."""
        return f"{self.meta}:batch-answers"

    @property
    def fewshot(self) -> str:
        return f"{self.meta}:fewshot"


RECONCILER_LOCK = f"{PREFIX}:reconciler"


def batch_enqueued_key(base_url: str, model: str) -> str:
    """The prompt tokens the fleet has waiting in batches for `model` at `base_url` (OpenAI's
    enqueued-token limit is per model and organisation)."""
    return f"{PREFIX}:batch-enqueued:{base_url}:{model}"


def cache_key(digest: str) -> str:
    return f"{PREFIX}:cache:{digest}"


@dataclass(frozen=True, slots=True)
class BucketKeys:
    """The keys of one account's shared rate-limit bucket."""

    account: str

    @property
    def bucket(self) -> str:
        return f"{PREFIX}:bucket:{self.account}"

    @property
    def pause(self) -> str:
        return f"{self.bucket}:pause"
