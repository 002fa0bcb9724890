"""`prelabel evaluate` and `prelabel compare`: plain functions with typer annotations,
registered in prelabel/cli.py. User mistakes raise `PrelabelError`s (one red line, exit 2).
"""

from __future__ import annotations

import json
import sys
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console

from prelabel.errors import ConfigError, DatasetError

if TYPE_CHECKING:
    from prelabel.model import Record
    from task_types import Source

console = Console()

#: `task_types.bootstrap.RESAMPLES`, repeated here so that `prelabel --help` need not import
#: numpy and scikit-learn (the scoring modules are imported when a command runs).
RESAMPLES = 1000


class InputFormat(StrEnum):
    auto = "auto"
    predictions = "predictions"
    conll = "conll"
    kili = "kili"


GoldOpt = Annotated[
    str | None,
    typer.Option(
        "--gold",
        metavar="SPEC",
        help="Gold labels from a dataset (same forms as `prelabel run --dataset`); items are "
        "matched by id, else by text. Required for a Kili export; overrides the file's gold.",
    ),
]
SplitOpt = Annotated[str, typer.Option(help="Split of --gold: train, valid (dev) or test.")]
FormatOpt = Annotated[
    InputFormat,
    typer.Option(
        "--format",
        help="predictions (prelabel's predictions.jsonl), conll (conlleval: token first, gold "
        "and predicted tags last), kili (json_response export); auto looks at the file.",
    ),
]
AssetsOpt = Annotated[
    Path | None,
    typer.Option(
        "--assets",
        help="For a Kili export without texts: JSON or JSONL mapping external ids to texts.",
    ),
]
JsonOpt = Annotated[
    bool, typer.Option("--json", help="Print the results as JSON on stdout, nothing else.")
]
ResamplesOpt = Annotated[
    int, typer.Option(help="Bootstrap resamples (items drawn with replacement).", min=0)
]
SeedOpt = Annotated[int, typer.Option(help="Seed of the bootstrap resamples.")]


def _read(
    file: Path, fmt: InputFormat, gold: str | None, split: str, assets: Path | None
) -> Source:
    if assets is not None and not assets.exists():
        raise ConfigError(f"--assets {assets} does not exist; check the path")
    from .sources import file_task, read_source

    records = _load_gold(gold, split, file_task(file, fmt.value)) if gold else None
    return read_source(
        file, fmt=fmt.value, gold=records, gold_name=gold or "", split=split, assets=assets
    )


def _load_gold(spec: str, split: str, task_name: str) -> list[Record]:
    """Gold records from a dataset, in any form `prelabel run --dataset` accepts, as records
    of the task type the predictions are of (`sources.file_task`)."""
    # Imported here, for start-up time: `prelabel --help` imports this module.
    import task_types
    from producer.loading import DatasetSpec, load_dataset_records

    task = task_types.get(task_name)
    # The spec's gold column is the task type's own unless named.
    records = load_dataset_records(DatasetSpec(source=spec, split=split), task_name).records
    if not any(task.gold(r) is not None for r in records):
        raise DatasetError(f"{spec} ({split}) holds no gold labels; point --gold to labeled data")
    return records


def evaluate_command(
    file: Annotated[
        Path,
        typer.Argument(
            help="A predictions file (predictions.jsonl, a conlleval file or a Kili export) "
            "or a run folder.",
            show_default=False,
        ),
    ],
    gold: GoldOpt = None,
    split: SplitOpt = "test",
    fmt: FormatOpt = InputFormat.auto,
    assets: AssetsOpt = None,
    out: Annotated[
        Path | None,
        typer.Option(
            help="Write report.html, report.md, report.json and the charts into this folder."
        ),
    ] = None,
    cost_usd: Annotated[
        float | None,
        typer.Option("--cost-usd", help="The run's cost in dollars, for F1 per dollar.", min=0),
    ] = None,
    json_out: JsonOpt = False,
    resamples: ResamplesOpt = RESAMPLES,
    seed: SeedOpt = 0,
) -> None:
    """Evaluate a predictions file: entity-level F1 with intervals, errors by kind.

    Reads prelabel's predictions.jsonl (or a run folder), a conlleval file (token first,
    gold and predicted tags last) or a Kili json_response export. Beside the entity-level
    scores it prints the token-level table (labelled as such), failed items and alignment
    losses.
    """
    import task_types  # here, for start-up time, as the other imports of the command

    from .report import render_tables, report_json

    source = _read(file, fmt, gold, split, assets)
    figures = source.figures
    if cost_usd is not None:
        # The bill's split was of the old cost: a given cost has none.
        figures = figures.model_copy(update={"cost_usd": cost_usd, "bill": None})
    task = task_types.get(source.task)
    ev = task.evaluate(source.items, figures, resamples=resamples, seed=seed)
    written: tuple[Path, ...] = ()
    if out is not None:
        from .outputs import write_reports  # matplotlib, only when charts are asked for

        written = write_reports(ev, out)
    if json_out:
        sys.stdout.write(report_json(ev))
        return
    origin = (
        f"run figures from {source.figures_from}"
        if source.figures_from
        else "no run figures: the file holds only tags"
    )
    console.print(f"{source.path} ({source.format}; {origin})", soft_wrap=True)
    facts = task.report.facts(ev)
    console.print(" · ".join(f"{name}: {value}" for name, value in facts[:5]))
    for table in render_tables(ev):
        console.print(table)
    for path in written:
        console.print(f"  {path}")


def compare_command(
    a: Annotated[Path, typer.Argument(help="Run A: a predictions file or a run folder.")],
    b: Annotated[Path, typer.Argument(help="Run B: a predictions file or a run folder.")],
    gold: GoldOpt = None,
    split: SplitOpt = "test",
    fmt: FormatOpt = InputFormat.auto,
    assets: AssetsOpt = None,
    json_out: JsonOpt = False,
    resamples: ResamplesOpt = RESAMPLES,
    seed: SeedOpt = 0,
) -> None:
    """Compare two runs or files: F1 per type, B − A, with a paired bootstrap test.

    Only items both labeled are compared. It also gives F1 per dollar and per 1k tokens.
    """
    import task_types  # here, for start-up time: `prelabel --help` imports this module

    source_a = _read(a, fmt, gold, split, assets)
    source_b = _read(b, fmt, gold, split, assets)
    if source_a.task != source_b.task:
        raise DatasetError(
            f"{source_a.path} holds {source_a.task} predictions but {source_b.path} holds "
            f"{source_b.task} ones; compare runs of the same task type"
        )
    task = task_types.get(source_a.task)
    comparison = task.compare(source_a, source_b, resamples=resamples, seed=seed)
    if json_out:
        sys.stdout.write(json.dumps(comparison.model_dump(mode="json"), indent=2) + "\n")
        return
    console.print(f"A: {comparison.a}", soft_wrap=True, highlight=False)
    console.print(f"B: {comparison.b}", soft_wrap=True, highlight=False)
    for table in task.report.comparison_tables(comparison):
        console.print(table)


__all__ = ["InputFormat", "compare_command", "evaluate_command"]
