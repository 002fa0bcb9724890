"""`prelabel evaluate` and `prelabel compare` on every input format: prelabel's
predictions.jsonl (and run folder), conlleval files, Kili json_response exports with their
assets; `--json`; user mistakes as one line and exit code 2."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from evaluation.cli import InputFormat, compare_command, evaluate_command
from prelabel.model import Usage
from prelabel.predictions import write_predictions_jsonl
from task_types.ner.kili_export import NOT_THERE, OFF_TOKENS
from task_types.ner.model import Entity, NerRecord, NerResult, Unaligned
from task_types.ner.rows import NerRow
from task_types.ner.scores import entity_scores

GOLD = [
    (["Élise", "visited", "Zürich"], ["B-PER", "O", "B-LOC"]),
    (["🎉", "Party", "in", "Paris"], ["O", "O", "O", "B-LOC"]),
    (["Acme", "Corp", "hired", "Bob"], ["B-ORG", "I-ORG", "O", "B-PER"]),
]


def prelabel(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "prelabel", *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def write_conll(path: Path, pred: list[list[str]], gold=GOLD) -> Path:
    with path.open("w", encoding="utf-8") as f:
        for (tokens, tags), p in zip(gold, pred, strict=True):
            f.writelines(f"{t} X {g} {q}\n" for t, g, q in zip(tokens, tags, p, strict=True))
            f.write("\n")
    return path


@pytest.fixture
def gold_conll(tmp_path: Path) -> Path:
    path = tmp_path / "gold" / "test.conll"
    path.parent.mkdir()
    with path.open("w", encoding="utf-8") as f:
        for tokens, tags in GOLD:
            f.writelines(f"{t} {g}\n" for t, g in zip(tokens, tags, strict=True))
            f.write("\n")
    return path


def run_json(capsys: pytest.CaptureFixture[str], file: Path, **kw) -> dict:
    evaluate_command(file, json_out=True, resamples=50, **kw)
    return json.loads(capsys.readouterr().out)


@pytest.fixture
def run_folder(tmp_path: Path) -> Path:
    folder = tmp_path / "run"
    rows = []
    preds = [["B-PER", "O", "B-LOC"], ["O", "O", "O", "O"], None]
    for i, ((tokens, tags), pred) in enumerate(zip(GOLD, preds, strict=True)):
        record = NerRecord.from_tokens(f"test-{i:06d}", tokens, tags)
        if pred is None:
            result = NerResult(id=record.id, status="failed", error="endpoint said 500")
        else:
            result = NerResult(
                id=record.id,
                status="labeled",
                tags=tuple(pred),
                entities=(Entity(type="PER", start=0, end=5, text="Élise"),) if i == 0 else (),
                unaligned=(Unaligned(type="LOC", mention="PARIS", reason="not found"),)
                if i == 1
                else (),
                usage=Usage(prompt_tokens=500, completion_tokens=20, requests=1),
                model="gpt-test",
            )
        rows.append(NerRow.from_result(record, result))
    write_predictions_jsonl(folder / "predictions.jsonl", rows)
    (folder / "run.json").write_text(
        json.dumps({"model": "gpt-test", "dataset": "tiny", "split": "test"}), encoding="utf-8"
    )
    return folder


def test_predictions_jsonl_in_a_run_folder(capsys, run_folder):
    report = run_json(capsys, run_folder, cost_usd=0.25)
    micro = report["entity"]["micro"]
    assert (micro["tp"], micro["support"], micro["predicted"]) == (2, 3, 2)
    figures = report["figures"]
    assert (figures["items"], figures["labeled"], figures["failed"]) == (3, 2, 1)
    assert (figures["model"], figures["dataset"], figures["split"]) == ("gpt-test", "tiny", "test")
    assert figures["prompt_tokens"] == 1000 and figures["cost_usd"] == 0.25
    losses = report["losses"]
    assert losses["failed"] == 1 and losses["failed_reasons"] == {"endpoint said 500": 1}
    assert losses["unaligned"] == 1 and losses["unaligned_missed"] == 1  # "PARIS" ~ "Paris"
    cost = report["cost"]
    assert cost["f1_per_dollar"] == pytest.approx(100 * micro["f1"] / 0.25)
    assert cost["f1_per_1k_tokens"] == pytest.approx(100 * micro["f1"] / 1.04)
    assert report["errors"]["kinds"]["missed"] == 1


def test_conlleval_file_writes_every_report(tmp_path):
    path = write_conll(
        tmp_path / "pred.conll",
        [["B-PER", "O", "B-LOC"], ["O", "O", "O", "B-ORG"], ["B-ORG", "O", "O", "B-PER"]],
    )
    out = tmp_path / "reports"
    proc = prelabel("evaluate", str(path), "--out", str(out), "--resamples", "100")
    assert proc.returncode == 0, proc.stderr
    assert "Entity-level" in proc.stdout and "includes O" in " ".join(proc.stdout.split())
    names = {p.name for p in out.iterdir()}
    assert names == {"report.html", "report.md", "report.json", "f1_by_type.png", "confusion.png"}
    report = json.loads((out / "report.json").read_text(encoding="utf-8"))
    gold = [tags for _, tags in GOLD]
    pred = [["B-PER", "O", "B-LOC"], ["O", "O", "O", "B-ORG"], ["B-ORG", "O", "O", "B-PER"]]
    assert report["entity"]["micro"]["f1"] == pytest.approx(entity_scores(gold, pred).micro.f1)
    assert report["errors"]["kinds"] == {
        "type": 1,
        "boundary": 1,
        "type+boundary": 0,
        "missed": 0,
        "spurious": 0,
    }


def test_json_flag_prints_only_json(tmp_path):
    path = write_conll(tmp_path / "pred.conll", [tags for _, tags in GOLD])
    proc = prelabel("evaluate", str(path), "--json", "--resamples", "20")
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)  # nothing but JSON on stdout
    assert report["entity"]["micro"]["f1"] == 1.0
    assert report["intervals"]["resamples"] == 20


def test_conlleval_with_gold_from_a_dataset(capsys, tmp_path, gold_conll):
    # The file's own gold column is wrong; --gold replaces it, matching items by text.
    wrong_gold = [(tokens, ["O"] * len(tokens)) for tokens, _ in GOLD]
    path = write_conll(tmp_path / "p.conll", [tags for _, tags in GOLD], gold=wrong_gold)
    assert run_json(capsys, path)["entity"]["micro"]["support"] == 0
    report = run_json(capsys, path, gold=str(gold_conll))
    assert report["entity"]["micro"]["f1"] == 1.0
    assert report["figures"]["dataset"] == str(gold_conll)


def kili_export(path: Path) -> Path:
    lines = [
        {
            "external_id": "test-000000",
            "text": "Élise visited Zürich",
            "json_response": {
                "NER": {
                    "annotations": [
                        {"categories": [{"name": "PERSON"}], "beginOffset": 0, "content": "Élise"},
                        {"categories": [{"name": "LOC"}], "beginOffset": 14, "content": "Zürich"},
                    ]
                }
            },
        },
        {
            "external_id": "test-000001",
            # UTF-16 offset: the emoji counts two units, so "Paris" is at 12, code point 11.
            "json_response": {
                "NER": {
                    "annotations": [
                        {"categories": [{"name": "LOC"}], "beginOffset": 12, "content": "Paris"}
                    ]
                }
            },
        },
        {
            "external_id": "test-000002",
            "json_response": {
                "NER": {
                    "annotations": [
                        {"categories": [{"name": "ORG"}], "beginOffset": 0, "content": "Acme"},
                        {"categories": [{"name": "PER"}], "beginOffset": 3, "content": "Bob"},
                        {"categories": [{"name": "ORG"}], "beginOffset": 5, "content": "Cor"},
                    ]
                }
            },
        },
    ]
    path.write_text("\n".join(json.dumps(x, ensure_ascii=False) for x in lines) + "\n", "utf-8")
    return path


def test_kili_export_with_assets_and_gold(capsys, tmp_path, gold_conll):
    export = kili_export(tmp_path / "kili.jsonl")
    assets = tmp_path / "assets.json"
    assets.write_text(json.dumps({"test-000001": "🎉 Party in Paris"}), encoding="utf-8")
    report = run_json(capsys, export, gold=str(gold_conll), assets=assets)
    per_type = {
        t: (s["tp"], s["support"], s["predicted"]) for t, s in report["entity"]["per_type"].items()
    }
    assert per_type == {"LOC": (2, 2, 2), "ORG": (0, 1, 1), "PER": (1, 2, 1)}
    losses = report["losses"]
    assert losses["unaligned"] == 2
    assert losses["unaligned_reasons"] == {NOT_THERE: 1, OFF_TOKENS: 1}
    assert losses["unaligned_missed"] == 1  # "Bob" is a missed gold entity
    assert report["errors"]["kinds"]["boundary"] == 1  # Acme for Acme Corp


def test_compare_two_conlleval_files(capsys, tmp_path):
    gold = [tags for _, tags in GOLD]
    pred_a = [["B-PER", "O", "O"], ["O", "O", "O", "B-LOC"], ["B-ORG", "O", "O", "B-PER"]]
    pred_b = gold
    a = write_conll(tmp_path / "a.conll", pred_a)
    b = write_conll(tmp_path / "b.conll", pred_b)
    compare_command(a, b, json_out=True, resamples=200)
    result = json.loads(capsys.readouterr().out)
    assert result["compared"] == 3 and result["only_in_a"] == 0
    micro = result["paired"]["micro"]
    assert micro["a"] == pytest.approx(entity_scores(gold, pred_a).micro.f1)
    assert micro["b"] == 1.0 and micro["delta"] > 0 and micro["p_value"] <= 0.5
    per_type = result["paired"]["per_type"]
    assert per_type["PER"]["delta"] == 0.0 and per_type["PER"]["p_value"] == 1.0
    assert per_type["LOC"]["delta"] == pytest.approx(1 - 2 / 3)
    # The table form names both files and the test.
    compare_command(a, b, resamples=50, fmt=InputFormat.conll)
    out = " ".join(capsys.readouterr().out.split())
    assert "a.conll" in out and "b.conll" in out and "Paired bootstrap" in out


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["evaluate", "KILI"], "pass --gold SPEC"),
        (["evaluate", "KILI", "--gold", "GOLD", "--assets", "/nonexistent.json"], "--assets"),
        (["evaluate", "BAD"], "bad.conll:2: 2 column(s)"),
        (["evaluate", "/nonexistent/p.jsonl"], "/nonexistent/p.jsonl does not exist"),
        (["evaluate", "OTHER", "--gold", "GOLD"], "is in no gold record"),
        (["compare", "OTHER", "GOLDPRED"], "different gold tags"),
    ],
)
def test_user_mistakes_give_one_line_and_exit_2(tmp_path, gold_conll, args, needle):
    kili = kili_export(tmp_path / "kili.jsonl")
    bad = tmp_path / "bad.conll"
    bad.write_text("Paris B-LOC B-LOC\nParis B-LOC\n", encoding="utf-8")
    other = write_conll(
        tmp_path / "other.conll",
        [["O", "O", "B-PER"]],
        gold=[(["Someone", "else", "entirely"], ["O", "O", "B-PER"])],
    )
    goldpred = write_conll(
        tmp_path / "goldpred.conll",
        [["O", "O", "B-PER"]],
        gold=[(["Someone", "else", "entirely"], ["O", "O", "O"])],
    )
    names = {"KILI": kili, "BAD": bad, "GOLD": gold_conll, "OTHER": other, "GOLDPRED": goldpred}
    proc = prelabel(*(str(names.get(a, a)) for a in args))
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert needle in " ".join(proc.stderr.split())
    assert "Traceback" not in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1


def test_kili_json_list_without_gold_uses_the_producers_tokeniser(tmp_path):
    from task_types.ner.kili_export import read_kili

    export = tmp_path / "export.json"
    export.write_text(
        json.dumps(
            [
                {
                    "externalId": "a",
                    "content": "Dr. O'Neil flew to Washington, D.C. today",
                    "latestLabel": {
                        "jsonResponse": {
                            "JOB": {
                                "annotations": [
                                    {
                                        "categories": [{"name": "PER"}],
                                        "beginOffset": 4,
                                        "content": "O'Neil",
                                    },
                                    {
                                        "categories": [{"name": "LOCATION"}],
                                        "beginOffset": 19,
                                        "content": "Washington, D.C.",
                                    },
                                ]
                            }
                        }
                    },
                }
            ]
        ),
        encoding="utf-8",
    )
    (item,) = read_kili(export, gold=None).items
    assert item.gold is None and item.unaligned == ()
    words = dict(zip(item.tokens, item.pred or (), strict=True))
    assert words["O'Neil"] == "B-PER" and words["Washington"] == "B-LOC"
    assert words["D"] == "I-LOC" and words["today"] == "O" and words["Dr"] == "O"


def test_the_headline_is_f1_over_all_items_beside_f1_over_labeled_items(
    capsys: pytest.CaptureFixture[str], run_folder: Path, tmp_path: Path
) -> None:
    """A failed item predicts nothing: the headline counts its gold entities as missed, so a
    run that fails its hard items cannot read better than it delivers (issue 13.2)."""
    report = run_json(capsys, run_folder)
    gold = [tags for _, tags in GOLD]
    everything = entity_scores(gold, [["B-PER", "O", "B-LOC"], ["O"] * 4, ["O"] * 4]).micro
    headline = report["headline"]
    assert (headline["items"], headline["failed"]) == (3, 1)
    assert headline["all_items"]["f1"] == pytest.approx(everything.f1)
    assert headline["labeled_items"]["f1"] == report["entity"]["micro"]["f1"]
    assert headline["all_items"]["f1"] < headline["labeled_items"]["f1"]
    kinds = report["losses"]["failed_kinds"]
    assert kinds == [
        {
            "kind": "endpoint said 500",
            "items": 1,
            "example": {
                "id": "test-000002",
                "reason": "endpoint said 500",
                "type": "",
                "mention": "",
            },
        }
    ]

    out = tmp_path / "reports"
    proc = prelabel("evaluate", str(run_folder), "--out", str(out), "--resamples", "20")
    assert proc.returncode == 0, proc.stderr
    shown = f"{100 * everything.f1:.2f}"
    terminal = " ".join(proc.stdout.split())
    assert f"over all 3 items (the 1 failed find nothing) {shown}" in " ".join(
        terminal.replace("│", " ").split()
    )
    md = (out / "report.md").read_text(encoding="utf-8")
    assert f"**Entity-level micro F1 over all 3 items (the 1 failed find nothing): {shown}**" in md
    assert "Failed items by kind" in md and "test-000002: endpoint said 500" in md
    html = (out / "report.html").read_text(encoding="utf-8")
    assert "micro F1, all items" in html and f'<div class="value">{shown}</div>' in html


def test_compare_shows_each_runs_f1_over_all_items(
    capsys: pytest.CaptureFixture[str], run_folder: Path, tmp_path: Path
) -> None:
    gold = [tags for _, tags in GOLD]
    b = write_conll(tmp_path / "b.conll", gold)
    compare_command(run_folder / "predictions.jsonl", b, json_out=True, resamples=50)
    result = json.loads(capsys.readouterr().out)
    everything = entity_scores(gold, [["B-PER", "O", "B-LOC"], ["O"] * 4, ["O"] * 4]).micro
    assert result["f1_all_a"] == pytest.approx(everything.f1) and result["f1_all_b"] == 1.0
    assert (result["items_all"], result["failed_a"], result["failed_b"]) == (3, 1, 0)
    compare_command(run_folder / "predictions.jsonl", b, resamples=50)
    out = " ".join(capsys.readouterr().out.split())
    assert "over all 3 items with gold" in out
