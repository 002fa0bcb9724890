"""`prelabel upload` and `prelabel export`: plain functions with typer annotations, registered
in prelabel/cli.py. `upload_after_run` is what `prelabel run --upload kili` calls."""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.table import Table

from prelabel.errors import ConfigError
from prelabel.options import RedisUrlOpt

if TYPE_CHECKING:
    from collector.kili import KiliTarget, UploadReport
    from collector.source import RunData
    from prelabel.settings import Settings

console = Console()
err_console = Console(stderr=True)


class Platform(StrEnum):
    kili = "kili"


class OffsetUnitName(StrEnum):
    utf16 = "utf16"
    codepoint = "codepoint"


class OffsetChoiceName(StrEnum):
    auto = "auto"
    utf16 = "utf16"
    codepoint = "codepoint"


class ExportFormat(StrEnum):
    jsonl = "jsonl"
    #: Task types' own formats (`task_types.Reporting.formats`): NER's, classification's.
    conll = "conll"
    csv = "csv"
    kili = "kili"
    label_studio = "label-studio"
    hf = "hf"
    review = "review"


RunArg = Annotated[
    str | None,
    typer.Argument(
        metavar="RUN|DIR",
        help="A run id whose data is still in Redis, or a run folder (predictions.jsonl "
        "and run.json, as `prelabel run --out` writes them).",
        show_default=False,
    ),
]


def upload_command(
    run: RunArg = None,
    to: Annotated[Platform, typer.Option("--to", help="Where to upload.")] = Platform.kili,
    from_dir: Annotated[
        Path | None, typer.Option("--from", help="A run folder (same as giving DIR).")
    ] = None,
    kili_project_id: Annotated[
        str | None,
        typer.Option(
            envvar="PRELABEL_KILI_PROJECT_ID",
            show_envvar=True,
            help="Upload into this Kili project, after checking its interface. Default: "
            "$PRELABEL_KILI_PROJECT_ID, else a project created for the run (and found again "
            "by its title on later uploads).",
        ),
    ] = None,
    kili_job: Annotated[
        str | None,
        typer.Option(
            help="Name of the job in the project. Default: the task type's own "
            "(NER: NAMED_ENTITIES_RECOGNITION_JOB).",
            show_default=False,
        ),
    ] = None,
    batch_size: Annotated[
        int, typer.Option(help="Assets or predictions per call (at most 100).", min=1, max=100)
    ] = 100,
    offset_unit: Annotated[
        OffsetChoiceName,
        typer.Option(
            help="How Kili counts beginOffset: code points, UTF-16 code units, or auto: code "
            "points unless the project's human labels show UTF-16 (it refuses to guess when a "
            "text holds an emoji and nothing shows which)."
        ),
    ] = OffsetChoiceName.auto,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Write the payloads to files and send nothing.")
    ] = False,
    out: Annotated[
        Path | None,
        typer.Option(help="Folder for --dry-run files. Default: RUN_FOLDER/kili-dry-run."),
    ] = None,
    redis_url: RedisUrlOpt = None,
) -> None:
    """Upload a run's predictions to Kili as pre-annotations for labelers to review.

    Reads KILI_API_KEY and KILI_API_ENDPOINT. Safe to repeat: assets already in the project
    are skipped, and the run's predictions replace those of the same model and prompt. An
    interrupted upload resumes where it stopped when run again.
    """
    from collector.kili import UploadOptions, upload_run
    from collector.kili import dry_run as write_dry_run

    settings = _settings(redis_url)
    data = _load(run, from_dir, settings)
    target = _target(settings, kili_project_id, kili_job)
    options = UploadOptions(batch_size=batch_size, unit=offset_unit.value)
    if dry_run:
        folder = out or (data.folder or Path("runs") / data.config.run_id) / "kili-dry-run"
        for path in write_dry_run(data, target, folder, options):
            console.print(f"  {path}")
        console.print("dry run: nothing was sent to Kili")
        return
    report = upload_run(data, target, options, err_console)
    _print_report(report, target)


