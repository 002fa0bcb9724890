"""What a run will cost, before it starts: requests, tokens and price.

Prompt tokens are counted on the very messages the workers will send (same batches, same
few-shot examples, same system prompt; `workers.requests.RequestBuilder`), with the model's
own encoding: exact for OpenAI models, an upper estimate for others (`workers.tokens`).

Prompt tokens are the messages' plus the response format's JSON schema, which structured
outputs bill as input: counted as its compact JSON in the model's encoding, an estimate
(`workers.tokens.count_schema_tokens`; OpenAI does not publish how it renders a schema). Of
them, the tokens the provider's prompt cache is expected to serve (`producer.cache_estimate`:
a stable prefix of at least 1,024 tokens seen before, in 128-token steps) are priced at the
cached-input price, and the dollars per 1,000 items are split into uncached input, cached
input and output, realtime and through the Batch API.

Completion tokens cannot be known before the model answers. Two figures are given:
- an estimate: an answer of plausible length in the prompt's format, guessed by the task type
  (`Labeling.guess_answer`);
- a bound: `max_tokens` per request, which is also what a provider counts against the
  tokens/min cap at admission.

A run that measures confidence (`--confidence`) costs more, and its figures include it:
`consistency:N` asks N answers per request (`n`: the prompt billed once, N answers; an
endpoint that ignores `n` gets N calls, N prompts, which the table says too), `verify` one
more request per item (its real question about the guessed answer's proposals, and a yes or
no for each). `logprobs` costs nothing more.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from dataclasses import dataclass

from rich.table import Table

import task_types
from prelabel.defaults import DEFAULT_BATCH_SIZE
from prelabel.model import (
    ConfidenceConfig,
    Endpoint,
    Limits,
    Record,
    RunConfig,
    Spend,
)
from prelabel.pricing import BATCH_DISCOUNT, Bill, Price, Tokens, price_for, stored_price
from prelabel.status import bill_text
from producer.cache_estimate import PrefixCache
from producer.labeling import Labeling, LabelingOptions, default_labels, resolve_labeling
from producer.loading import DatasetSpec, load_dataset_records
from task_types import verification
from task_types.verification import Verdicts
from workers.fewshot import make_selector
from workers.requests import RequestBuilder
from workers.tokens import (
    count_message_tokens,
    count_request_tokens,
    count_schema_tokens,
    count_tokens,
    is_exact,
)


@dataclass(frozen=True)
class Estimate:
    """A run's planned requests and tokens, and their price when the model's price is known."""

    model: str
    items: int
    requests: int
    prompt_tokens: int
    completion_tokens: int
    completion_bound: int
    exact_prompt: bool
    price: Price | None
    batch_size: int
    few_shot: int
    #: Requests whose estimated answer does not fit in `max_tokens`: raise it, or batch less.
    over_max_tokens: int = 0
    #: The run's transport: `batch` is priced at the Batch API's price, `auto` between it and
    #: the realtime price (how much goes realtime depends on when the batches are back).
    transport: str = "realtime"
    #: `--confidence` as given, and what it adds to the figures above (included in them).
    confidence: str = "none"
    extra_requests: int = 0
    extra_prompt_tokens: int = 0
    extra_completion_tokens: int = 0
    #: consistency:N: the prompt tokens N calls would add where the endpoint ignores `n`.
    ignored_n_prompt_tokens: int = 0
    #: Of `prompt_tokens`, the response format's schemas (estimated: `count_schema_tokens`),
    #: and those expected from the provider's prompt cache (`producer.cache_estimate`).
    schema_tokens: int = 0
    cached_tokens: int = 0

    def _cost(self, completion: int) -> float | None:
        if self.price is None:
            return None
        if self.transport == "batch":
            return self.price.batch_cost(self.prompt_tokens, completion, self.cached_tokens)
        return self.price.cost(self.prompt_tokens, completion, cached=self.cached_tokens)

    def bill(self, batch: bool = False) -> Bill | None:
        """The estimated tokens' bill, all realtime or (`batch`) all through the Batch API."""
        if self.price is None:
            return None
        counts = (self.prompt_tokens, self.completion_tokens, self.cached_tokens)
        return Bill.of(self.price, Tokens(*counts, *counts) if batch else Tokens(*counts))

    @property
    def message_tokens(self) -> int:
        """Prompt tokens of the messages (the rest is the schemas)."""
        return self.prompt_tokens - self.schema_tokens

    @property
    def cost_usd(self) -> float | None:
        """Price of the prompt tokens and the estimated completion tokens, at the transport's
        price (auto: at most the realtime price, the figure given)."""
        return self._cost(self.completion_tokens)

    @property
    def cost_bound_usd(self) -> float | None:
        """Price if every request used its whole `max_tokens`."""
        return self._cost(self.completion_bound)

    @property
    def batch_cost_usd(self) -> float | None:
        """Price of the estimated tokens, all through the Batch API (auto's lowest)."""
        if self.price is None:
            return None
        return self.price.batch_cost(self.prompt_tokens, self.completion_tokens, self.cached_tokens)

    @property
    def tokens_per_item(self) -> float:
        return (self.prompt_tokens + self.completion_tokens) / self.items if self.items else 0.0

    def minutes_at(self, rpm: int | None, tpm: int | None) -> float | None:
        """The shortest wall time the caps allow (tokens counted as admitted: prompt + max)."""
        limits = []
        if rpm:
            limits.append(self.requests / rpm)
        if tpm:
            limits.append((self.prompt_tokens + self.completion_bound) / tpm)
        return max(limits) if limits else None


