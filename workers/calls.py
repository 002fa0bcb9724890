"""Every LLM call of a run passes here: the answer cache first, then the run's budget,
then the transport (any `Transport`: the realtime one, through the shared bucket, or the
Batch API's, whose budget is held per batch file: `workers.transports.batch`)."""

from __future__ import annotations

import dataclasses

from prelabel.counters import RunCounter
from prelabel.model import RunConfig
from prelabel.settings import is_local_endpoint
from workers.budget import Budget
from workers.cache import ResponseCache, request_digest
from workers.results import ResultSink
from workers.transports import CallFailed, ChatRequest, Completion, Transport, request_params
from workers.transports.chat import sampling_params


@dataclasses.dataclass(frozen=True, slots=True)
class Answer:
    """A completion, where it came from, and the digest to remember it under."""

    completion: Completion
    digest: str
    cached: bool


class GuardedCaller:
    """Cache, then budget, then the transport."""

    def __init__(
        self,
        transport: Transport,
        cache: ResponseCache,
        budget: Budget,
        sink: ResultSink,
        config: RunConfig,
    ) -> None:
        self.transport = transport
        self.cache = cache
        self.budget = budget
        self.sink = sink
        self.config = config
        self._local = is_local_endpoint(config.endpoint.base_url)

    async def complete(self, request: ChatRequest) -> Answer:
        """An answer to `request`; raises BudgetReached, CallFailed or RunStopped."""
        cfg = self.config
        digest = ""
        if self.cache.enabled:
            digest = self._digest(request)
            hit = await self.cache.get(digest)
            if hit is not None:
                # Nothing was sent: the item's usage charges no request for it.
                completion = dataclasses.replace(Completion.from_json(hit), requests=0)
                # An answer the simulator gave stays a simulated one when it comes from the cache.
                await self.sink.spend(
                    {RunCounter.CACHE_HITS: 1, RunCounter.SIMULATED: int(completion.simulated)}
                )
                return Answer(completion, digest, cached=True)
        if getattr(self.transport, "deferred", False):
            # The Batch API: a batch file is reserved whole when it is submitted and settled
            # when it is collected; neither a deferred request nor its stored answer moves
            # the budget here (a realtime fallback reserves inside the transport).
            return Answer(await self.transport.complete(request), digest, cached=False)
        most = request.answer_tokens(cfg.endpoint.max_tokens)  # n answers of max_tokens
        await self.budget.reserve(request.prompt_tokens, most)
        used_prompt = used_completion = used_cached = 0
        try:
            completion = await self.transport.complete(request)
            used_prompt, used_completion = completion.prompt_tokens, completion.completion_tokens
            used_cached = completion.cached_tokens
        except CallFailed as exc:  # a 200 that could not be read was paid for all the same
            used_prompt, used_completion = exc.spent.prompt_tokens, exc.spent.completion_tokens
            used_cached = exc.spent.cached_tokens
            raise
        finally:
            await self.budget.settle(
                request.prompt_tokens, most, used_prompt, used_completion, used_cached
            )
        return Answer(completion, digest, cached=False)

    def _digest(self, request: ChatRequest) -> str:
        """The cache key of a request: everything that shapes its answer."""
        endpoint = self.config.endpoint
        # The item ids header reaches local endpoints only, and changes the oracle's answer
        # for identical sentences with different gold: it is part of the request's identity.
        headers = request.item_headers() if self._local else None
        params = {
            **request_params(endpoint),
            **sampling_params(endpoint, request),
            "response_format": request.response_format,
        }
        return request_digest(endpoint.base_url, endpoint.model, request.messages, params, headers)

    async def remember(self, answer: Answer) -> None:
        """Cache an answer that gave usable results (failures are never cached)."""
        if answer.digest and not answer.cached:
            await self.cache.put(answer.digest, answer.completion.to_json())
