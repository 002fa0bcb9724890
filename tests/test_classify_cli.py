"""Classification on the command line: `--task` lists every task type, the dataset and label
flags reach `run`, `estimate` and `simulate`, and every misuse is one line and exit 2."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import urllib.request
from pathlib import Path
from typing import Any

import pytest

import task_types
from prelabel.options import TaskName

PRELABEL = str(Path(sys.executable).parent / "prelabel")
SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
AG_NEWS = SHARED / "ag_news"
GOEMOTIONS = SHARED / "goemotions"

#: AG News' layout, with texts of our own: class id from 1, title, description.
NEWS = [
    ("3", "Oil prices rise again", "Crude climbed for a third day on supply fears."),
    ("2", "Late goal wins the cup", "The home side scored in the last minute."),
    ("4", "New chip doubles speed", 'The maker says its "next" chip is twice as fast.'),
    ("1", "Leaders meet in Geneva", "Talks on the border resume on Monday."),
    ("2", "Champion retires", "The sprinter ends a ten-year career."),
    ("3", "Bank cuts rates", "The central bank lowered its main rate."),
]
AG_FLAGS = ["--columns", "label,title,description", "--text-field", "title,description"]


def prelabel(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [PRELABEL, *args],
        env={**os.environ, "COLUMNS": "300", **(env or {})},
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )


def one_line_error(proc: subprocess.CompletedProcess[str]) -> str:
    """The one red line of a user's mistake (exit 2, no traceback)."""
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "Traceback" not in proc.stderr + proc.stdout, proc.stderr
    assert proc.stderr.startswith("error:") and proc.stderr.strip().count("\n") == 0, proc.stderr
    return proc.stderr


def news_sample(folder: Path) -> tuple[Path, Path]:
    """A headerless, fully quoted CSV like AG News' test.csv, and its classes.txt."""
    lines = []
    for label, title, description in NEWS:
        fields = (f'"{v.replace(chr(34), chr(34) * 2)}"' for v in (label, title, description))
        lines.append(",".join(fields) + "\n")
    data = folder / "test.csv"
    data.write_text("".join(lines), encoding="utf-8")
    classes = folder / "classes.txt"
    classes.write_text("World\nSports\nBusiness\nSci/Tech\n", encoding="utf-8")
    return data, classes


def has_labeling_half() -> bool:
    return callable(getattr(task_types.get("classify"), "messages", None))


needs_labeling_half = pytest.mark.skipif(
    not has_labeling_half(),
    reason="needs classification's messages and answers (helper B's labeling half)",
)


# --- help ------------------------------------------------------------------------------------


def test_the_task_choices_are_the_registered_task_types() -> None:
    assert sorted(t.value for t in TaskName) == task_types.names()


@pytest.mark.parametrize("command", ["run", "estimate", "simulate"])
def test_help_names_every_task_type_and_the_classification_flags(command: str) -> None:
    proc = prelabel(command, "--help")
    assert proc.returncode == 0, proc.stderr
    for name in task_types.names():
        assert name in proc.stdout, name
    flags = ["--task", "--multi-label", "--labels", "--columns", "--text-field"]
    flags += ["--first-label-id", "--label-field", "--tags-field", "--id-field"]
    if command != "simulate":
        flags += ["--rows", "--few-shot-rows", "--ontology", "--entity-types"]
    for flag in flags:
        assert flag in proc.stdout, flag


# --- misuse, one line each -------------------------------------------------------------------