def export_command(
    run: RunArg = None,
    format: Annotated[
        ExportFormat,
        typer.Option(
            "--format",
            help="jsonl (prelabel's own), conll (NER: IOB2, conlleval columns), csv "
            "(classification: predictions.csv for a spreadsheet), kili "
            "(json_response JSONL and the project interface), label-studio (tasks JSON with "
            "predictions, and a labeling config), hf (a `datasets` folder), review "
            "(review.csv: items from the least to the most confident).",
        ),
    ] = ExportFormat.jsonl,
    out: Annotated[
        Path | None,
        typer.Option(help="Output folder (for hf, the dataset folder itself)."),
    ] = None,
    offset_unit: Annotated[
        OffsetUnitName,
        typer.Option(
            help="Offset unit of the kili format (code points: what Kili's own code counts)."
        ),
    ] = OffsetUnitName.codepoint,
    redis_url: RedisUrlOpt = None,
) -> None:
    """Export a run's predictions for another tool; each export is checked against its text."""
    from collector.formats import write_hf_dataset, write_kili, write_label_studio
    from collector.review import write_review
    from prelabel.predictions import write_predictions_jsonl

    if out is None:
        raise ConfigError("--out is required: the folder to write the export into")
    data = _load(run, None, _settings(redis_url))
    task = data.task
    task.check_rows(data.rows)
    rows = list(data.rows)
    if format is ExportFormat.jsonl:
        paths: tuple[Path, ...] = (out / "predictions.jsonl",)
        write_predictions_jsonl(paths[0], rows)
    elif format is ExportFormat.kili:
        paths = write_kili(out, rows, data.config, task, offset_unit.value)
    elif format is ExportFormat.label_studio:
        paths = write_label_studio(out, rows, data.config, task)
    elif format is ExportFormat.hf:
        paths = (write_hf_dataset(out, rows, data.config, task),)
    elif format is ExportFormat.review:
        paths = write_review(out, rows, data.config, task)
    elif format.value in task.formats:
        paths = task.formats[format.value](out, rows)
    else:
        raise ConfigError(f"--format {format.value} does not apply to {task.name} runs")
    for path in paths:
        console.print(f"  {path}")


def upload_after_run(out_dir: Path, settings: Settings) -> None:
    """Upload the run folder `prelabel run` just wrote, to the project of the settings."""
    from collector.kili import upload_run
    from collector.source import load_run_folder

    target = _target(settings, None, None)
    report = upload_run(load_run_folder(out_dir), target, None, err_console)
    _print_report(report, target)


def _settings(redis_url: str | None) -> Settings:
    from prelabel.settings import load_settings

    return load_settings(**({"REDIS_URL": redis_url} if redis_url else {}))


def _load(run: str | None, from_dir: Path | None, settings: Settings) -> RunData:
    from collector.source import load_run_folder, load_run_redis

    if (run is None) == (from_dir is None):
        raise ConfigError("give one run: a run id or folder (RUN|DIR), or --from DIR")
    if from_dir is not None:
        return load_run_folder(from_dir)
    assert run is not None
    if Path(run).is_dir():
        return load_run_folder(Path(run))
    from prelabel.connections import connect
    from prelabel.store import RunStore

    client = connect(settings.redis_url, master=settings.sentinel_master)
    return load_run_redis(RunStore(client), run)


def _target(settings: Settings, project_id: str | None, job: str | None) -> KiliTarget:
    from collector.kili import KiliTarget

    key = settings.kili_api_key.get_secret_value() if settings.kili_api_key else None
    return KiliTarget(
        api_key=key,
        endpoint=settings.kili_api_endpoint,
        project_id=project_id or settings.kili_project_id,
        job=job,
    )


def _print_report(report: UploadReport, target: KiliTarget) -> None:
    from collector.kili import project_url

    table = Table(title=f"Kili project {report.project_id}", show_header=False)
    table.add_row("project", "created" if report.project_created else "found")
    table.add_row("model name", report.model_name)
    table.add_row("assets created", str(report.assets_created))
    table.add_row("assets already there", str(report.assets_present))
    table.add_row("predictions sent", str(report.predictions_sent))
    table.add_row("predictions already there", str(report.predictions_unchanged))
    table.add_row("predictions deleted (failed items)", str(report.predictions_deleted))
    table.add_row("failed items (no prediction)", str(report.items_failed))
    if report.items_empty:
        table.add_row("items with an empty text (not uploaded)", str(report.items_empty))
    if report.confidence:
        table.add_row("priorities set (least sure first)", str(report.priorities_set))
        table.add_row("priorities already there", str(report.priorities_unchanged))
        if report.priorities_declined:
            table.add_row(
                "priorities Kili declined (asset in progress, done or skipped)",
                str(report.priorities_declined),
            )
    console.print(table)
    console.print(f"open it: {project_url(target.endpoint, report.project_id)}")


__all__ = ["export_command", "upload_after_run", "upload_command"]