def estimate_run(
    spec: DatasetSpec,
    *,
    model: str,
    base_url: str,
    shard_size: int = 50,
    batch_size: int = DEFAULT_BATCH_SIZE,
    max_tokens: int = 512,
    labeling: LabelingOptions | None = None,
    transport: str = "realtime",
    confidence: ConfidenceConfig | None = None,
) -> Estimate:
    """Load `spec` and resolve the labeling choices as `prelabel run` would, then estimate.

    Needs neither Redis nor the endpoint: an estimate can be made anywhere.
    """
    options = labeling or LabelingOptions()
    dataset, _ = default_labels(load_dataset_records(spec, options.task), options)
    resolved = resolve_labeling(dataset, spec, options)
    price = price_for(model)
    config = RunConfig(
        run_id="estimate",
        endpoint=Endpoint(
            model=model,
            base_url=base_url,
            max_tokens=max_tokens,
            response_format=options.response_format,
        ),
        limits=Limits(batch_size=batch_size, shard_size=shard_size),
        spend=Spend(
            price_input=price.input if price else None,
            price_output=price.output if price else None,
            price_cached_input=price.cached_input if price else None,
        ),
        labeling=resolved.config,
        confidence=confidence or ConfidenceConfig(),
    )
    estimate = estimate_requests(dataset.records, config, resolved)
    return dataclasses.replace(estimate, transport=transport)


