"""Exports of a run's predictions for other tools: Kili json_response JSONL, Label Studio
tasks, and a Hugging Face `datasets` folder. (prelabel's own JSONL and CoNLL are in exports.py.)

Every writer first checks each span against its text (`offsets.check_entities`), so that no
file leaves with an offset that is off, and each converts offsets to the unit its tool counts:

- Kili: UTF-16 code units by default. Kili documents `beginOffset` only as a "character
  offset". The evidence: neither the `kili` SDK nor kili-formats converts offsets anywhere
  (no UTF-16 handling in either package); Kili's own Python examples (the tagtog import
  recipe, its AutoML NER model) slice Python strings, but only on text where code points and
  UTF-16 units agree; the labeling interface is a web app, and JavaScript strings count UTF-16
  units, which is what every browser annotator that did not convert on purpose stores (Label
  Studio before its fix below, Argilla issues 2353 and 5729). Not verifiable against a live
  Kili from here, hence the switch: `--offset-unit codepoint` (README, "Kili and exports");
- Label Studio: code points. Its editor is a web app, but Label Studio converts the browser's
  UTF-16 offsets to code points before storing them (label-studio-frontend PR 308, "store code
  points instead of js length", after issues 1008 and 1347 where offsets after an emoji were off
  by one), so Python offsets import as they are;
- Hugging Face: tokens and tags, no character offsets.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any
from xml.sax.saxutils import quoteattr

from collector.exports import PredictionRow
from collector.offsets import OffsetMap, OffsetUnit, check_entities, span_matches
from prelabel.errors import ConfigError, DatasetError
from prelabel.files import atomic_dir, write_atomic
from prelabel.model import Entity, Ontology, RunConfig

#: The NER job of the Kili projects prelabel creates.
KILI_JOB = "NAMED_ENTITIES_RECOGNITION_JOB"
#: How Kili counts `beginOffset`, unless told otherwise (README, "Kili and exports").
KILI_OFFSET_UNIT: OffsetUnit = "utf16"
#: Category colours, in ontology order (the first four are the Kili NER tutorial's).
PALETTE = (
    "#1f77b4",
    "#ff7f0e",
    "#2ca02c",
    "#d62728",
    "#9467bd",
    "#8c564b",
    "#e377c2",
    "#7f7f7f",
    "#bcbd22",
    "#17becf",
)


def check_rows(rows: Iterable[PredictionRow]) -> None:
    """Check every labeled row's spans against its text; raise on the first that is off."""
    for row in rows:
        if row.status == "labeled":
            check_entities(row.id, row.text, row.entities)


# --- Kili -------------------------------------------------------------------------------


def kili_model_name(config: RunConfig) -> str:
    """The `model_name` of a run's predictions: the model and the prompt version.

    Predictions with the same model name replace each other on an asset, so a run uploaded
    again replaces its own, and so does a later run of the same model and prompt.
    """
    return f"{config.model}@{config.prompt_version}"


def kili_json_interface(ontology: Ontology, job: str = KILI_JOB) -> dict[str, Any]:
    """A Kili json_interface with one NER job whose categories are the ontology's tags."""
    categories = {
        t.tag: {"name": t.name, "children": [], "color": PALETTE[i % len(PALETTE)]}
        for i, t in enumerate(ontology.types)
    }
    return {
        "jobs": {
            job: {
                "mlTask": "NAMED_ENTITIES_RECOGNITION",
                "content": {"categories": categories, "input": "radio"},
                "instruction": "Named entities",
                "required": 0,
                "isChild": False,
            }
        }
    }