def test_misuses_of_the_task_flags(tmp_path: Path) -> None:
    data, classes = news_sample(tmp_path)
    base = ["estimate", "--dataset", str(data), "--model", "gpt-4o-mini", *AG_FLAGS]
    cases: list[tuple[list[str], str]] = [
        (["--multi-label"], "--multi-label is for classification, not --task ner"),
        (
            ["--task", "classify", "--labels", str(classes), "--ontology", str(classes)],
            "--labels and --ontology both name the label-set file",
        ),
        (
            ["--task", "classify", "--entity-types", "PER"],
            "--entity-types is for --task ner",
        ),
        (["--task", "classify", "--rows", "7200"], "--rows '7200': give START:END"),
        (
            ["--task", "classify", "--labels", str(classes), "--few-shot-rows", "x"],
            "--few-shot-rows 'x': give START:END",
        ),
    ]
    for extra, message in cases:
        assert message in one_line_error(prelabel(*base, *extra)), extra
    columns = ["estimate", "--dataset", str(data), "--model", "m", "--columns", "label,,text"]
    assert "--columns 'label,,text': a column name is empty" in one_line_error(prelabel(*columns))
    unknown = prelabel(*base, "--task", "sentiment")
    assert unknown.returncode == 2 and "'--task'" in unknown.stderr


def test_ids_without_a_label_file_ask_for_one(tmp_path: Path) -> None:
    data, _ = news_sample(tmp_path)
    proc = prelabel(
        "estimate", "--dataset", str(data), "--model", "m", "--task", "classify", *AG_FLAGS
    )
    message = one_line_error(proc)
    assert str(data) in message and "--labels FILE" in message


def test_an_unusable_label_file_is_named(tmp_path: Path) -> None:
    data, classes = news_sample(tmp_path)
    classes.write_text("World\nSports\nworld\n", encoding="utf-8")
    proc = prelabel(
        "estimate",
        *("--dataset", str(data), "--model", "m", "--task", "classify", *AG_FLAGS),
        *("--labels", str(classes)),
    )
    assert f"{classes}:3: label 'world' is listed twice" in one_line_error(proc)


def test_an_overlapping_few_shot_pool_of_the_same_file_is_refused(tmp_path: Path) -> None:
    data, classes = news_sample(tmp_path)
    proc = prelabel(
        "estimate",
        *("--dataset", str(data), "--model", "m", "--task", "classify", *AG_FLAGS),
        *("--labels", str(classes), "--first-label-id", "1", "--rows", ":4"),
        *("--few-shot", "2", "--few-shot-from", str(data), "--few-shot-rows", "3:"),
    )
    message = one_line_error(proc)
    assert "example rows 3:6 overlap the rows being labeled 0:4" in message


def test_a_single_file_without_a_pool_names_the_few_shot_flags(tmp_path: Path) -> None:
    data, classes = news_sample(tmp_path)
    proc = prelabel(
        "estimate",
        *("--dataset", str(data), "--model", "m", "--task", "classify", *AG_FLAGS),
        *("--labels", str(classes), "--first-label-id", "1", "--few-shot", "2"),
    )
    message = one_line_error(proc)
    assert "--few-shot-from" in message and "--few-shot-rows" in message


def test_the_simulator_reads_its_gold_as_run_does(tmp_path: Path) -> None:
    data, _ = news_sample(tmp_path)
    # --gold is read with --task and --columns: ids that nothing names stop it with one line.
    proc = prelabel("simulate", "--gold", str(data), "--task", "classify", *AG_FLAGS)
    assert "--labels FILE" in one_line_error(proc)


# --- end to end ------------------------------------------------------------------------------


def estimate_figures(stdout: str) -> dict[str, str]:
    rows = [line.split("│") for line in stdout.splitlines() if line.count("│") >= 3]
    return {cells[1].strip(): cells[2].strip() for cells in rows}


@needs_labeling_half
def test_estimate_and_dry_run_of_a_headerless_news_file(tmp_path: Path) -> None:
    data, classes = news_sample(tmp_path)
    common = [
        *("--dataset", str(data), "--model", "gpt-4o-mini", "--task", "classify", *AG_FLAGS),
        *("--labels", str(classes), "--first-label-id", "1", "--batch-size", "2"),
        *("--rows", ":4", "--few-shot", "2", "--few-shot-from", str(data)),
        *("--few-shot-rows", "4:"),
    ]
    estimate = prelabel("estimate", *common)
    assert estimate.returncode == 0, estimate.stderr
    figures = estimate_figures(estimate.stdout)
    assert figures["items"] == "4" and figures["requests"] == "2"
    assert figures["setting"] == "batch 2, 2 few-shot examples"
    dry = prelabel(
        "run",
        *common,
        "--dry-run",
        *("--redis-url", "redis://127.0.0.1:1/0", "--base-url", "http://127.0.0.1:9/v1"),
    )
    assert dry.returncode == 0, dry.stderr
    assert estimate_figures(dry.stdout) == figures


