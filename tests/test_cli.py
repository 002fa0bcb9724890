"""The command line keeps its word: exit codes through the installed `prelabel` entry point,
usage errors as click's one-line message, bad input as one line, passwords never shown,
and a start-up that imports only what a command uses."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import redis

from prelabel.connections import broker_url, client_for, safe_url

#: The console script pip installed: what cron, CI and Kubernetes Jobs run.
PRELABEL = str(Path(sys.executable).parent / "prelabel")


def prelabel(
    *args: str, env: dict[str, str] | None = None, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [PRELABEL, *args],
        env={**os.environ, **(env or {})},
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def no_traceback(proc: subprocess.CompletedProcess[str]) -> None:
    assert "Traceback" not in proc.stderr + proc.stdout, proc.stderr


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["run", "--dataset", "x.jsonl", "--mdoel", "m"], "No such option: --mdoel"),
        (["run", "--dataset", "x.jsonl"], "Missing option '--model'"),
        (["run", "--dataset", "x.jsonl", "--model", "m", "--rpm", "0"], "'--rpm'"),
        (["run", "--dataset", "x.jsonl", "--model", "m", "--tpm", "-5"], "'--tpm'"),
        (["run", "--dataset", "x.jsonl", "--model", "m", "--split", "tset"], "'--split'"),
        (
            ["run", "--dataset", "x.jsonl", "--model", "m", "--response-format", "xml"],
            "'--response-format'",
        ),
        (
            ["run", "--dataset", "x.jsonl", "--model", "m", "--few-shot-strategy", "best"],
            "'--few-shot-strategy'",
        ),
        (["statuss"], "No such command 'statuss'"),
        (["status"], "Missing argument"),
    ],
)
def test_usage_errors_are_clicks_one_line_message_and_exit_2(args: list[str], message: str) -> None:
    proc = prelabel(*args)
    assert proc.returncode == 2, proc.stderr
    no_traceback(proc)
    assert message in proc.stderr
    error_lines = [line for line in proc.stderr.splitlines() if line.startswith("Error:")]
    assert len(error_lines) == 1, proc.stderr
    assert proc.stderr.splitlines()[0].startswith("Usage: prelabel")


def test_version() -> None:
    from importlib.metadata import version

    proc = prelabel("--version")
    assert proc.returncode == 0
    assert proc.stdout.strip() == f"prelabel {version('prelabel')}"


def test_help_shows_choices_and_environment_variables() -> None:
    secret = {"REDIS_URL": "redis://:s3cret-pw@127.0.0.1:6379/0", "COLUMNS": "200"}
    proc = prelabel("run", "--help", env=secret)
    assert proc.returncode == 0
    assert "s3cret-pw" not in proc.stdout  # the variable is named, never its value
    for shown in ("REDIS_URL", "OPENAI_BASE_URL", "json_schema", "json_object", "similar"):
        assert shown in proc.stdout, shown
    assert "validation" in proc.stdout  # the --split choices


def test_a_prelabel_error_is_one_red_line_and_exit_2(tmp_path: Path) -> None:
    proc = prelabel("run", "--dataset", str(tmp_path / "none.jsonl"), "--model", "m")
    assert proc.returncode == 2
    no_traceback(proc)
    assert proc.stderr.strip().count("\n") == 0
    assert proc.stderr.startswith("error:") and "none.jsonl" in proc.stderr


def test_a_jsonl_line_that_is_an_array_names_its_line(tmp_path: Path) -> None:
    data = tmp_path / "items.jsonl"
    data.write_text('{"text": "Ann lives in Paris ."}\n["not", "an", "object"]\n')
    proc = prelabel("estimate", "--dataset", str(data), "--model", "gpt-4o-mini")
    assert proc.returncode == 2, proc.stderr
    no_traceback(proc)
    assert f"{data}:2" in proc.stderr
    assert proc.stderr.strip().count("\n") == 0


def test_import_of_the_cli_leaves_the_heavy_libraries_out() -> None:
    # In a subprocess: other tests' imports would mask what the CLI itself pulls in.
    heavy = ["sklearn", "seqeval", "datasets", "kili", "matplotlib", "celery", "openai"]
    code = (
        "import sys, json, prelabel.cli; "
        f"print(json.dumps([m for m in {heavy!r} if m in sys.modules]))"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120
    )
    assert json.loads(proc.stdout) == []


def test_status_imports_no_dataset_or_scoring_library() -> None:
    # `prelabel status` reads prices (prelabel.pricing): that must not load the producer's
    # dataset loading, Celery or the evaluation.
    code = (
        "import sys, json; from prelabel.pricing import price_for; import prelabel.status; "
        "price_for('gpt-4o-mini'); "
        "print(json.dumps([m for m in ['datasets', 'sklearn', 'seqeval', 'celery', 'kili'] "
        "if m in sys.modules]))"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120
    )
    assert json.loads(proc.stdout) == []


def test_evaluation_cli_default_resamples_is_the_bootstraps() -> None:
    from evaluation.cli import RESAMPLES as CLI_RESAMPLES
    from task_types.bootstrap import RESAMPLES

    assert CLI_RESAMPLES == RESAMPLES


# --- Redis URLs ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "url",
    [
        "redis://:s3cret-pw@127.0.0.1:6379/0",
        "redis://user:s3cret-pw@127.0.0.1:6379/0",
        "redis://127.0.0.1:6379/0?password=s3cret-pw",
        "rediss://:s3cret-pw@example.com:6380/1",
        "redis//:s3cret-pw@127.0.0.1:6379/0",  # mistyped: no parser reads it
        "sentinel://:s3cret-pw@h1:26379/0;sentinel://:s3cret-pw@h2:26379/0",
    ],
)
def test_safe_url_masks_every_password_form(url: str) -> None:
    assert "s3cret-pw" not in safe_url(url)
    assert "s3cret-pw" not in safe_url(f"error connecting to {url}: refused")


def test_broker_url_moves_a_query_password_where_kombu_reads_it() -> None:
    assert broker_url("redis://h:6379/2?password=p%40ss&x=1") == "redis://:p%40ss@h:6379/2?x=1"
    assert broker_url("redis://:p@h:6379/2") == "redis://:p@h:6379/2"
    # kombu knows no unix:// transport: its name for a socket is redis+socket://.
    assert broker_url("unix:///run/r.sock?db=3") == "redis+socket:///run/r.sock?virtual_host=3"


@pytest.mark.parametrize(
    "command",
    [["status", "RUN"], ["runs"], ["worker"], ["run", "--dataset", "x.jsonl", "--model", "m"]],
)
def test_a_malformed_redis_url_is_one_line_without_its_password(command: list[str]) -> None:
    proc = prelabel(*command, env={"REDIS_URL": "redis//:s3cret-pw@127.0.0.1:6379/0"})
    assert proc.returncode == 2, proc.stderr
    no_traceback(proc)
    assert "s3cret-pw" not in proc.stderr + proc.stdout
    assert proc.stderr.strip().count("\n") == 0
    assert "is not a Redis URL" in proc.stderr


def test_a_redis_that_does_not_answer_is_named_without_its_password() -> None:
    from prelabel import launch

    port = launch.free_port()  # nothing listens there
    proc = prelabel("runs", env={"REDIS_URL": f"redis://:s3cret-pw@127.0.0.1:{port}/0"})
    assert proc.returncode == 2
    assert "s3cret-pw" not in proc.stderr + proc.stdout
    assert "does not answer" in proc.stderr


@pytest.fixture
def password_redis(tmp_path: Path) -> object:
    """A redis-server of its own on a free port, with a password."""
    from prelabel import launch

    port = launch.free_port()
    proc = subprocess.Popen(
        [
            *("redis-server", "--port", str(port), "--requirepass", "pw-of-test"),
            *("--save", "", "--appendonly", "no", "--dir", str(tmp_path)),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    client = redis.Redis(port=port, password="pw-of-test")
    for _ in range(100):
        try:
            client.ping()
            break
        except redis.ConnectionError:
            import time

            time.sleep(0.1)
    yield port
    proc.terminate()
    proc.wait(10)


def test_every_redis_py_url_form_reaches_redis(password_redis: int) -> None:
    port = password_redis
    for url in (
        f"redis://:pw-of-test@127.0.0.1:{port}/3",
        f"redis://default:pw-of-test@127.0.0.1:{port}/3",
        f"redis://127.0.0.1:{port}/3?password=pw-of-test",
        f"redis://127.0.0.1:{port}?db=3&password=pw-of-test",
    ):
        client = client_for(url)
        assert client.ping()
        assert client.connection_pool.connection_kwargs["db"] == 3


def test_a_query_password_works_for_status_runs_and_the_celery_app(password_redis: int) -> None:
    url = f"redis://127.0.0.1:{password_redis}/0?password=pw-of-test"
    proc = prelabel("runs", env={"REDIS_URL": url})
    assert proc.returncode == 0, proc.stderr
    assert "no runs in Redis" in proc.stdout
    # The producer's enqueue and the worker go through kombu, which used to fail on this
    # form ("multiple values for keyword argument 'password'").
    from prelabel.queue import make_app
    from prelabel.settings import load_settings

    app = make_app(load_settings(REDIS_URL=url))
    with app.connection_for_write() as conn:
        conn.ensure_connection(max_retries=1)
        assert conn.default_channel.client.ping()
    assert "pw-of-test" not in app.connection_for_write().as_uri()


def test_reports_and_charts_are_readable_by_others(tmp_path: Path) -> None:
    from evaluation.outputs import write_reports
    from prelabel.figures import RunFigures
    from prelabel.files import readable_mode
    from task_types.ner.evaluation import evaluate

    ev = evaluate([["B-PER", "O"]], [["B-PER", "O"]], RunFigures(items=1, labeled=1))
    written = write_reports(ev, tmp_path / "out")
    assert any(p.suffix == ".png" for p in written)
    for path in written:
        assert path.stat().st_mode & 0o777 == readable_mode(), path


def test_evaluating_a_conlleval_file_does_not_claim_run_figures_from_it(tmp_path: Path) -> None:
    data = tmp_path / "predictions.conll"
    data.write_text("EU B-ORG B-ORG\nrejects O O\n\n", encoding="utf-8")
    proc = prelabel("evaluate", str(data), env={"COLUMNS": "200"})
    assert proc.returncode == 0, proc.stderr
    first = proc.stdout.splitlines()[0]
    assert "run figures from" not in first and "no run figures" in first


def test_every_redis_url_flag_names_its_variable() -> None:
    for command in ("status", "runs", "collect", "upload", "export", "flower", "metrics"):
        proc = prelabel(command, "--help", env={"COLUMNS": "200"})
        assert proc.returncode == 0, command
        assert "env var: REDIS_URL" in proc.stdout, command


def test_a_worker_imports_no_dataset_scoring_or_kili_library() -> None:
    # What `prelabel worker` loads: the Celery app, its task and the fleet's reconciler.
    code = (
        "import sys, json, prelabel.cli, workers.app, workers.tasks, workers.reconciler; "
        "print(json.dumps([m for m in ['datasets', 'sklearn', 'seqeval', 'kili', 'matplotlib'] "
        "if m in sys.modules]))"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120
    )
    assert json.loads(proc.stdout) == []


@pytest.mark.parametrize(
    "url",
    [
        "redis://127.0.0.1:6379/0?password=s3cret-pw",
        "redis//:s3cret-pw@127.0.0.1:6379/0",
        "sentinel://:s3cret-pw@h1:26379/0;sentinel://:s3cret-pw@h2:26379/0",
    ],
)
def test_worker_logs_mask_the_password_of_every_url_form(url: str) -> None:
    from prelabel.logs import Redactor

    redact = Redactor.from_env({"REDIS_URL": url})
    assert "s3cret-pw" not in redact(f"cannot connect to {url}; password s3cret-pw")


def test_help_paragraphs_are_reflowed_not_broken_at_the_docstrings_newlines() -> None:
    proc = prelabel("upload", "--help", env={"COLUMNS": "300"})
    assert proc.returncode == 0
    # The docstring breaks after "in the project"; the help must not.
    assert "assets already in the project are skipped" in proc.stdout


def test_estimate_of_text_without_gold_prices_conlls_four_types(tmp_path: Path) -> None:
    data = tmp_path / "texts.csv"
    data.write_text("text\nAnn lives in Paris .\nThe EU met in Brussels .\n", encoding="utf-8")
    proc = prelabel("estimate", "--dataset", str(data), "--model", "gpt-4o-mini")
    assert proc.returncode == 0, proc.stderr
    assert "requests" in proc.stdout and "messages (exact)" in proc.stdout


def test_estimate_takes_the_dataset_endpoint_limit_task_and_transport_options_of_run() -> None:
    import typer.main

    from prelabel.cli import app

    commands = typer.main.get_command(app).commands  # type: ignore[attr-defined]

    def grouped(command: str) -> dict[str, str]:
        params = commands[command].params
        return {p.name: p.rich_help_panel for p in params if p.rich_help_panel}

    run, estimate = grouped("run"), grouped("estimate")
    assert set(estimate.values()) == {
        "Dataset",
        "Endpoint",
        "Limits",
        "Task",
        "Transport",
        "Confidence",
    }
    assert {n: p for n, p in run.items() if n in estimate} == estimate
    assert set(run) - set(estimate) == {"reasoning_effort", "budget_usd", "budget_tokens"}
