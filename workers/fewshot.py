"""Few-shot examples: a pool of labelled sentences, and selectors that pick from it.

The producer turns a train split into a pool (the task type's `examples`) and stores it with the
run (`pool_to_json`, key `RunKeys.fewshot`); each worker process reads it once per run and
fits its selector once (`selector_for_run`). Selectors are pluggable: anything with
`select(texts, k)` can be registered under a name with `register_strategy`; a factory gets
the pool and how to read the labels an example shows (the task type's `example_labels`).

- `fixed`: the same K examples for every request, chosen once from the pool for coverage:
  among typical texts (at least the pool's median length: a one-word headline shows a label
  but not how a sentence is labelled), greedily the one that shows the most labels not yet
  shown (ties: the shorter, then the earlier in the pool); once every label is shown, the
  shortest typical ones, then the rest. The system prompt, schema and examples are then one
  prefix, identical in every request, which a provider's prompt cache serves.
- `random`: one seeded shuffle of the pool, so every request of a run gets the same examples
  (the prompt prefix is identical, and providers' prompt caching applies).
- `similar`: TF-IDF cosine nearest neighbours of the batch's sentences (scikit-learn), taken
  round-robin so that every sentence of a batch gets its closest examples first. Similar
  demonstrations are worth more than any other prompt change (GPT-NER: 72.6 → 84.4 F1).

A pool sentence identical to one being labelled is never shown: it would leak the answer
(with `fixed`, the next example of its order takes its place in that request only).
"""

from __future__ import annotations

import json
import logging
import random
from collections import OrderedDict
from collections.abc import Callable, Collection, Sequence
from typing import Any, Protocol

from prelabel.errors import ConfigError
from task_types import Example
from workers.tokens import count_tokens

#: The most examples one request may carry.
MAX_EXAMPLES = 50
_SEED = 0
log = logging.getLogger(__name__)
_CACHED_RUNS = 4
#: `fixed` weighs an example by its text's tokens in this model's encoding (o200k_base).
_TOKENS_OF = "gpt-4o"


class ExampleSelector(Protocol):
    """Picks up to `k` examples for a request about `texts` (none identical to one of them)."""

    def select(self, texts: Sequence[str], k: int) -> list[Example]: ...


#: The label names an example's answer shows (a task type's `example_labels`).
LabelsOf = Callable[[Example], Collection[str]]
#: Makes a selector from the pool and how to read an example's labels.
SelectorFactory = Callable[[Sequence[Example], LabelsOf], ExampleSelector]


def shown_labels(example: Example) -> frozenset[str]:
    """The names with values in an example's answer (`LabelingDefaults.example_labels`): the
    default when no task type says otherwise."""
    return frozenset(name for name, values in example.mentions.items() if values)