def estimate_requests(
    records: Sequence[Record], config: RunConfig, labeling: Labeling | None = None
) -> Estimate:
    """Count the requests a run of `config` over `records` sends, shard by shard, batch by batch.

    `labeling` carries the few-shot pool; without it (or with `config.labeling.few_shot == 0`) the
    requests have no examples.
    """
    task = task_types.get(config.labeling.task)
    selector = None
    if config.labeling.few_shot and labeling is not None and labeling.pool:
        strategy = config.labeling.few_shot_strategy
        selector = make_selector(strategy, labeling.pool, task.example_labels)
    builder = RequestBuilder(config, selector)
    labels = task.labels(config)
    model = config.endpoint.model
    method = config.confidence
    samples = method.samples if method.method == "consistency" else 1
    requests = prompt = completion = over = schema = cached = 0
    extra = _Extra()
    prefixes = PrefixCache(model)
    for start in range(0, len(records), config.limits.shard_size):
        shard = records[start : start + config.limits.shard_size]
        for first in range(0, len(shard), config.limits.batch_size):
            batch = shard[first : first + config.limits.batch_size]
            requests += 1
            messages = builder.messages(batch)
            response_format = builder.response_format(batch)
            in_schema = count_schema_tokens(response_format, model)
            asked = count_message_tokens(messages, model) + in_schema
            prompt += asked
            schema += in_schema
            cached += prefixes.cached(messages, response_format, in_schema)
            guessed = task.guess_answer(batch, labels)
            answer = count_tokens(guessed, model)
            completion += answer * samples
            extra.completion += answer * (samples - 1)
            extra.ignored_n += asked * (samples - 1)
            over += answer > config.endpoint.max_tokens
            if method.method == "verify":
                extra.verify(task, batch, guessed, config)
    return Estimate(
        model=model,
        items=len(records),
        requests=requests + extra.requests,
        prompt_tokens=prompt + extra.prompt,
        completion_tokens=completion + extra.completion_verify,
        completion_bound=requests * config.endpoint.max_tokens * samples + extra.bound,
        exact_prompt=is_exact(model),
        price=stored_price(config),
        batch_size=config.limits.batch_size,
        few_shot=config.labeling.few_shot if selector is not None else 0,
        over_max_tokens=over,
        confidence=method.describe(),
        extra_requests=extra.requests,
        extra_prompt_tokens=extra.prompt,
        extra_completion_tokens=extra.completion + extra.completion_verify,
        ignored_n_prompt_tokens=extra.ignored_n,
        schema_tokens=schema,
        cached_tokens=cached,
    )


@dataclass
class _Extra:
    """What confidence adds to an estimate (`Estimate.extra_*`)."""

    requests: int = 0
    prompt: int = 0
    completion: int = 0  # consistency's further answers
    completion_verify: int = 0
    bound: int = 0
    ignored_n: int = 0

    def verify(
        self, task: task_types.Labeling, batch: Sequence[Record], guessed: str, config: RunConfig
    ) -> None:
        """One verification per item of `batch`, about its guessed answer's proposals."""
        from workers.measure import VERIFY_BASE_TOKENS, VERIFY_TOKENS_PER_PROPOSAL

        model = config.endpoint.model
        asks_missing = not task.single_label
        labels = task.labels(config)
        for record, answer in zip(batch, task.parse(guessed, len(batch), config), strict=True):
            proposals = [] if isinstance(answer, Exception) else task.proposals(answer, config)
            messages = verification.messages(
                record.text, proposals, labels, asks_missing=asks_missing, noun=task.proposal_noun
            )
            said = Verdicts((True,) * len(proposals), False if asks_missing else None)
            self.requests += 1
            schema = verification.response_format(len(proposals), asks_missing=asks_missing)
            self.prompt += count_request_tokens(messages, schema, model)
            self.completion_verify += count_tokens(verification.answer(said), model)
            self.bound += VERIFY_BASE_TOKENS + VERIFY_TOKENS_PER_PROPOSAL * len(proposals)