def kili_json_response(
    row: PredictionRow, job: str = KILI_JOB, unit: OffsetUnit = KILI_OFFSET_UNIT
) -> dict[str, Any]:
    """A labeled row's entities as a Kili NER json_response, offsets counted in `unit`.

    An item labeled with no entity gets an empty annotation list rather than no prediction, so
    that uploading it replaces an earlier prediction that had some.
    """
    offsets = OffsetMap.of(row.text)
    return {
        job: {
            "annotations": [
                {
                    "categories": [{"name": e.type}],
                    "beginOffset": offsets.to_unit(e.start, unit),
                    "content": e.text,
                    "mid": f"{row.id}#{k}",
                }
                for k, e in enumerate(row.entities)
            ]
        }
    }


def entities_from_kili(
    json_response: dict[str, Any],
    text: str,
    job: str = KILI_JOB,
    unit: OffsetUnit = KILI_OFFSET_UNIT,
) -> list[Entity]:
    """Read a Kili NER json_response back into code-point entities of `text`, in text order.

    Raises ValueError when an annotation does not sit on its content in the text.
    """
    offsets = OffsetMap.of(text)
    entities = []
    for annotation in (json_response.get(job) or {}).get("annotations", []):
        content = annotation["content"]
        start = offsets.from_unit(annotation["beginOffset"], unit)
        if not span_matches(text, start, content):
            raise ValueError(
                f"annotation {content!r} at {annotation['beginOffset']} ({unit}) is "
                f"{text[start : start + len(content)]!r} in the text"
            )
        names = [c["name"] for c in annotation.get("categories", [])]
        entities.append(Entity(type=names[0], start=start, end=start + len(content), text=content))
    return sorted(entities, key=lambda e: (e.start, e.end, e.type))


def kili_prediction_lines(
    rows: Iterable[PredictionRow],
    model_name: str,
    job: str = KILI_JOB,
    unit: OffsetUnit = KILI_OFFSET_UNIT,
) -> Iterator[str]:
    """One JSON line per labeled row: the arguments of `kili.create_predictions` for it."""
    for row in rows:
        if row.status != "labeled":
            continue
        line = {
            "external_id": row.id,
            "model_name": model_name,
            "json_response": kili_json_response(row, job, unit),
        }
        yield json.dumps(line, ensure_ascii=False) + "\n"


def write_kili(
    out_dir: Path,
    rows: Sequence[PredictionRow],
    config: RunConfig,
    unit: OffsetUnit = KILI_OFFSET_UNIT,
) -> tuple[Path, ...]:
    """Write kili_predictions.jsonl and kili_interface.json (the project's json_interface).

    For a manual import: create a TEXT project with the interface, import the texts with
    their item ids as external ids, then for each line call
    `kili.create_predictions(project_id, external_id_array=[external_id],
    json_response_array=[json_response], model_name=model_name)`.
    """
    check_rows(rows)
    predictions = out_dir / "kili_predictions.jsonl"
    interface = out_dir / "kili_interface.json"
    write_atomic(predictions, kili_prediction_lines(rows, kili_model_name(config), unit=unit))
    write_atomic(interface, json.dumps(kili_json_interface(config.ontology), indent=2) + "\n")
    return predictions, interface


# --- Label Studio -----------------------------------------------------------------------


def label_studio_config(ontology: Ontology) -> str:
    """A Label Studio labeling config: one Labels control over one Text object."""
    labels = "\n".join(
        f"    <Label value={quoteattr(t.tag)} background={quoteattr(PALETTE[i % len(PALETTE)])}/>"
        for i, t in enumerate(ontology.types)
    )
    return (
        "<View>\n"
        '  <Labels name="label" toName="text">\n'
        f"{labels}\n"
        "  </Labels>\n"
        '  <Text name="text" value="$text"/>\n'
        "</View>\n"
    )


def label_studio_task(row: PredictionRow, model_version: str) -> dict[str, Any]:
    """One Label Studio task; a labeled row carries its entities as one prediction."""
    task: dict[str, Any] = {"data": {"text": row.text, "item_id": row.id}}
    if row.status == "labeled":
        task["predictions"] = [
            {
                "model_version": model_version,
                "result": [
                    {
                        "id": f"{row.id}#{k}",
                        "from_name": "label",
                        "to_name": "text",
                        "type": "labels",
                        "value": {
                            "start": e.start,
                            "end": e.end,
                            "text": e.text,
                            "labels": [e.type],
                        },
                    }
                    for k, e in enumerate(row.entities)
                ],
            }
        ]
    return task


