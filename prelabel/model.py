"""The domain model's core: records to label, label sets, results and a run's configuration.

A task type (`task_types`) subclasses `Record` and `ItemResult` with what it needs. All of
these are frozen pydantic models, so they cross process boundaries (Redis, files) as JSON
and come back validated.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, model_validator

from prelabel.frozen import Frozen

#: The task a run labels when its configuration names none (`task_types.get(DEFAULT_TASK)`).
DEFAULT_TASK = "ner"
#: The default task's prompt version (a test in task_types checks that they agree).
DEFAULT_PROMPT_VERSION = "ner-v3"


class Record(Frozen):
    """One item to label; a task type's record model adds what it needs (tokens, gold)."""

    id: str
    text: str


class Label(Frozen):
    """A label as the model sees it (`name`), and as the dataset calls it (`tag`)."""

    name: str
    tag: str
    description: str = ""


class LabelSet(Frozen):
    """The labels a run asks for, in the order the prompt lists them.

    Empty means the task type's default label set (`Labeling.labels`).
    """

    labels: tuple[Label, ...] = ()

    def by_name(self) -> dict[str, Label]:
        return {t.name: t for t in self.labels}

    def by_tag(self) -> dict[str, Label]:
        return {t.tag: t for t in self.labels}


class Usage(Frozen):
    """Tokens and calls spent on one item (a batched call's usage is shared out)."""

    prompt_tokens: int = 0
    completion_tokens: int = 0
    requests: int = 0
    #: Of `prompt_tokens`, those the provider served from its prompt cache.
    cached_tokens: int = 0

    def __add__(self, other: Usage) -> Usage:
        return Usage(
            prompt_tokens=self.prompt_tokens + other.prompt_tokens,
            completion_tokens=self.completion_tokens + other.completion_tokens,
            requests=self.requests + other.requests,
            cached_tokens=self.cached_tokens + other.cached_tokens,
        )


ItemStatus = Literal["labeled", "failed"]
ReasoningEffort = Literal["minimal", "low", "medium", "high"]


class Scored(Frozen):
    """One label or mention an answer proposed for an item, and how sure the model is of it
    (`ConfidenceConfig`): what review, Kili, Label Studio and the calibration figures read,
    whatever the task type."""

    #: The label's tag (the dataset's name for it).
    label: str
    #: In [0, 1].
    confidence: float = Field(ge=0.0, le=1.0)
    #: NER: the mention's text; classification: "".
    text: str = ""
    #: NER: the mention's character span in the item's text (None: it could not be placed).
    start: int | None = None
    end: int | None = None
    #: False: the verification rejected it and the run drops what it rejects, so it is not in
    #: the item's predictions (it stays here, for review).
    kept: bool = True


class ItemResult(Frozen):
    """What a worker commits for one item: its failure, or (in a task type's result model,
    a subclass) its prediction."""

    id: str
    status: ItemStatus
    error: str | None = None
    usage: Usage = Usage()
    model: str = ""
    prompt_version: str = ""
    #: How sure the model is of the item's whole answer, in [0, 1] (None: not measured, or
    #: the item failed); review goes from the least sure item to the surest.
    confidence: float | None = Field(None, ge=0.0, le=1.0)
    #: Each proposed label or mention with its own confidence, in the answer's order.
    scores: tuple[Scored, ...] = ()

    def counts(self) -> dict[str, int]:
        """What this result adds to the run's counters beside labeled/failed (its task
        type's `counters`); committed once with it."""
        return {}


class Endpoint(Frozen):
    """How a run's calls are made: to which model, with which parameters (the cache key's),
    and whether an identical request reuses a cached answer."""

    model: str
    base_url: str
    temperature: float = 0.0
    max_tokens: int = Field(512, gt=0)
    #: For reasoning models (o-series, gpt-5): how much they think before they answer. Their
    #: thinking counts against `max_tokens` (sent as `max_completion_tokens`).
    reasoning_effort: ReasoningEffort | None = None
    #: `json_schema` (strict structured outputs), `json_object` (JSON mode), or `auto`: the
    #: schema, falling back to JSON mode when the endpoint rejects it.
    response_format: Literal["auto", "json_schema", "json_object"] = "auto"
    #: Reuse answers cached for identical requests (a rerun or a resume never pays twice).
    cache: bool = True


