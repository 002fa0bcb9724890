"""Bad input and bad answers are recorded with their reasons, and the run goes on."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from prelabel import launch

pytestmark = pytest.mark.slow

GOOD = [
    ("Peter Blackburn visited Paris .", ["B-PER", "I-PER", "O", "B-LOC", "O"]),
    ("The EU rejected the call .", ["O", "B-ORG", "O", "O", "O", "O"]),
    ("Nothing to see here .", ["O", "O", "O", "O", "O"]),
]


@pytest.fixture
def data(tmp_path: Path) -> Path:
    rows = [
        {"id": f"g{i}", "tokens": t.split(), "ner_tags": tags} for i, (t, tags) in enumerate(GOOD)
    ]
    long_tokens = ["word"] * 400
    rows.append({"id": "long", "tokens": long_tokens, "ner_tags": ["O"] * 400})
    rows.append({"id": "empty", "tokens": [], "ner_tags": []})
    rows.append({"id": "badtag", "tokens": ["x"], "ner_tags": ["B-WHAT"]})
    path = tmp_path / "items.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    return path


@pytest.fixture
def small_context_fleet(
    redis_url: str, data: Path, tmp_path: Path
) -> Iterator[tuple[dict[str, str], str]]:
    env = {
        **os.environ,
        "REDIS_URL": redis_url,
        "PRELABEL_QUEUE": f"prelabel-bad-{uuid.uuid4().hex[:8]}",
        "PRELABEL_CONTEXT_TOKENS": "600",
    }
    port = launch.free_port()
    sim = launch.start_simulator(port, data, split="train", env=env, log=tmp_path / "sim.log")
    worker = launch.start_worker(env=env, log=tmp_path / "worker.log")
    yield env, f"http://127.0.0.1:{port}/v1"
    launch.stop([worker, sim])


def test_bad_items_fail_or_are_skipped_with_reasons(
    small_context_fleet: tuple[dict[str, str], str], data: Path, tmp_path: Path
) -> None:
    env, url = small_context_fleet
    out = tmp_path / "out"
    proc = subprocess.run(
        [
            sys.executable, "-m", "prelabel", "run", "--dataset", str(data), "--split", "train",
            "--entity-types", "PER,ORG,LOC", "--id-field", "id", "--model", "m", "--base-url", url,
            "--max-tokens", "64", "--out", str(out),
        ],
        env=env, capture_output=True, text=True, timeout=180, check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    rows = {
        r["id"]: r for r in map(json.loads, (out / "predictions.jsonl").read_text().splitlines())
    }
    assert set(rows) == {"g0", "g1", "g2", "long"}
    assert all(rows[f"g{i}"]["status"] == "labeled" for i in range(3))
    assert rows["g0"]["tags"] == GOOD[0][1]
    assert rows["long"]["status"] == "failed"
    assert "context" in rows["long"]["error"]
    skipped = [json.loads(x) for x in (out / "skipped.jsonl").read_text().splitlines()]
    reasons = {s["item"].split("(")[-1].rstrip(")"): s["reason"] for s in skipped}
    assert "empty" in reasons["empty"]
    assert "WHAT" in reasons["badtag"]
