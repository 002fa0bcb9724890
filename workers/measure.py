"""The labeler's side of `--confidence`: how a request is asked, and how sure its answer is.

`ShardLabeler` hands each request to `Confidence.complete`, reads the answers with
`Confidence.read`, predicts, and gives the results to `Confidence.finish`:

- `logprobs`: the request asks for token log-probabilities; each item's answer is measured
  on them (`workers.confidence.spans`). An endpoint that returns none stops the run.
- `consistency:N`: N samples at the method's temperature, by `n` in one call, or as N calls
  with seeds 0..N-1 where the endpoint answered fewer choices than asked (remembered per
  endpoint, `SamplingMemory`); each item's answer is the samples' vote
  (`workers.confidence.vote`).
- `verify`: after the prediction, one short question per labeled item
  (`task_types.verification`) through the same caller; its yes/no answers make the
  confidence (`workers.confidence.verdicts`), and with `drop_rejected` what it rejects leaves
  the prediction. A verification that fails leaves the item labeled, unmeasured.

Every call charges its usage through `charge` as it is made, whatever happens next, so that
the items' usage adds up to the run's.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from prelabel.errors import BudgetReached, Deferred, ItemError
from prelabel.model import ItemResult, Record, RunConfig, Usage
from task_types import Labeling
from task_types import verification as verify_format
from task_types.verification import Proposal
from workers.calls import Answer, GuardedCaller
from workers.confidence import Measured, logprob_confidence, verdict_confidence, vote
from workers.json_mode import SchemaRefusals
from workers.sampling import SamplingMemory
from workers.tokens import count_request_tokens
from workers.transports import CallFailed, ChatRequest, Completion, RunStopped
from workers.transports.base import Choice
from workers.transports.chat import is_reasoning_model

log = logging.getLogger(__name__)

#: What the answer to a verification may take: a line per yes or no, as a server that
#: pretty-prints its JSON writes it (`{\n  "1": "no",\n  ...`: 6 to 7 tokens a line in
#: Gemma's vocabulary), with room to spare; the bound reserves, the answer's own length bills.
VERIFY_BASE_TOKENS = 16
VERIFY_TOKENS_PER_PROPOSAL = 10

Charge = Callable[[Usage], None]


@dataclass(frozen=True, slots=True)
class Reading:
    """One item's answer to predict from (or why there is none), what it proposes, and how
    sure the method is of it (None: not measured)."""

    answer: Any
    proposals: tuple[Proposal, ...] = ()
    measured: Measured | None = None


#: A 400 about the `n` parameter (OpenAI: "Invalid 'n'"; llama.cpp: "Field 'n': Value must
#: be between 1 <= value <= 2"): the samples go as separate calls instead.
_N_REFUSED = re.compile(r"""\(400\).*(['"`])n\1""")


def refuses_n(message: str) -> bool:
    """Whether a failed call's message is the endpoint refusing the `n` asked."""
    return bool(_N_REFUSED.search(message))


def no_logprobs_message(config: RunConfig) -> str:
    endpoint = config.endpoint
    return (
        f"{endpoint.base_url} returned no log-probabilities for model {endpoint.model}: "
        "use --confidence consistency:5 or verify"
    )


def spent(completion: Completion) -> Usage:
    return Usage(
        prompt_tokens=completion.prompt_tokens,
        completion_tokens=completion.completion_tokens,
        requests=completion.requests,
        cached_tokens=completion.cached_tokens,
    )


class Confidence:
    """One run's confidence method, between the labeler and its caller."""

    def __init__(
        self,
        config: RunConfig,
        task: Labeling,
        caller: GuardedCaller,
        memory: SamplingMemory,
        refusals: SchemaRefusals,
    ) -> None:
        self.config = config
        self.refusals = refusals
        self.method = config.confidence
        self.task = task
        self.caller = caller
        self.memory = memory
        self._misspelled = False

    async def complete(self, request: ChatRequest, charge: Charge) -> list[Answer]:
        """The answers to `request` (one per sample for consistency), each charged as it
        comes; raises as `GuardedCaller.complete` does, and RunStopped when log-probabilities
        were asked and not given."""
        method = self.method
        if method.method == "logprobs":
            reply = await self._call(dataclasses.replace(request, logprobs=0), charge)
            if reply.completion.all_choices()[0].logprobs is None:
                raise RunStopped(no_logprobs_message(self.config))
            return [reply]
        if method.method != "consistency":
            return [await self._call(request, charge)]
        n, sampled = method.samples, dataclasses.replace(request, temperature=method.temperature)
        replies: list[Answer] = []
        if not self.memory.ignores_n(self.config):
            try:
                reply = await self._call(dataclasses.replace(sampled, n=n), charge)
            except CallFailed as exc:
                if not refuses_n(exc.message):
                    raise
                # llama.cpp takes `n` up to its slots: "Field 'n': Value must be between 1 <=
                # value <= 2, but got 3"
                self.memory.note_ignored_n(self.config, n, 0)
            else:
                got = len(reply.completion.all_choices())
                if got >= n:
                    return [reply]
                self.memory.note_ignored_n(self.config, n, got)
                replies.append(reply)
        first = sum(len(r.completion.all_choices()) for r in replies)
        calls = [self._call(dataclasses.replace(sampled, seed=i), charge) for i in range(first, n)]
        outcomes = await asyncio.gather(*calls, return_exceptions=True)
        for outcome in outcomes:  # the run's outcomes first: they stop or defer it
            if isinstance(outcome, RunStopped | BudgetReached | Deferred):
                raise outcome
        for outcome in outcomes:
            if isinstance(outcome, BaseException) and not isinstance(outcome, CallFailed):
                raise outcome
        replies += [o for o in outcomes if isinstance(o, Answer)]
        if not replies:  # every sample failed: as one call that failed
            failed = next(o for o in outcomes if isinstance(o, CallFailed))
            raise type(failed)(failed.message)  # already charged
        return replies

    def read(self, size: int, replies: Sequence[Answer]) -> list[Reading]:
        """Each of `size` items' reading of `replies`' answers."""
        choices = [c for r in replies for c in _choices(r.completion)]
        parsed = [self.task.parse(c.content, size, self.config) for c in choices]
        if self.method.method == "consistency":
            return [self._vote([p[i] for p in parsed]) for i in range(size)]
        answers = parsed[0]
        if self.method.method != "logprobs":
            return [Reading(a) for a in answers]
        proposals = [
            None if isinstance(a, ItemError) else self.task.proposals(a, self.config)
            for a in answers
        ]
        tokens = choices[0].logprobs or ()
        measured = logprob_confidence(choices[0].content, tokens, proposals)
        if measured is None:
            if not self._misspelled:
                self._misspelled = True
                log.warning(
                    "%s's answer tokens do not spell its answer: those items' confidence is "
                    "not measured",
                    self.config.endpoint.base_url,
                )
            measured = [None] * size
        return [
            Reading(a, tuple(p or ()), m)
            for a, p, m in zip(answers, proposals, measured, strict=True)
        ]

    def _vote(self, samples: list[Any]) -> Reading:
        proposals = [
            None if isinstance(s, ItemError) else self.task.proposals(s, self.config)
            for s in samples
        ]
        result = vote(proposals, single=self.task.single_label)
        if result is None:
            return Reading(samples[0])
        answer = self.task.answer_from(result.proposals, self.config)
        return Reading(answer, result.proposals, Measured(result.item, result.confidences))

    async def finish(self, record: Record, result: ItemResult, reading: Reading) -> ItemResult:
        """`result` with its confidence and scores (`verify`: once its verification is
        answered; raises Deferred while that waits for a batch, RunStopped or BudgetReached
        when the run cannot ask it)."""
        if self.method.method != "verify":
            return self._scored(result, reading.proposals, reading.measured)
        return await self._verify(record, result, reading)

    def _scored(
        self,
        result: ItemResult,
        proposals: Sequence[Proposal],
        measured: Measured | None,
        kept: Sequence[bool] = (),
    ) -> ItemResult:
        if measured is None:
            return result
        scores = self.task.scores(result, proposals, measured.proposals, self.config)
        if kept:
            scores = tuple(
                s.model_copy(update={"kept": k}) for s, k in zip(scores, kept, strict=True)
            )
        return result.model_copy(update={"confidence": measured.item, "scores": scores})

    async def _verify(self, record: Record, result: ItemResult, reading: Reading) -> ItemResult:
        proposals = self.task.proposals(reading.answer, self.config)
        asks_missing = not self.task.single_label
        endpoint = self.config.endpoint
        logprobs = (
            self.method.top_logprobs
            if self.memory.gives_logprobs(self.config) and not is_reasoning_model(endpoint.model)
            else None
        )
        messages = verify_format.messages(
            record.text,
            proposals,
            self.task.labels(self.config),
            asks_missing=asks_missing,
            noun=self.task.proposal_noun,
        )
        json_mode = endpoint.response_format == "json_object" or (
            endpoint.response_format == "auto" and self.refusals.refused(self.config)
        )
        schema = (
            None
            if json_mode
            else verify_format.response_format(len(proposals), asks_missing=asks_missing)
        )
        request = ChatRequest(
            messages,
            schema,
            count_request_tokens(messages, schema, endpoint.model),
            (record.id,),
            logprobs=logprobs,
            # A reasoning model thinks within max_completion_tokens: a few tokens would leave
            # it no room to answer, so it keeps the run's.
            max_tokens=None
            if is_reasoning_model(endpoint.model)
            else VERIFY_BASE_TOKENS + VERIFY_TOKENS_PER_PROPOSAL * len(proposals),
        )
        extra = Usage()

        def charge(usage: Usage) -> None:
            nonlocal extra
            extra = extra + usage

        try:
            try:
                reply = await self._call(request, charge)
            finally:
                result = result.model_copy(update={"usage": result.usage + extra})
            choice = reply.completion.all_choices()[0]
            if logprobs is not None and choice.logprobs is None:
                self.memory.note_no_logprobs(self.config)
            verdicts = verify_format.read_answer(
                choice.content, len(proposals), asks_missing=asks_missing
            )
        except CallFailed as exc:
            log.warning("item %s: verification failed: %s", record.id, exc.message)
            return result
        except ItemError as exc:
            log.warning("item %s: %s", record.id, exc.message)
            return result
        measured = verdict_confidence(verdicts, choice.content, choice.logprobs)
        await self.caller.remember(reply)
        if not self.method.drop_rejected or all(verdicts.right):
            return self._scored(result, proposals, measured)
        kept = [p for p, right in zip(proposals, verdicts.right, strict=True) if right]
        dropped = self.task.predict(
            record, self.task.answer_from(kept, self.config), self.config, result.usage
        )
        if isinstance(dropped, str):  # what is left is no prediction (single-label): keep all
            log.info("item %s keeps what verification rejected: %s", record.id, dropped)
            return self._scored(result, proposals, measured)
        scored = self._scored(result, proposals, measured, verdicts.right)
        return dropped.model_copy(update={"confidence": scored.confidence, "scores": scored.scores})

    async def _call(self, request: ChatRequest, charge: Charge) -> Answer:
        try:
            reply = await self.caller.complete(request)
        except CallFailed as exc:
            charge(exc.spent)
            raise
        if not reply.cached:  # a cached answer was paid for by the run that cached it
            charge(spent(reply.completion))
        return reply


def _choices(completion: Completion) -> tuple[Choice, ...]:
    """The completion's choices, the first one's content being `content` (which is what a
    stored answer's readers, and tests, edit)."""
    first, *rest = completion.all_choices()
    return (dataclasses.replace(first, content=completion.content), *rest)