@needs_labeling_half
def test_estimate_of_the_documented_ag_news_recipe() -> None:
    if not (AG_NEWS / "test.csv").exists():
        pytest.skip(f"AG News not found at {AG_NEWS} (../shared/data is absent)")
    test = str(AG_NEWS / "test.csv")
    proc = prelabel(
        "estimate",
        *("--task", "classify", "--dataset", test, "--model", "gpt-4o-mini"),
        *("--columns", "label,title,description", "--text-field", "title,description"),
        *("--first-label-id", "1", "--labels", str(AG_NEWS / "classes.txt"), "--rows", ":7200"),
        *("--few-shot", "4", "--few-shot-from", test, "--few-shot-rows", "7200:"),
        *("--batch-size", "25"),
    )
    assert proc.returncode == 0, proc.stderr
    figures = estimate_figures(proc.stdout)
    assert figures["items"] == "7,200" and figures["requests"] == "288"
    assert figures["setting"] == "batch 25, 4 few-shot examples"


@needs_labeling_half
def test_estimate_of_goemotions_multi_label() -> None:
    if not (GOEMOTIONS / "test.tsv").exists():
        pytest.skip(f"GoEmotions not found at {GOEMOTIONS} (../shared/data is absent)")
    proc = prelabel(
        "estimate",
        *("--task", "classify", "--multi-label", "--dataset", str(GOEMOTIONS)),
        *("--split", "test", "--columns", "text,labels,id", "--id-field", "id"),
        *("--labels", str(GOEMOTIONS / "emotions.txt"), "--model", "gpt-4o-mini"),
        *("--few-shot", "3"),  # from train.tsv in the same folder, read the same way
    )
    assert proc.returncode == 0, proc.stderr
    figures = estimate_figures(proc.stdout)
    assert (
        figures["items"] == "5,427" and figures["setting"] == "batch 10, 3 few-shot examples"
    )  # an OpenAI model: 10 a request


@needs_labeling_half
def test_the_simulator_answers_from_a_headerless_news_file(tmp_path: Path) -> None:
    from prelabel import launch
    from prelabel.model import RunConfig, Usage
    from task_types.classify.model import ClassifyRecord, ClassifyResult

    data, classes = news_sample(tmp_path)
    port = launch.free_port()
    flags = [*AG_FLAGS, "--task", "classify", "--labels", str(classes), "--first-label-id", "1"]
    proc = launch.start_simulator(port, data, extra=flags, log=tmp_path / "sim.log")
    try:
        labeling = task_types.get("classify")
        labels = labeling.read_labels(classes)
        config = RunConfig(run_id="sim", model="m", base_url="x", task="classify", labels=labels)
        batch = [
            ClassifyRecord(id=str(i), text=f"{title}\n{description}")
            for i, (_, title, description) in enumerate(NEWS)
        ]
        body: dict[str, Any] = {
            "model": "gpt-4o-mini",
            "messages": labeling.messages(batch, config, []),
            "response_format": labeling.response_format(batch, config),
        }
        request = urllib.request.Request(
            f"http://127.0.0.1:{port}/v1/chat/completions",
            data=json.dumps(body).encode(),
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=30) as reply:
            content = json.loads(reply.read())["choices"][0]["message"]["content"]
    finally:
        launch.stop([proc])
    answers = labeling.parse(content, len(batch), config)
    results = [
        labeling.predict(record, answer, config, Usage())
        for record, answer in zip(batch, answers, strict=True)
    ]
    assert all(isinstance(r, ClassifyResult) for r in results), results
    names = ["World", "Sports", "Business", "Sci/Tech"]
    assert [r.labels for r in results if isinstance(r, ClassifyResult)] == [
        (names[int(label) - 1],) for label, _, _ in NEWS
    ]
