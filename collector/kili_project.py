"""The Kili project an upload goes to: created for the run, found again by its title, or given
by id and checked to hold the task type's job (`task_types.KiliJob`) and every category of
the run."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from collector.kili_client import DEFAULT_ENDPOINT
from prelabel.errors import UploadError
from prelabel.model import RunConfig
from task_types import TaskType

if TYPE_CHECKING:
    from kili.client import Kili


def project_title(config: RunConfig) -> str:
    """The title of the project an upload creates; later uploads of the run find it by it."""
    dataset = config.dataset if len(config.dataset) <= 60 else Path(config.dataset).name
    return f"prelabel {config.run_id}: {dataset} {config.split}".strip()


def project_url(endpoint: str | None, project_id: str) -> str:
    """The project's page in Kili's web app, next to the API endpoint."""
    base = (endpoint or DEFAULT_ENDPOINT).split("/api/", 1)[0]
    return f"{base}/label/projects/{project_id}"


def find_or_create_project(
    kili: Kili,
    project_id: str | None,
    task: TaskType,
    job: str,
    config: RunConfig,
    before_create: Callable[[], object] = lambda: None,
) -> tuple[str, bool]:
    """The project's id, and whether this call created it. Raises UploadError when the given
    project, or the one found by title, cannot hold the run's predictions (`before_create`
    runs first when it would be created: a check that may refuse, leaving nothing behind)."""
    fields = ["id", "title", "inputType", "jsonInterface"]
    if project_id:
        found = kili.projects(project_id=project_id, fields=fields, disable_tqdm=True)
        if not found:
            raise UploadError(
                f"Kili project {project_id} does not exist, or this API key cannot "
                "see it: check --kili-project-id (PRELABEL_KILI_PROJECT_ID)"
            )
        check_interface(found[0], task, job, config)
        return found[0]["id"], False
    title = project_title(config)
    found = [
        p
        for p in kili.projects(search_query=title, fields=fields, disable_tqdm=True)
        if p["title"] == title
    ]
    if found:
        check_interface(found[0], task, job, config)
        return found[0]["id"], False
    before_create()
    created = kili.create_project(
        title=title,
        description=f"Pre-annotations by {config.endpoint.model} "
        f"({config.labeling.prompt_version}), run {config.run_id}, from prelabel",
        input_type="TEXT",
        json_interface=task.kili.json_interface(task.labels(config), job),
    )
    return created["id"], True


def check_interface(
    project: Mapping[str, Any], task: TaskType, job: str, config: RunConfig
) -> None:
    """A TEXT project whose interface has job `job`, of the task type's `mlTask`, with a
    category per label tag, and multiple choice where the task type's job is (a
    multi-label run's sets cannot go into a single-choice job)."""
    pid = project["id"]
    if project.get("inputType") != "TEXT":
        raise UploadError(
            f"Kili project {pid} holds {project.get('inputType')} assets, not TEXT: "
            "upload to a TEXT project, or omit --kili-project-id to create one"
        )
    jobs = (project.get("jsonInterface") or {}).get("jobs") or {}
    if job not in jobs:
        have = ", ".join(sorted(jobs)) or "none"
        raise UploadError(
            f"Kili project {pid} has no job {job} (its jobs: {have}): add a "
            f"{task.kili.ml_task} job of that name in Kili's interface editor"
        )
    if jobs[job].get("mlTask") != task.kili.ml_task:
        raise UploadError(
            f"job {job} of Kili project {pid} is a {jobs[job].get('mlTask')} job, not "
            f"{task.kili.ml_task}"
        )
    content = jobs[job].get("content") or {}
    wanted = task.kili.json_interface(task.labels(config), job)["jobs"][job]["content"]
    if wanted.get("input") == "checkbox" and content.get("input") == "radio":
        # Several categories per asset sent to a single-choice job; the other way round
        # (one category to a multiple-choice job) is fine.
        raise UploadError(
            f"job {job} of Kili project {pid} takes one category per asset (input radio), "
            "but this run's predictions are sets of labels: give a multiple-choice "
            "(checkbox) job, or omit --kili-project-id to create one"
        )
    categories = content.get("categories") or {}
    lacking = [t.tag for t in task.labels(config).labels if t.tag not in categories]
    if lacking:
        raise UploadError(
            f"job {job} of Kili project {pid} lacks the categories {', '.join(lacking)}: "
            "add them (named by these tags) in Kili's interface editor"
        )


__all__ = ["check_interface", "find_or_create_project", "project_title", "project_url"]