class Limits(Frozen):
    """How the run's work is cut and paced: items per request and per shard, and the caps
    (None: the workers' own, `PRELABEL_CAPS`)."""

    rpm: int | None = Field(None, gt=0)
    tpm: int | None = Field(None, gt=0)
    #: Items per request (the command line's default depends on the model:
    #: `prelabel.defaults.default_batch_size`).
    batch_size: int = Field(1, ge=1)
    shard_size: int = Field(50, ge=1)


class Spend(Frozen):
    """What the run may spend and what its tokens cost."""

    #: Stop admitting calls once the run has spent this much (None: no budget).
    budget_usd: float | None = Field(None, gt=0)
    budget_tokens: int | None = Field(None, gt=0)
    #: USD per million prompt and completion tokens, resolved when the run is created.
    price_input: float | None = None
    price_output: float | None = None
    #: USD per million prompt tokens served from the provider's prompt cache (None: the
    #: model has no cached-input price, its cached tokens cost `price_input`).
    price_cached_input: float | None = None


class LabelingConfig(Frozen):
    """What is asked of the model: the task type, its labels, its prompt and examples."""

    #: The task type (`task_types.get(task)`): what is labeled, and how.
    task: str = DEFAULT_TASK
    prompt_version: str = DEFAULT_PROMPT_VERSION
    #: The labels to ask for; empty: the task type's default.
    labels: LabelSet = LabelSet()
    #: Labelled examples per request (0: none), chosen by this strategy from the pool that
    #: the producer stored with the run (`RunKeys.fewshot`).
    few_shot: int = Field(0, ge=0, le=50)
    few_shot_strategy: str = "similar"
    #: A user's system-prompt template (`--prompt-file`); None is the built-in one.
    system_template: str | None = None


TransportName = Literal["realtime", "batch", "auto"]


class Delivery(Frozen):
    """Which transport answers the run's requests, and how.

    `realtime`: one HTTP call per request, under the fleet's shared bucket. `batch`: OpenAI's
    Batch API, half the price, answers within 24 hours: each shard pass's requests go into one
    batch file, and the answers are labeled when the batch is back. `auto`: batch, then what
    is not back by `deadline` less `margin_seconds` goes through the realtime transport.
    """

    transport: TransportName = "realtime"
    #: `auto`: when the run must be done (Unix time); None: no deadline (batch only).
    deadline: float | None = None
    margin_seconds: float = Field(3600.0, ge=0)
    #: Prompt tokens the fleet may have waiting in batches for the run's model (OpenAI's
    #: enqueued-token limit; None: the workers' `PRELABEL_CAPS` `enqueued_tokens`, else none).
    enqueued_tokens: int | None = Field(None, gt=0)
    #: Where a batch line that failed or expired is asked again: in a new batch, or realtime.
    retry: Literal["batch", "realtime"] = "batch"


ConfidenceMethod = Literal["none", "logprobs", "consistency", "verify"]


