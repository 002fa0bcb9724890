"""report.html, report.md and the charts: self-contained, complete, labelled, and rendered
for real in a headless browser (Debian's chromium), whose screenshot must show the charts."""

from __future__ import annotations

import base64
import shutil
import subprocess
from html import escape

import numpy as np
import pytest
from PIL import Image

from evaluation.html import report_html
from evaluation.outputs import write_reports
from evaluation.report import report_markdown
from prelabel.figures import RunFigures
from task_types.ner.evaluation import Item, evaluate_items
from task_types.ner.model import Unaligned
from task_types.ner.scores import TOKEN_LEVEL_LABEL
from task_types.ner.tables import ENTITY_TITLE, LOSSES_TITLE, TOKEN_TITLE

#: The chart colour of the micro/macro bars (charts._AVERAGE_COLOUR); nothing else uses it.
AVERAGE_RGB = (0x7A, 0x4F, 0xA3)

FIGURES = RunFigures(
    items=7,
    labeled=6,
    failed=1,
    requests=7,
    prompt_tokens=2100,
    completion_tokens=300,
    rate_limited=2,
    retries=3,
    unaligned_mentions=1,
    wall_seconds=3.5,
    cost_usd=0.0125,
    model="gpt-test-model",
    prompt_version="ner-v9",
    dataset="conll2003",
    split="test",
    simulator=True,
)


def _items() -> list[Item]:
    def item(i: int, tokens: str, gold: str, pred: str | None, **kw: object) -> Item:
        return Item(
            id=f"item-{i}",
            tokens=tuple(tokens.split()),
            gold=tuple(gold.split()),
            pred=tuple(pred.split()) if pred is not None else None,
            **kw,  # type: ignore[arg-type]
        )

    return [
        item(0, "Élise visited Zürich today", "B-PER O B-LOC O", "B-PER O B-LOC O"),
        item(1, "New York City is big", "B-LOC I-LOC I-LOC O O", "B-LOC I-LOC O O O"),
        item(2, "Acme Corp hired <b>Bob</b>", "B-ORG I-ORG O B-PER", "B-LOC I-LOC O B-PER"),
        item(3, "The EU and NATO met", "O B-ORG O B-ORG O", "O B-ORG O O O"),
        item(4, "German fans cheered", "B-MISC O O", "B-MISC O B-PER"),
        item(
            5,
            "Paris Saint-Germain won",
            "B-ORG I-ORG O",
            "O O O",
            unaligned=(Unaligned(type="ORG", mention="Paris SG", reason="not found"),),
        ),
        item(6, "Nothing to see", "O O O", None, error="endpoint said 500 three times"),
    ]


@pytest.fixture(scope="module")
def evaluation():
    return evaluate_items(_items(), FIGURES, resamples=200)


def test_html_is_self_contained_and_complete(evaluation):
    page = report_html(
        evaluation, {"f1_by_type.png": b"\x89PNG-f1", "confusion.png": b"\x89PNG-confusion"}
    )
    lower = page.lower()
    assert "<script" not in lower
    assert "http://" not in lower and "https://" not in lower
    assert "<link" not in lower and "@import" not in lower
    assert page.count("data:image/png;base64,") == 2
    assert base64.b64encode(b"\x89PNG-f1").decode() in page
    for needle in (
        ENTITY_TITLE,
        TOKEN_TITLE,
        TOKEN_LEVEL_LABEL,
        LOSSES_TITLE,
        "gpt-test-model",
        "ner-v9",
        "conll2003",
        "Answers came from the prelabel simulator",
        "F1 per $",
        "F1 points per 1k tokens",
        "Worst items",
        "Most frequent false positives",
        "endpoint said 500 three times",
        "Paris SG",
    ):
        assert escape(needle) in page, needle
    # Tokens are text, never markup.
    assert "&lt;b&gt;Bob&lt;/b&gt;" in page and "<b>Bob" not in page
    micro = evaluation.intervals.micro.f1
    assert f"{100 * micro.low:.2f}–{100 * micro.high:.2f}" in page