def write_label_studio(
    out_dir: Path, rows: Sequence[PredictionRow], config: RunConfig
) -> tuple[Path, ...]:
    """Write tasks.json (every item, predictions on the labeled ones) and label_config.xml."""
    check_rows(rows)
    tasks = [label_studio_task(row, kili_model_name(config)) for row in rows]
    tasks_path = out_dir / "tasks.json"
    config_path = out_dir / "label_config.xml"
    write_atomic(tasks_path, json.dumps(tasks, ensure_ascii=False, indent=1) + "\n")
    write_atomic(config_path, label_studio_config(config.ontology))
    return tasks_path, config_path


# --- Hugging Face datasets ----------------------------------------------------------------


def tag_names(ontology: Ontology, rows: Iterable[PredictionRow]) -> list[str]:
    """ClassLabel names: O, then B-/I- per ontology type, then any other tag the rows hold."""
    names = ["O"] + [f"{p}-{t.tag}" for t in ontology.types for p in ("B", "I")]
    known = set(names)
    extra = {tag for row in rows for tag in (*row.tags, *(row.gold_tags or ())) if tag not in known}
    return names + sorted(extra)


def write_hf_dataset(out_dir: Path, rows: Sequence[PredictionRow], config: RunConfig) -> Path:
    """Save the rows as a `datasets` folder (`save_to_disk`) at `out_dir`.

    Columns: id, text, tokens, pred_tags and gold_tags (sequences of one ClassLabel, so that
    both read as ints with the same names), status and error. pred_tags is empty for a failed
    item, gold_tags is None where the data had none.
    """
    from datasets import ClassLabel, Dataset, Features, List, Value

    from producer.loading import quiet_progress

    check_rows(rows)
    if out_dir.exists() and any(out_dir.iterdir()) and not (out_dir / "dataset_info.json").exists():
        raise ConfigError(
            f"{out_dir} exists and is not a datasets folder: choose an empty or new --out"
        )
    label = ClassLabel(names=tag_names(config.ontology, rows))
    features = Features(
        {
            "id": Value("string"),
            "text": Value("string"),
            "tokens": List(Value("string")),
            "pred_tags": List(label),
            "gold_tags": List(label),
            "status": Value("string"),
            "error": Value("string"),
        }
    )
    columns: dict[str, list[Any]] = {
        "id": [r.id for r in rows],
        "text": [r.text for r in rows],
        "tokens": [list(r.tokens) for r in rows],
        "pred_tags": [list(r.tags) for r in rows],
        "gold_tags": [list(r.gold_tags) if r.gold_tags is not None else None for r in rows],
        "status": [r.status for r in rows],
        "error": [r.error for r in rows],
    }
    dataset = Dataset.from_dict(columns, features=features)
    dataset.info.description = (
        f"prelabel run {config.run_id}: {config.model} ({config.prompt_version}) "
        f"on {config.dataset} {config.split}"
    )
    # Saved beside, then swapped in, so that a reader never finds half a folder.
    try:
        with atomic_dir(out_dir) as tmp, quiet_progress():
            dataset.save_to_disk(str(tmp))
    except OSError as exc:
        raise DatasetError(f"cannot write the dataset folder {out_dir}: {exc}") from exc
    return out_dir


__all__ = [
    "KILI_JOB",
    "KILI_OFFSET_UNIT",
    "check_rows",
    "entities_from_kili",
    "kili_json_interface",
    "kili_json_response",
    "kili_model_name",
    "kili_prediction_lines",
    "label_studio_config",
    "label_studio_task",
    "tag_names",
    "write_hf_dataset",
    "write_kili",
    "write_label_studio",
]