class ConfidenceConfig(Frozen):
    """How a run measures how sure the model is of each item and each label or mention.

    - `logprobs`: from the answer's token log-probabilities (the endpoint must return them);
    - `consistency`: `samples` answers sampled at `temperature` (the `n` parameter where the
      endpoint takes it, else as many calls); the answer is their vote and a proposal's
      confidence the share of samples that agree on it;
    - `verify`: after the answer, one more, short question per item: is each proposal right
      (and, where several labels may apply, is anything missing)? Its yes/no answers (and
      their log-probabilities, when returned) make the confidence; with `drop_rejected`,
      what it rejects leaves the predictions.
    """

    method: ConfidenceMethod = "none"
    samples: int = Field(5, ge=2, le=20)
    temperature: float = Field(1.0, ge=0.0, le=2.0)
    drop_rejected: bool = False
    #: Alternatives asked per answer token when log-probabilities are asked (`top_logprobs`).
    top_logprobs: int = Field(5, ge=0, le=20)

    @property
    def enabled(self) -> bool:
        return self.method != "none"

    def describe(self) -> str:
        """The method as `--confidence` spells it (`consistency:5`, `verify`, `none`)."""
        if self.method == "consistency":
            return f"consistency:{self.samples}"
        return self.method

    @classmethod
    def parse(cls, text: str, **options: Any) -> ConfidenceConfig:
        """`--confidence`'s value: `none`, `logprobs`, `consistency:N` (N from 2 to 20;
        `consistency` alone is 5 samples) or `verify`. ValueError with the fix otherwise."""
        name, _, count = text.strip().casefold().partition(":")
        if name not in ("none", "logprobs", "consistency", "verify") or (
            count and name != "consistency"
        ):
            raise ValueError(
                f"unknown confidence method {text!r}: use none, logprobs, consistency:N "
                "(N samples, 2 to 20) or verify"
            )
        if name == "consistency" and count:
            if not count.isdigit() or not 2 <= int(count) <= 20:
                raise ValueError(
                    f"consistency needs 2 to 20 samples, got {count!r}: e.g. consistency:5"
                )
            options["samples"] = int(count)
        return cls(method=name, **options)


#: RunConfig's groups, by field name.
_GROUPS: dict[str, type[Frozen]] = {
    "endpoint": Endpoint,
    "limits": Limits,
    "spend": Spend,
    "labeling": LabelingConfig,
    "delivery": Delivery,
}


class RunConfig(Frozen):
    """Everything a worker needs to label a run's items. It never holds an API key.

    Beside the run's identity and size, its settings come in groups, each read mostly by one
    part: `endpoint` by the transport (and the cache key), `limits` by the bucket and the
    producer's cutting, `spend` by the budget and the cost figures, `labeling` by the task
    type, `delivery` by the workers choosing a transport. Older runs wrote them flat; they
    still read.
    """

    run_id: str
    dataset: str = ""
    split: str = ""
    total: int = 0
    shards: int = 0
    created_at: float = 0.0
    endpoint: Endpoint
    limits: Limits = Limits()
    spend: Spend = Spend()
    labeling: LabelingConfig = LabelingConfig()
    delivery: Delivery = Delivery()
    #: How sure the model is of each answer (`--confidence`); not a flat group of older runs.
    confidence: ConfidenceConfig = ConfidenceConfig()

    @model_validator(mode="before")
    @classmethod
    def _read_older_shapes(cls, data: Any) -> Any:
        """A run.json or a Redis run written by an older version (a run folder outlives the
        version that wrote it): its settings flat rather than grouped, its label set as
        `ontology`, `{"types": [...]}`."""
        if not isinstance(data, dict):
            return data
        data = dict(data)
        if "ontology" in data and "labels" not in data:
            old = data.pop("ontology")
            data["labels"] = {"labels": old.get("types", ())} if isinstance(old, dict) else old
        for group, model in _GROUPS.items():
            flat = {k: data.pop(k) for k in model.model_fields if k in data}
            if flat:
                nested = data.get(group, {})
                data[group] = {**flat, **(nested if isinstance(nested, dict) else {})}
        return data


#: Header on every simulator response, so reports can say the answers were not a model's.
SIMULATOR_HEADER = "x-prelabel-simulator"
#: Header naming a request's item ids (a JSON list). Sent to local endpoints only: it lets
#: the simulator tell apart identical sentences whose gold labels differ.
ITEM_IDS_HEADER = "x-prelabel-item-ids"
