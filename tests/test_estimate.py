"""Estimates and prices: requests and tokens counted on the real messages, before a run."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from prelabel.errors import ConfigError
from prelabel.model import RunConfig
from prelabel.pricing import BUILTIN, Price, load_prices, price_for, price_table
from producer.estimate import estimate_requests, estimate_run
from producer.labeling import LabelingOptions
from producer.loading import DatasetSpec
from task_types.ner.guess import guess_mentions, guessed_answer
from task_types.ner.model import NerRecord, from_tags
from task_types.ner.prompts import build_messages
from workers.measure import VERIFY_BASE_TOKENS, VERIFY_TOKENS_PER_PROPOSAL
from workers.requests import RequestBuilder
from workers.tokens import count_message_tokens, count_request_tokens, count_schema_tokens

SAMPLE = Path(__file__).resolve().parents[1] / "producer" / "samples" / "sample.conll"
CONLL = from_tags(["LOC", "MISC", "ORG", "PER"])


def records(n: int) -> list[NerRecord]:
    return [
        NerRecord.from_tokens(f"r{i}", f"Ann met Bob {i} times in Rome .".split()) for i in range(n)
    ]


def config(**over: object) -> RunConfig:
    base: dict[str, object] = {
        "run_id": "estimate",
        "model": "gpt-4o-mini",
        "base_url": "http://127.0.0.1:1/v1",
        "labels": CONLL,
    }
    return RunConfig.model_validate(base | over)


def test_requests_follow_shards_then_batches_as_the_workers_cut_them() -> None:
    # Shards of 10, 10 and 3 items; batches of 4 within each: 3 + 3 + 1 requests.
    est = estimate_requests(records(23), config(shard_size=10, batch_size=4))
    assert est.requests == 7 and est.items == 23
    assert est.completion_bound == 7 * 512


def test_prompt_tokens_are_those_of_the_messages_sent() -> None:
    recs = records(5)
    est = estimate_requests(recs, config(batch_size=2))
    batches = [recs[0:2], recs[2:4], recs[4:5]]
    assert est.message_tokens == sum(
        count_message_tokens(build_messages(b, CONLL), "gpt-4o-mini") for b in batches
    )
    # The schema structured outputs bill as input comes on top (estimated, per request).
    builder = RequestBuilder(config(batch_size=2))
    assert est.schema_tokens == sum(
        count_schema_tokens(builder.response_format(b), "gpt-4o-mini") for b in batches
    )
    assert est.schema_tokens > 0
    assert est.prompt_tokens == est.message_tokens + est.schema_tokens
    assert est.exact_prompt is True
    assert estimate_requests(recs, config(model="llama3:8b")).exact_prompt is False


def test_batching_cuts_tokens_per_item() -> None:
    recs = records(40)
    one = estimate_requests(recs, config(batch_size=1))
    ten = estimate_requests(recs, config(batch_size=10))
    assert ten.tokens_per_item < one.tokens_per_item / 2


def test_guessed_mentions_are_capitalised_runs() -> None:
    tokens = ["The", "European", "Commission", "met", "Peter", "Smith", "in", "Brussels", "."]
    assert guess_mentions(tokens) == [
        "European Commission",
        "Peter Smith",
        "Brussels",
    ]
    assert guess_mentions(["EU", "rejects", "German", "call"]) == ["EU", "German"]
    answer = json.loads(guessed_answer(records(2), CONLL))
    assert list(answer) == ["1", "2"] and answer["1"]["LOCATION"] == ["Bob", "Rome"]


def test_answers_that_do_not_fit_max_tokens_are_counted() -> None:
    assert estimate_requests(records(20), config(batch_size=20, max_tokens=50)).over_max_tokens == 1
    assert estimate_requests(records(20), config(batch_size=10)).over_max_tokens == 0


def test_cost_uses_the_price_per_million_tokens() -> None:
    est = estimate_requests(records(3), config(price_input=1.0, price_output=2.0))
    assert est.cost_usd == pytest.approx((est.prompt_tokens + 2 * est.completion_tokens) / 1e6)
    assert est.cost_bound_usd == pytest.approx((est.prompt_tokens + 2 * est.completion_bound) / 1e6)
    assert estimate_requests(records(3), config()).cost_usd is None


def test_minutes_at_the_caps_take_the_tighter_cap() -> None:
    est = estimate_requests(records(60), config(batch_size=1))
    assert est.minutes_at(rpm=30, tpm=None) == pytest.approx(2.0)
    tokens = est.prompt_tokens + est.completion_bound
    assert est.minutes_at(rpm=10**6, tpm=tokens) == pytest.approx(1.0)
    assert est.minutes_at(None, None) is None


# --- prices -------------------------------------------------------------------------------------


def test_prices_by_exact_name_then_longest_family_prefix() -> None:
    assert price_for("gpt-4o-mini") == BUILTIN["gpt-4o-mini"]
    assert price_for("gpt-4o-mini-2024-07-18") == BUILTIN["gpt-4o-mini"]
    assert price_for("gpt-4o-2024-08-06") == BUILTIN["gpt-4o"]
    assert price_for("llama3:8b") is None
    assert Price(0.15, 0.60).cost(1_000_000, 1_000_000) == pytest.approx(0.75)


@pytest.mark.parametrize("suffix", [".toml", ".json"])
def test_a_price_file_adds_and_overrides_models(tmp_path: Path, suffix: str) -> None:
    path = tmp_path / f"prices{suffix}"
    if suffix == ".json":
        path.write_text(json.dumps({"models": {"local": {"input": 0, "output": 0.5}}}))
    else:
        path.write_text(
            '[models.local]\ninput = 0\noutput = 0.5\n[models."gpt-4o"]\ninput = 1\noutput = 2\n'
        )
    table = price_table({"PRELABEL_PRICES": str(path)})
    assert table["local"] == Price(0.0, 0.5)
    assert price_for("local-7b", table) == Price(0.0, 0.5)
    if suffix == ".toml":
        assert table["gpt-4o"] == Price(1.0, 2.0)
    assert table["gpt-4o-mini"] == BUILTIN["gpt-4o-mini"]


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("[models.x]\ninput = 1\n", "needs input and output"),
        ("[models.x]\ninput = -1\noutput = 1\n", "needs input and output"),
        ('[models.x]\ninput = "1"\noutput = 1\n', "needs input and output"),
        ("[other]\n", "expected one table, models"),
        ("[models\n", "not valid TOML"),
    ],
)
def test_bad_price_files_are_config_errors(tmp_path: Path, text: str, needle: str) -> None:
    path = tmp_path / "p.toml"
    path.write_text(text)
    with pytest.raises(ConfigError) as caught:
        load_prices(path)
    assert needle in str(caught.value) and "PRELABEL_PRICES" in str(caught.value)


# --- from a dataset, and on the command line ----------------------------------------------------


def test_few_shot_examples_are_counted_and_need_a_pool() -> None:
    spec = DatasetSpec(source=str(SAMPLE))
    plain = estimate_run(spec, model="gpt-4o-mini", base_url="x", batch_size=5)
    shots = LabelingOptions(few_shot=3, few_shot_from=str(SAMPLE))
    with_examples = estimate_run(
        spec, model="gpt-4o-mini", base_url="x", batch_size=5, labeling=shots
    )
    assert with_examples.requests == plain.requests
    assert with_examples.prompt_tokens > plain.prompt_tokens
    assert with_examples.few_shot == 3
    with pytest.raises(ConfigError, match=r"no train\.conll beside it; pass --few-shot-from"):
        estimate_run(spec, model="m", base_url="x", labeling=LabelingOptions(few_shot=3))


def test_few_shot_examples_default_to_the_train_file_beside_a_dataset_file(
    tmp_path: Path,
) -> None:
    """`--dataset conll2003/test.txt --few-shot 3` reads conll2003/train.txt, as the help says
    (issue 13.9)."""
    from producer.labeling import resolve_labeling
    from producer.loading import load_dataset_records

    sample = SAMPLE.read_text(encoding="utf-8")
    (tmp_path / "test.conll").write_text(sample, encoding="utf-8")
    (tmp_path / "train.conll").write_text(sample, encoding="utf-8")
    spec = DatasetSpec(source=str(tmp_path / "test.conll"), limit=5)
    labeling = resolve_labeling(load_dataset_records(spec), spec, LabelingOptions(few_shot=3))
    assert labeling.pool and "train.conll" in labeling.pool_source
    estimate = estimate_run(
        spec, model="gpt-4o-mini", base_url="x", labeling=LabelingOptions(few_shot=3)
    )
    assert estimate.few_shot == 3


def prelabel(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "prelabel", *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_estimate_and_dry_run_print_the_same_figures_without_redis_or_endpoint() -> None:
    common = ["--dataset", str(SAMPLE), "--model", "gpt-4o-mini", "--batch-size", "5"]
    estimate = prelabel("estimate", *common, "--few-shot", "2", "--few-shot-from", str(SAMPLE))
    assert estimate.returncode == 0, estimate.stderr
    dry = prelabel(
        "run",
        *common,
        "--few-shot",
        "2",
        "--few-shot-from",
        str(SAMPLE),
        "--dry-run",
        "--redis-url",
        "redis://127.0.0.1:1/0",  # nothing listens there: a dry run must not need Redis
        "--base-url",
        "http://127.0.0.1:9/v1",
    )
    assert dry.returncode == 0, dry.stderr
    for output in (estimate.stdout, dry.stdout):
        assert "requests" in output and "messages (exact)" in output
        assert "price (estimated)" in output and "2 few-shot examples" in output
    figures = [line for line in estimate.stdout.splitlines() if "│" in line]
    assert figures == [line for line in dry.stdout.splitlines() if "│" in line]


def test_estimate_mistakes_are_one_line() -> None:
    proc = prelabel(
        "estimate", "--dataset", str(SAMPLE), "--model", "m", "--response-format", "xml"
    )
    assert proc.returncode == 2
    # A choice of the option: click's usage message, with one error line naming the flag.
    errors = [line for line in proc.stderr.splitlines() if line.startswith("Error:")]
    assert len(errors) == 1 and "'--response-format'" in errors[0]
    assert "Traceback" not in proc.stderr


# --- confidence's extra cost ------------------------------------------------------------------


def test_consistency_bills_the_prompt_once_and_n_answers() -> None:
    from prelabel.model import ConfidenceConfig

    plain = estimate_requests(records(4), config(batch_size=2))
    sampled = estimate_requests(
        records(4), config(batch_size=2, confidence=ConfidenceConfig.parse("consistency:5"))
    )
    assert sampled.requests == plain.requests == 2
    assert sampled.prompt_tokens == plain.prompt_tokens
    assert sampled.completion_tokens == 5 * plain.completion_tokens
    assert sampled.completion_bound == 5 * plain.completion_bound
    assert sampled.extra_completion_tokens == 4 * plain.completion_tokens
    # Where the endpoint ignores n, four more prompts per request.
    assert sampled.ignored_n_prompt_tokens == 4 * plain.prompt_tokens


def test_verify_adds_one_request_per_item_with_its_question() -> None:
    from prelabel.model import ConfidenceConfig
    from task_types import verification
    from task_types.verification import Proposal

    plain = estimate_requests(records(3), config(batch_size=3))
    verified = estimate_requests(
        records(3), config(batch_size=3, confidence=ConfidenceConfig(method="verify"))
    )
    assert verified.extra_requests == 3
    assert verified.requests == plain.requests + 3
    # The guessed answer proposes the capitalised runs after the first word, all of the
    # first type: Bob and Rome, as LOCATION.
    question = verification.messages(
        records(1)[0].text,
        [Proposal("LOCATION", "Bob"), Proposal("LOCATION", "Rome")],
        CONLL,
        asks_missing=True,
        noun="entities",
    )
    schema = verification.response_format(2, asks_missing=True)
    asked = count_request_tokens(question, schema, "gpt-4o-mini")
    assert asked > count_message_tokens(question, "gpt-4o-mini")  # the schema is billed too
    assert verified.extra_prompt_tokens == 3 * asked
    assert verified.prompt_tokens == plain.prompt_tokens + verified.extra_prompt_tokens
    assert verified.completion_bound == plain.completion_bound + 3 * (
        VERIFY_BASE_TOKENS + VERIFY_TOKENS_PER_PROPOSAL * 2
    )


def test_estimate_shows_the_methods_extra_cost_and_run_refuses_logprobs_of_reasoning_models() -> (
    None
):
    shown = prelabel(
        "estimate", "--dataset", str(SAMPLE), "--model", "gpt-4o-mini", "--confidence", "verify"
    )
    assert shown.returncode == 0, shown.stderr
    assert "of which for confidence (verify)" in shown.stdout
    refused = prelabel(
        "run",
        "--dataset",
        str(SAMPLE),
        "--model",
        "o4-mini",
        "--confidence",
        "logprobs",
        "--redis-url",
        "redis://127.0.0.1:1/0",
    )
    assert refused.returncode == 2
    errors = [line for line in refused.stderr.splitlines() if line.strip()]
    assert len(errors) == 1 and "--confidence logprobs" in errors[0], refused.stderr
    assert "reasoning model" in errors[0]
    wrong = prelabel(
        "estimate",
        "--dataset",
        str(SAMPLE),
        "--model",
        "m",
        "--confidence",
        "verify",
        "--sample-temperature",
        "0.7",
    )
    assert wrong.returncode == 2 and "--sample-temperature" in wrong.stderr