class FixedSelector:
    """The same examples for every request: the pool in order of coverage (see the module
    docstring), the first `k` of them not being labelled."""

    def __init__(self, pool: Sequence[Example], labels_of: LabelsOf = shown_labels) -> None:
        self.pool = list(pool)
        self._labels = [frozenset(labels_of(e)) for e in self.pool]
        self._tokens = [max(1, count_tokens(e.text, _TOKENS_OF)) for e in self.pool]
        # Typical texts: at least the pool's (upper) median length. A headline of one word
        # shows a label cheaply but not how a sentence is labelled.
        median = sorted(self._tokens)[len(self._tokens) // 2] if self.pool else 0
        self._typical = [t >= median for t in self._tokens]
        #: The greedy order, grown as far as requests need (K plus the batch at most).
        self._order: list[int] = []
        self._taken: set[int] = set()
        self._covered: set[str] = set()
        #: Set once no typical example left shows a new label: the rest go shortest first.
        self._saturated = False

    def select(self, texts: Sequence[str], k: int) -> list[Example]:
        banned = set(texts)
        chosen: list[Example] = []
        position = 0
        while len(chosen) < k:
            if position == len(self._order) and not self._grow():
                break
            example = self.pool[self._order[position]]
            position += 1
            if example.text not in banned:
                chosen.append(example)
        return chosen

    def _grow(self) -> bool:
        """Append the next example of the greedy order; False when the pool is used up."""
        best = -1 if self._saturated else self._most_new()
        if best < 0:
            self._saturated = True
            left = (i for i in range(len(self.pool)) if i not in self._taken)
            best = min(left, key=lambda i: (not self._typical[i], self._tokens[i], i), default=-1)
            if best < 0:
                return False
        self._order.append(best)
        self._taken.add(best)
        self._covered |= self._labels[best]
        return True

    def _most_new(self) -> int:
        """The typical example showing the most labels not yet shown (ties: shorter, then
        earlier); -1 when none shows a new one."""
        best, best_key = -1, (0, 0, 0)
        for i, labels in enumerate(self._labels):
            if i in self._taken or not self._typical[i]:
                continue
            new = len(labels - self._covered)
            key = (new, -self._tokens[i], -i)
            if new and key > best_key:
                best, best_key = i, key
        return best


class RandomSelector:
    """The same seeded random examples for every request, skipping any being labelled."""

    def __init__(self, pool: Sequence[Example], seed: int = _SEED) -> None:
        self.pool = list(pool)
        self._order = list(range(len(self.pool)))
        random.Random(seed).shuffle(self._order)

    def select(self, texts: Sequence[str], k: int) -> list[Example]:
        banned = set(texts)
        chosen: list[Example] = []
        for i in self._order:
            if len(chosen) >= k:
                break
            if self.pool[i].text not in banned:
                chosen.append(self.pool[i])
        return chosen


class SimilarSelector:
    """TF-IDF cosine nearest neighbours of the request's sentences, most similar last."""

    def __init__(self, pool: Sequence[Example]) -> None:
        from sklearn.feature_extraction.text import TfidfVectorizer

        self.pool = list(pool)
        self._by_text: dict[str, list[int]] = {}
        for i, example in enumerate(self.pool):
            self._by_text.setdefault(example.text, []).append(i)
        # Single-character words count: CoNLL is full of initials, scores and short names.
        self._vectorizer = TfidfVectorizer(sublinear_tf=True, token_pattern=r"(?u)\b\w+\b")
        self._matrix: Any = (
            self._vectorizer.fit_transform([e.text for e in self.pool]) if self.pool else None
        )

    def select(self, texts: Sequence[str], k: int) -> list[Example]:
        import numpy as np

        if k <= 0 or not self.pool or not texts:
            return []
        sims = (self._vectorizer.transform(list(texts)) @ self._matrix.T).toarray()
        for text in set(texts):
            for i in self._by_text.get(text, ()):
                sims[:, i] = -np.inf
        n = len(self.pool)
        depth = min(n, k + len(texts))
        ranked: list[list[int]] = []
        for row in sims:
            top = np.argpartition(-row, depth - 1)[:depth] if depth < n else np.arange(n)
            # Ties broken by pool position, so that a request always gets the same examples.
            scores = row.tolist()
            ranked.append(sorted((int(i) for i in top), key=lambda i: (-scores[i], i)))
        chosen: list[int] = []
        seen: set[int] = set()
        for rank in range(depth):
            # Round-robin: every sentence's best example before any sentence's second best.
            rows = sorted(range(len(texts)), key=lambda r: -sims[r][ranked[r][rank]])
            for r in rows:
                i = ranked[r][rank]
                if i in seen or sims[r][i] == -np.inf:
                    continue
                seen.add(i)
                chosen.append(i)
                if len(chosen) == k:
                    break
            if len(chosen) == k:
                break
        # Most similar last: closest to the sentences it is meant to help with.
        return [self.pool[i] for i in reversed(chosen)]


STRATEGIES: dict[str, SelectorFactory] = {
    "similar": lambda pool, _: SimilarSelector(pool),
    "random": lambda pool, _: RandomSelector(pool),
    "fixed": FixedSelector,
}


def register_strategy(name: str, factory: SelectorFactory) -> None:
    """Make `factory` available as `--few-shot-strategy NAME` (in producer and workers)."""
    STRATEGIES[name] = factory


def make_selector(
    strategy: str, pool: Sequence[Example], labels_of: LabelsOf = shown_labels
) -> ExampleSelector:
    """The selector named `strategy` over `pool` (`labels_of`: the run's task type's
    `example_labels`); ConfigError for an unknown name."""
    factory = STRATEGIES.get(strategy)
    if factory is None:
        raise ConfigError(
            f"--few-shot-strategy {strategy!r} is unknown; use one of {', '.join(STRATEGIES)}"
        )
    return factory(pool, labels_of)


def pool_to_json(pool: Sequence[Example]) -> str:
    """The pool as stored in Redis: `[{"text": ..., "mentions": {...}}, ...]`."""
    return json.dumps(
        [{"text": e.text, "mentions": {k: list(v) for k, v in e.mentions.items()}} for e in pool],
        ensure_ascii=False,
        separators=(",", ":"),
    )


def pool_from_json(raw: str | bytes) -> list[Example]:
    """Read a pool written by `pool_to_json`."""
    return [Example(text=e["text"], mentions=e["mentions"]) for e in json.loads(raw)]


_SELECTORS: OrderedDict[tuple[str, str], ExampleSelector] = OrderedDict()


def selector_for_run(
    run_id: str,
    strategy: str,
    load: Callable[[], str | bytes | None],
    labels_of: LabelsOf = shown_labels,
) -> ExampleSelector:
    """This process's selector for a run: the pool is read (`load`) and fitted only once.

    A run whose pool is missing gets an empty selector (no examples) rather than failing
    every item: the producer writes the pool before it enqueues any shard.
    """
    key = (run_id, strategy)
    selector = _SELECTORS.get(key)
    if selector is None:
        raw = load()
        if not raw:
            log.warning(
                "run %s has no few-shot pool in Redis: requests go without examples", run_id
            )
        selector = make_selector(strategy, pool_from_json(raw) if raw else [], labels_of)
        _SELECTORS[key] = selector
        while len(_SELECTORS) > _CACHED_RUNS:
            _SELECTORS.popitem(last=False)
    else:
        _SELECTORS.move_to_end(key)
    return selector