def render_estimate(est: Estimate, rpm: int | None = None, tpm: int | None = None) -> Table:
    """The estimate as a two-column table for the terminal."""
    title = "Estimate (before the run)"
    if est.transport != "realtime":
        title += f", transport {est.transport}"
    table = Table(title=title, title_justify="left", show_header=False)
    table.add_column("figure")
    table.add_column("value", justify="right")
    exact = "exact" if est.exact_prompt else "estimated: unknown tokenizer, o200k × 1.5"
    setting = f"batch {est.batch_size}, {est.few_shot} few-shot examples"
    rows = [
        ("model", est.model),
        ("setting", setting),
        ("items", f"{est.items:,}"),
        ("requests", f"{est.requests:,}"),
        ("prompt tokens (messages + schema)", f"{est.prompt_tokens:,}"),
        (f"  messages ({exact})", f"{est.message_tokens:,}"),
        ("  schema (estimated: its compact JSON, billed as input)", f"{est.schema_tokens:,}"),
        (
            "  expected from the prompt cache (estimated: stable prefix ≥ 1,024)",
            f"{est.cached_tokens:,}",
        ),
        ("completion tokens (estimated from capitalised words)", f"{est.completion_tokens:,}"),
        (
            "completion tokens (bound: max_tokens × requests)"
            if est.confidence == "none"
            else "completion tokens (bound: max_tokens × answers)",
            f"{est.completion_bound:,}",
        ),
        ("tokens per item (prompt + estimated completion)", f"{est.tokens_per_item:,.1f}"),
    ]
    if est.price is None:
        rows.append(("price", f"unknown for {est.model}: add it to the file in PRELABEL_PRICES"))
    else:
        rows.extend(_price_rows(est, est.price))
        rows.extend(_per_thousand_rows(est))
    if est.over_max_tokens:
        rows.append(
            (
                "[yellow]warning[/]",
                f"{est.over_max_tokens:,} requests may need more than max_tokens for their "
                "answer: raise --max-tokens or lower --batch-size",
            )
        )
    if est.confidence != "none":
        rows.append(
            (
                f"of which for confidence ({est.confidence})",
                f"{est.extra_requests:,} requests, {est.extra_prompt_tokens:,} prompt + "
                f"{est.extra_completion_tokens:,} completion tokens",
            )
        )
    if est.ignored_n_prompt_tokens:
        rows.append(
            (
                "if the endpoint ignores n (N calls)",
                f"+{est.ignored_n_prompt_tokens:,} prompt tokens, requests × "
                f"{est.confidence.partition(':')[2]}",
            )
        )
    minutes = est.minutes_at(rpm, tpm)
    if minutes is not None:
        rows.append(("shortest time at the caps", _duration(minutes)))
    for name, value in rows:
        table.add_row(name, value)
    return table


def _price_rows(est: Estimate, price: Price) -> list[tuple[str, str]]:
    listed = f"{price.input} / {price.output}"
    cached = (
        f"cached input {price.cached_input} (Batch API half)"
        if price.cached_input is not None
        else "no cached-input discount"
    )
    if est.transport == "batch":
        half = f"{price.input * BATCH_DISCOUNT:g} / {price.output * BATCH_DISCOUNT:g}"
        return [
            ("price (estimated, Batch API: half the list price)", _usd(est.cost_usd)),
            ("price (bound, Batch API)", _usd(est.cost_bound_usd)),
            ("prices used (USD per 1M in/out)", f"{half} (Batch API; list {listed})"),
            ("cached input (USD per 1M)", cached),
        ]
    if est.transport == "auto":
        return [
            (
                "price (estimated, auto)",
                f"{_usd(est.batch_cost_usd)} to {_usd(est.cost_usd)}: all back from the Batch "
                "API by the deadline, or all realtime (at most the latter)",
            ),
            ("price (bound, at most)", _usd(est.cost_bound_usd)),
            ("prices used (USD per 1M in/out)", f"{listed} (realtime; Batch API half)"),
            ("cached input (USD per 1M)", cached),
        ]
    return [
        ("price (estimated)", _usd(est.cost_usd)),
        ("price (bound)", _usd(est.cost_bound_usd)),
        ("prices used (USD per 1M in/out)", listed),
        ("cached input (USD per 1M)", cached),
    ]


def _per_thousand_rows(est: Estimate) -> list[tuple[str, str]]:
    """Dollars per 1,000 items, split uncached input / cached input / output, realtime and
    through the Batch API (the estimated completion, the expected cached tokens)."""
    rows = []
    for name, batch in (("realtime", False), ("Batch API", True)):
        bill = est.bill(batch)
        per_k = bill.per_thousand(est.items) if bill is not None else None
        if per_k is not None:
            rows.append((f"$ per 1,000 items, {name}", f"{_usd(per_k.total)}: {bill_text(per_k)}"))
    return rows


def _usd(value: float | None) -> str:
    return "unknown" if value is None else f"${value:,.4f}"


def _duration(minutes: float) -> str:
    hours, rest = divmod(math.ceil(minutes * 60), 3600)
    return f"{hours}h{rest // 60:02d}m" if hours else f"{rest // 60}m{rest % 60:02d}s"
