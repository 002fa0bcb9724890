"""End to end on real parts: the `prelabel` CLI, Redis, two `celery worker` subprocesses,
the simulator over HTTP through the real `openai` client, the collector's files."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from producer import DatasetSpec, load_dataset_records

pytestmark = pytest.mark.slow


def prelabel(
    *args: str, env: dict[str, str], timeout: float = 240
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "prelabel", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


@pytest.mark.parametrize("batch_size", [1, 5])
def test_run_labels_every_item_and_scores_the_oracle_perfectly(
    fleet_env: dict[str, str], simulator_url: str, gold_path: Path, tmp_path: Path, batch_size: int
) -> None:
    out = tmp_path / "out"
    n = min(120, len(load_dataset_records(DatasetSpec(source=str(gold_path))).records))
    proc = prelabel(
        "run",
        "--dataset",
        str(gold_path),
        "--split",
        "test",
        "--limit",
        str(n),
        "--model",
        "gpt-4o-mini",
        "--base-url",
        simulator_url,
        "--shard-size",
        "25",
        "--batch-size",
        str(batch_size),
        "--out",
        str(out),
        env=fleet_env,
    )
    assert proc.returncode == 0, proc.stderr + proc.stdout

    rows = read_jsonl(out / "predictions.jsonl")
    assert len(rows) == n
    assert len({r["id"] for r in rows}) == n
    assert all(r["status"] == "labeled" for r in rows)
    for row in rows:
        assert row["tags"] == row["gold_tags"]
        for ent in row["entities"]:
            assert row["text"][ent["start"] : ent["end"]] == ent["text"]

    report = json.loads((out / "report.json").read_text())
    assert report["entity"]["micro"]["f1"] == pytest.approx(1.0)
    assert report["figures"]["items"] == n
    assert report["figures"]["simulator"] is True
    shards = [min(25, n - start) for start in range(0, n, 25)]
    expected_requests = sum(-(-n // batch_size) for n in shards)
    assert report["figures"]["requests"] == expected_requests

    conll = (out / "predictions.conll").read_text().strip().split("\n\n")
    assert len(conll) == n
    md = (out / "report.md").read_text()
    assert "simulator" in md.lower()
    assert "Entity-level" in proc.stdout


def test_run_with_noise_scores_below_one_and_files_stay_consistent(
    fleet_env: dict[str, str], gold_path: Path, tmp_path: Path
) -> None:
    from prelabel import launch

    port = launch.free_port()
    sim = launch.start_simulator(port, gold_path, extra=["--noise", "0.3", "--seed", "7"])
    try:
        out = tmp_path / "noisy"
        proc = prelabel(
            "run",
            "--dataset",
            str(gold_path),
            "--limit",
            "60",
            "--model",
            "m",
            "--base-url",
            f"http://127.0.0.1:{port}/v1",
            "--out",
            str(out),
            env=fleet_env,
        )
    finally:
        launch.stop([sim])
    assert proc.returncode == 0, proc.stderr
    report = json.loads((out / "report.json").read_text())
    assert 0.0 < report["entity"]["micro"]["f1"] < 1.0


@pytest.mark.parametrize(
    ("args", "env_over", "needle"),
    [
        (["--dataset", "/nonexistent/data.conll"], {}, "/nonexistent/data.conll"),
        # A split the folder has no file for (an unknown split name is a usage error of the
        # --split choice: tests/test_cli.py).
        (["--dataset", "FOLDER", "--split", "train"], {}, "no file for split 'train'"),
        (["--base-url", "http://127.0.0.1:9/v1"], {}, "cannot reach the LLM endpoint"),
        (["--redis-url", "redis://127.0.0.1:1/0"], {}, "Redis at redis://127.0.0.1:1/0"),
        # No key on the producer is no error (the workers hold it): the endpoint is checked.
        (["--base-url", "https://api.example.invalid/v1"], {}, "cannot reach the LLM endpoint"),
    ],
)
def test_user_mistakes_give_one_clear_line(
    fleet_env: dict[str, str],
    simulator_url: str,
    gold_path: Path,
    tmp_path: Path,
    args: list[str],
    env_over: dict[str, str],
    needle: str,
) -> None:
    folder = tmp_path / "folder"
    folder.mkdir()
    (folder / "test.txt").write_bytes(gold_path.read_bytes())
    base = {"--dataset": str(gold_path), "--base-url": simulator_url}
    given = {
        k: str(folder) if v == "FOLDER" else v for k, v in zip(args[::2], args[1::2], strict=True)
    }
    merged = {**base, **given}
    flat = [x for kv in merged.items() for x in kv]
    proc = prelabel(
        "run",
        *flat,
        "--model",
        "m",
        "--limit",
        "5",
        "--out",
        str(tmp_path / "o"),
        env={**fleet_env, **env_over},
    )
    assert proc.returncode == 2
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1, proc.stderr
    assert needle in lines[0]
    assert "Traceback" not in proc.stderr + proc.stdout