def test_no_simulator_banner_for_a_real_model(evaluation):
    real = evaluation.model_copy(
        update={"figures": evaluation.figures.model_copy(update={"simulator": False})}
    )
    assert "prelabel simulator" not in report_html(real)
    assert "prelabel simulator" not in report_markdown(real)
    assert "model gpt-test-model" in report_markdown(real)


def test_markdown_has_the_same_sections(evaluation):
    md = report_markdown(evaluation, images=True)
    for needle in (
        ENTITY_TITLE,
        TOKEN_TITLE,
        TOKEN_LEVEL_LABEL,
        LOSSES_TITLE,
        "Errors by kind",
        "Confusion between types, span-level",
        "Confusion between types, token-level",
        "Most frequent false negatives",
        "Worst items",
        "Cost against quality",
        "](f1_by_type.png)",
        "](confusion.png)",
        "Answers came from the prelabel simulator",
    ):
        assert needle in md, needle
    assert "gold: Acme Corp hired" not in md  # spans are bracketed in diffs
    assert "[Acme Corp]ORG✗" in md and "[Acme Corp]LOC✗" in md
    assert "](f1_by_type.png)" not in report_markdown(evaluation)


def test_write_reports_writes_every_file(evaluation, tmp_path):
    paths = write_reports(evaluation, tmp_path)
    names = sorted(p.name for p in paths)
    assert names == ["confusion.png", "f1_by_type.png", "report.html", "report.json", "report.md"]
    assert sorted(p.name for p in tmp_path.iterdir()) == names  # no temporary files left
    html = (tmp_path / "report.html").read_text(encoding="utf-8")
    for png in ("f1_by_type.png", "confusion.png"):
        data = (tmp_path / png).read_bytes()
        assert data.startswith(b"\x89PNG\r\n\x1a\n")
        assert base64.b64encode(data).decode() in html
        with Image.open(tmp_path / png) as im:
            assert im.size[0] > 500 and im.size[1] > 200


def _browser() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser")


def test_html_renders_in_a_headless_browser(evaluation, tmp_path):
    browser = _browser()
    if browser is None:
        pytest.skip(
            "no chromium or chromium-browser on PATH (Debian: apt-get install chromium); "
            "the HTML report was not rendered in a browser"
        )
    out = tmp_path / "report"
    write_reports(evaluation, out)
    shot = tmp_path / "screenshot.png"
    proc = subprocess.run(
        [
            browser,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--no-first-run",
            f"--user-data-dir={tmp_path / 'profile'}",
            f"--screenshot={shot}",
            "--window-size=1280,2400",
            (out / "report.html").resolve().as_uri(),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert shot.exists(), proc.stderr[-2000:]
    with Image.open(shot) as im:
        pixels = np.asarray(im.convert("RGB"))
    assert pixels.shape[:2] == (2400, 1280)
    # A blank or unstyled page has a handful of colours; charts and tables have many.
    colours = np.unique(pixels.reshape(-1, 3), axis=0)
    assert len(colours) > 500
    # The F1 chart's micro/macro bars are drawn in a colour used nowhere else on the page.
    near = np.abs(pixels.astype(int) - np.array(AVERAGE_RGB)).sum(axis=2) < 12
    assert near.sum() > 2000, "the F1 chart is not visible in the screenshot"
    # The heatmap's darkest blue (a full diagonal cell) is there too.
    dark_blue = (pixels[:, :, 2] > 90) & (pixels[:, :, 0] < 30) & (pixels[:, :, 1] < 70)
    assert dark_blue.sum() > 500, "the confusion heatmap is not visible in the screenshot"


def test_a_run_with_nothing_scored_still_gets_its_reports(tmp_path):
    # Every item failed: the reports say so instead of failing (warnings are errors here).
    items = [Item("a", ("x", "y"), ("B-PER", "O"), None, error="quota exhausted")]
    ev = evaluate_items(items, RunFigures(items=1, failed=1), resamples=100)
    paths = write_reports(ev, tmp_path)
    assert len(paths) == 5
    html = (tmp_path / "report.html").read_text(encoding="utf-8")
    assert "quota exhausted" in html and "0 items" in html
