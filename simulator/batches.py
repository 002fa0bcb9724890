"""OpenAI's Files and Batch API, as the `openai` client uses them, answered by the oracle.

Routes: `POST /v1/files` (multipart; any purpose, only the size is checked), `GET /v1/files`,
`GET|DELETE /v1/files/{id}`, `GET /v1/files/{id}/content`; `POST /v1/batches`,
`GET /v1/batches` (newest first, `limit` and `after` cursor), `GET /v1/batches/{id}`,
`POST /v1/batches/{id}/cancel`. Everything lives in memory, for the simulator's lifetime.

A batch's life is computed from the clock whenever it is read (no background task):
`validating` for `batch_validating_seconds`, `in_progress` for what is left of
`batch_seconds`, then `finalizing` for `batch_finalizing_seconds`, then `completed`; each
timestamp is the moment its state was entered, not the moment it was read. During
`in_progress` lines are answered in proportion to the time elapsed, so `request_counts`
grows, and a batch that expires (`batch_expire_seconds` after creation) or is cancelled
keeps the lines answered by then: the others go to the error file with `batch_expired` or
`batch_cancelled`, and count as failed. Cancelling stops the work at once; the batch is
`cancelling` for `batch_cancel_seconds`, then `cancelled`.

The input file is read at creation and checked as the API does; a problem makes the batch
`failed` when validation ends, with `errors` naming each line: `invalid_json_line`,
`missing_required_parameter` (`custom_id`, `body.messages`), `duplicate_custom_id`,
`invalid_method`, `url_mismatch`, `model_mismatch`, `empty_file`, `too_many_tasks`, and
`token_limit_exceeded` when the batch's prompt tokens (counted as the chat endpoint counts
them), added to those of the same model's batches still validating, in progress or
finalizing, would pass `batch_enqueued_tokens`. A batch that fails holds no tokens.

Each line is answered by the realtime endpoint's own path (`_Handlers.answer`: the oracle,
`max_tokens` and `finish_reason`, usage, `malformed_rate`), without its caps or faults: the
Batch API is a pool of its own. A line is an output line `{"id", "custom_id", "response":
{"status_code": 200, "request_id", "body"}, "error": null}`, or an error-file line: a refused
parameter answers its 400, a `batch_line_fail_rate` share answers 500, both in `response`,
and lines never run have `response: null` and `error: {code, message}`. The draws come from a
`random.Random` seeded with `(seed, batch id)`, two per line.

Item ids: a batch line cannot carry the realtime `x-prelabel-item-ids` header, so the oracle
reads them from the `custom_id` when it has the form `custom_id()` writes (see there).
"""

from __future__ import annotations

import itertools
import json
import math
import random
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from aiohttp import BodyPartReader, web

from prelabel.batches import custom_id as custom_id
from prelabel.batches import custom_id_items
from simulator.limits import count_prompt_tokens

if TYPE_CHECKING:
    from simulator.server import SimulatorConfig, Stats

#: The one endpoint the simulator's batches may call.
ENDPOINT = "/v1/chat/completions"
COMPLETION_WINDOW = "24h"
#: The API's caps on an input file.
MAX_FILE_BYTES = 200 * 1024 * 1024
MAX_REQUESTS = 50_000
#: Batch-purpose files expire after 30 days, as the API's do.
FILE_TTL_SECONDS = 30 * 24 * 3600
ORGANIZATION = "org-prelabel-simulator"
#: States a batch leaves no more.
FINAL = frozenset({"completed", "failed", "expired", "cancelled"})
#: States whose batches hold enqueued tokens.
ENQUEUED = frozenset({"validating", "in_progress", "finalizing"})
EXPIRED_MESSAGE = "This request could not be executed before the completion window expired."
CANCELLED_MESSAGE = "This request was not executed because the batch was cancelled."
#: A line's `response.body.error` when `batch_line_fail_rate` fails it.
_SERVER_ERROR = {
    "message": "The server had an error while processing your request. Sorry about that!",
    "type": "server_error",
    "param": None,
    "code": None,
}

#: `answer(body, item_ids, malform)`: a line's HTTP status and body (`_Handlers.answer`).
Answer = Callable[[Any, Sequence[str], random.Random | None], tuple[int, dict[str, Any]]]
#: Returns OpenAI's 401 for a request without the required key, else None.
Auth = Callable[[web.Request], web.Response | None]


def _error(
    status: int, message: str, param: str | None = None, code: str | None = None
) -> web.Response:
    body = {
        "error": {
            "message": message,
            "type": "invalid_request_error",
            "param": param,
            "code": code,
        }
    }
    return web.json_response(body, status=status)


def _line_error(code: str, message: str, param: str | None, line: int | None) -> dict[str, Any]:
    return {"code": code, "message": message, "param": param, "line": line}


@dataclass
class _File:
    id: str
    seq: int
    filename: str
    purpose: str
    data: bytes
    created_at: int

    def object(self) -> dict[str, Any]:
        expires = self.created_at + FILE_TTL_SECONDS if self.purpose.startswith("batch") else None
        return {
            "id": self.id,
            "object": "file",
            "bytes": len(self.data),
            "created_at": self.created_at,
            "filename": self.filename,
            "purpose": self.purpose,
            "status": "processed",
            "status_details": None,
            "expires_at": expires,
        }


@dataclass(frozen=True, slots=True)
class _Line:
    number: int
    custom_id: str
    body: dict[str, Any]
    prompt_tokens: int


@dataclass
class _Batch:
    id: str
    seq: int
    input_file_id: str
    metadata: dict[str, str] | None
    created: float
    expires: float
    model: str | None
    lines: list[_Line]
    #: Validation errors: the batch fails when validation ends.
    errors: list[dict[str, Any]]
    rng: random.Random
    status: str = "validating"
    times: dict[str, int] = field(default_factory=dict)
    cancel_at: float | None = None
    #: The answered lines, in input order: (output line, succeeded).
    results: list[tuple[dict[str, Any], bool]] = field(default_factory=list)
    input_tokens: int = 0
    output_tokens: int = 0
    output_file_id: str | None = None
    error_file_id: str | None = None

    @property
    def prompt_tokens(self) -> int:
        return sum(line.prompt_tokens for line in self.lines)


@dataclass(frozen=True, slots=True)
class _Schedule:
    """Seconds of each phase, from the config."""

    validating: float
    in_progress: float
    finalizing: float
    cancelling: float
    expire: float | None

    @classmethod
    def of(cls, config: SimulatorConfig) -> _Schedule:
        tenth = config.batch_seconds / 10
        validating = config.batch_validating_seconds
        finalizing = config.batch_finalizing_seconds
        validating = tenth if validating is None else validating
        finalizing = tenth if finalizing is None else finalizing
        cancelling = config.batch_cancel_seconds
        return cls(
            validating=validating,
            in_progress=max(0.0, config.batch_seconds - validating - finalizing),
            finalizing=finalizing,
            cancelling=tenth if cancelling is None else cancelling,
            expire=config.batch_expire_seconds,
        )


class BatchAPI:
    """The Files and Batch routes, sharing the simulator's config, counters and answers."""

    def __init__(
        self,
        config: SimulatorConfig,
        stats: Stats,
        answer: Answer,
        auth: Auth,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.config = config
        self.stats = stats
        self.answer = answer
        self.auth = auth
        self.clock = clock
        self.schedule = _Schedule.of(config)
        self.files: dict[str, _File] = {}
        self.batches: dict[str, _Batch] = {}
        self.seq = itertools.count(1)

    def register(self, app: web.Application) -> None:
        """Add the routes to the simulator's application."""
        app.router.add_post("/v1/files", self.upload)
        app.router.add_get("/v1/files", self.list_files)
        app.router.add_get("/v1/files/{file_id}", self.retrieve_file)
        app.router.add_delete("/v1/files/{file_id}", self.delete_file)
        app.router.add_get("/v1/files/{file_id}/content", self.file_content)
        app.router.add_post("/v1/batches", self.create)
        app.router.add_get("/v1/batches", self.list_batches)
        app.router.add_get("/v1/batches/{batch_id}", self.retrieve)
        app.router.add_post("/v1/batches/{batch_id}/cancel", self.cancel)

    # --- files ---------------------------------------------------------------------------

    def _store(self, filename: str, purpose: str, data: bytes) -> _File:
        seq = next(self.seq)
        stored = _File(f"file-sim{seq:012x}", seq, filename, purpose, data, int(self.clock()))
        self.files[stored.id] = stored
        return stored

    def _file(self, request: web.Request) -> _File | web.Response:
        file_id = request.match_info["file_id"]
        found = self.files.get(file_id)
        if found is None:
            return _error(404, f"No such File object: {file_id}", "id")
        return found

    async def upload(self, request: web.Request) -> web.Response:
        refused = self.auth(request)
        if refused is not None:
            return refused
        try:
            reader = await request.multipart()
        except (AssertionError, ValueError):  # aiohttp asserts on a non-multipart body
            return _error(400, "The request must be multipart/form-data.")
        purpose: str | None = None
        filename, data = "", None
        while (part := await reader.next()) is not None:
            if not isinstance(part, BodyPartReader):
                continue
            if part.name == "purpose":
                purpose = (await part.text()).strip()
            elif part.name == "file":
                filename = part.filename or "upload"
                chunks, size = [], 0
                while chunk := await part.read_chunk():
                    size += len(chunk)
                    if size > MAX_FILE_BYTES:
                        return _error(
                            413,
                            f"File is too large: the maximum is {MAX_FILE_BYTES} bytes.",
                            "file",
                        )
                    chunks.append(chunk)
                data = b"".join(chunks)
        if data is None:
            return _error(400, "Missing required parameter: 'file'.", "file")
        if not purpose:
            return _error(400, "Missing required parameter: 'purpose'.", "purpose")
        self.stats.files_uploaded += 1
        return web.json_response(self._store(filename, purpose, data).object())

    async def list_files(self, request: web.Request) -> web.Response:
        refused = self.auth(request)
        if refused is not None:
            return refused
        self.stats.file_reads += 1
        purpose = request.query.get("purpose")
        files = [f for f in self.files.values() if purpose is None or f.purpose == purpose]
        newest_first = request.query.get("order", "desc") != "asc"
        files.sort(key=lambda f: f.seq, reverse=newest_first)
        return _page(request, [(f.id, f.object()) for f in files], 10_000, 10_000)

    async def retrieve_file(self, request: web.Request) -> web.Response:
        refused = self.auth(request)
        if refused is not None:
            return refused
        self.stats.file_reads += 1
        found = self._file(request)
        return found if isinstance(found, web.Response) else web.json_response(found.object())

    async def delete_file(self, request: web.Request) -> web.Response:
        refused = self.auth(request)
        if refused is not None:
            return refused
        found = self._file(request)
        if isinstance(found, web.Response):
            return found
        del self.files[found.id]
        self.stats.files_deleted += 1
        return web.json_response({"id": found.id, "object": "file", "deleted": True})

    async def file_content(self, request: web.Request) -> web.Response:
        refused = self.auth(request)
        if refused is not None:
            return refused
        found = self._file(request)
        if isinstance(found, web.Response):
            return found
        self.stats.file_downloads += 1
        return web.Response(body=found.data, content_type="application/octet-stream")

    # --- batches -------------------------------------------------------------------------

    async def create(self, request: web.Request) -> web.Response:
        refused = self.auth(request)
        if refused is not None:
            return refused
        try:
            params = await request.json()
        except ValueError:
            return _error(400, "The request body is not valid JSON.")
        if not isinstance(params, dict):
            return _error(400, "The request body must be a JSON object.")
        for name in ("input_file_id", "endpoint", "completion_window"):
            if not isinstance(params.get(name), str):
                return _error(400, f"Missing required parameter: '{name}'.", name)
        if params["endpoint"] != ENDPOINT:
            return _error(
                400,
                f"Invalid value for 'endpoint': the simulator supports only '{ENDPOINT}'.",
                "endpoint",
                "invalid_value",
            )
        if params["completion_window"] != COMPLETION_WINDOW:
            return _error(
                400,
                f"Invalid value for 'completion_window': only '{COMPLETION_WINDOW}' is supported.",
                "completion_window",
                "invalid_value",
            )
        metadata = params.get("metadata")
        problem = _metadata_problem(metadata)
        if problem is not None:
            return _error(400, problem, "metadata", "invalid_value")
        source = self.files.get(params["input_file_id"])
        if source is None:
            return _error(404, f"No such File object: {params['input_file_id']}", "input_file_id")
        if source.purpose != "batch":
            return _error(
                400,
                f"The input file must have purpose 'batch', not '{source.purpose}'.",
                "input_file_id",
                "invalid_value",
            )

        now = self.clock()
        for other in self.batches.values():
            self._advance(other, now)
        seq = next(self.seq)
        batch_id = f"batch_sim{seq:012x}"
        lines, errors, model = _read_input(source.data)
        window = self.schedule.expire if self.schedule.expire is not None else 24 * 3600.0
        batch = _Batch(
            id=batch_id,
            seq=seq,
            input_file_id=source.id,
            metadata=metadata,
            created=now,
            expires=now + window,
            model=model,
            lines=lines,
            errors=errors,
            rng=random.Random(f"{self.config.seed}:{batch_id}"),
        )
        if not errors:
            self._check_enqueued(batch)
        self.batches[batch_id] = batch
        self.stats.batches_created += 1
        return web.json_response(self._object(batch))

    def _check_enqueued(self, batch: _Batch) -> None:
        """Fail `batch` when it would take its model past the enqueued-token limit."""
        limit = self.config.batch_enqueued_tokens
        if limit is None:
            return
        enqueued = sum(
            b.prompt_tokens
            for b in self.batches.values()
            if b.model == batch.model and b.status in ENQUEUED and not b.errors
        )
        if enqueued + batch.prompt_tokens > limit:
            batch.errors.append(
                _line_error(
                    "token_limit_exceeded",
                    f"Enqueued token limit reached for {batch.model} in organization "
                    f"{ORGANIZATION}. Limit: {limit} enqueued tokens. Please try again once "
                    "some in_progress batches have been completed.",
                    None,
                    None,
                )
            )

    def _batch(self, request: web.Request) -> _Batch | web.Response:
        batch_id = request.match_info["batch_id"]
        found = self.batches.get(batch_id)
        if found is None:
            return _error(404, f"No such Batch object: {batch_id}", "batch_id")
        self._advance(found, self.clock())
        return found

    async def retrieve(self, request: web.Request) -> web.Response:
        refused = self.auth(request)
        if refused is not None:
            return refused
        self.stats.batch_retrieves += 1
        found = self._batch(request)
        return found if isinstance(found, web.Response) else web.json_response(self._object(found))

    async def list_batches(self, request: web.Request) -> web.Response:
        refused = self.auth(request)
        if refused is not None:
            return refused
        self.stats.batch_lists += 1
        now = self.clock()
        batches = sorted(self.batches.values(), key=lambda b: b.seq, reverse=True)
        for batch in batches:
            self._advance(batch, now)
        return _page(request, [(b.id, self._object(b)) for b in batches], 20, 100)

    async def cancel(self, request: web.Request) -> web.Response:
        refused = self.auth(request)
        if refused is not None:
            return refused
        self.stats.batch_cancels += 1
        found = self._batch(request)
        if isinstance(found, web.Response):
            return found
        if found.status in FINAL:
            return _error(409, f"Cannot cancel a batch with status '{found.status}'.")
        if found.cancel_at is None:
            found.cancel_at = self.clock()
            self._advance(found, found.cancel_at)
        return web.json_response(self._object(found))

    # --- the lifecycle -------------------------------------------------------------------

    def _advance(self, batch: _Batch, now: float) -> None:
        """Bring `batch` to what the clock says at `now`: its state, timestamps, answers."""
        if batch.status in FINAL:
            return
        sched = self.schedule
        started = batch.created + sched.validating
        finalizing = started + sched.in_progress
        completed = finalizing + sched.finalizing
        halt = min(batch.expires, math.inf if batch.cancel_at is None else batch.cancel_at)
        if batch.errors:
            events = [(started, "failed")]
        else:
            events = [(started, "in_progress"), (finalizing, "finalizing")]
            events.append((completed, "completed"))
        for at, status in events:
            if at > now or at > halt:
                break
            batch.status = status
            batch.times[f"{status}_at"] = int(at)
        if batch.status == "failed":
            return
        self._answer_lines(batch, self._done(batch, min(now, halt), started))
        if batch.status == "completed":
            self._finish(batch, None)
        elif halt <= now and batch.cancel_at is not None and batch.cancel_at <= batch.expires:
            batch.status = "cancelling"
            batch.times["cancelling_at"] = int(batch.cancel_at)
            cancelled = batch.cancel_at + sched.cancelling
            if cancelled <= now:
                batch.status = "cancelled"
                batch.times["cancelled_at"] = int(cancelled)
                self._finish(batch, ("batch_cancelled", CANCELLED_MESSAGE))
        elif batch.expires <= now and batch.expires == halt:
            batch.status = "expired"
            batch.times["expired_at"] = int(batch.expires)
            self._finish(batch, ("batch_expired", EXPIRED_MESSAGE))

    def _done(self, batch: _Batch, at: float, started: float) -> int:
        """How many lines the batch has answered by `at`: line k (from 0) of n is answered
        k/n of the way through in_progress, so the first one as it starts (a batch cut short
        once it runs has always answered something, as the API's partial output does)."""
        total, span = len(batch.lines), self.schedule.in_progress
        if at < started:
            return 0
        if span <= 0 or at >= started + span:
            return total
        return min(total, math.floor(total * (at - started) / span) + 1)

    def _answer_lines(self, batch: _Batch, done: int) -> None:
        """Answer the batch's lines up to `done`, in order, through the chat endpoint's path."""
        config = self.config
        for line in batch.lines[len(batch.results) : done]:
            fail, malformed = batch.rng.random(), batch.rng.random()
            self.stats.batch_lines += 1
            status: int
            body: dict[str, Any]
            if fail < config.batch_line_fail_rate:
                self.stats.faults += 1
                status, body = 500, {"error": _SERVER_ERROR}
            else:
                malform = batch.rng if malformed < config.malformed_rate else None
                status, body = self.answer(line.body, custom_id_items(line.custom_id), malform)
            if status == 200:
                batch.input_tokens += body["usage"]["prompt_tokens"]
                batch.output_tokens += body["usage"]["completion_tokens"]
            seq = next(self.seq)
            response = {"status_code": status, "request_id": f"req_sim{seq:012x}", "body": body}
            output = {
                "id": f"batch_req_sim{seq:012x}",
                "custom_id": line.custom_id,
                "response": response,
                "error": None,
            }
            batch.results.append((output, status == 200))

    def _finish(self, batch: _Batch, unrun: tuple[str, str] | None) -> None:
        """Write the output and error files; lines never run get `unrun`'s code and message."""
        output = [line for line, ok in batch.results if ok]
        errors = [line for line, ok in batch.results if not ok]
        if unrun is not None:
            code, message = unrun
            for line in batch.lines[len(batch.results) :]:
                seq = next(self.seq)
                errors.append(
                    {
                        "id": f"batch_req_sim{seq:012x}",
                        "custom_id": line.custom_id,
                        "response": None,
                        "error": {"code": code, "message": message},
                    }
                )
        if output:
            name = f"{batch.id}_output.jsonl"
            batch.output_file_id = self._store(name, "batch_output", _jsonl(output)).id
        if errors:
            name = f"{batch.id}_error.jsonl"
            batch.error_file_id = self._store(name, "batch_output", _jsonl(errors)).id

    def _object(self, batch: _Batch) -> dict[str, Any]:
        """The Batch object as the API returns it."""
        started = batch.status not in ("validating", "failed")
        completed = sum(ok for _, ok in batch.results)
        failed = len(batch.results) - completed
        if batch.status in ("expired", "cancelled"):
            failed = len(batch.lines) - completed
        times = batch.times
        return {
            "id": batch.id,
            "object": "batch",
            "endpoint": ENDPOINT,
            "model": batch.model,
            "errors": (
                {"object": "list", "data": batch.errors} if batch.status == "failed" else None
            ),
            "input_file_id": batch.input_file_id,
            "completion_window": COMPLETION_WINDOW,
            "status": batch.status,
            "output_file_id": batch.output_file_id,
            "error_file_id": batch.error_file_id,
            "created_at": int(batch.created),
            "in_progress_at": times.get("in_progress_at"),
            "expires_at": int(batch.created) + math.ceil(batch.expires - batch.created),
            "finalizing_at": times.get("finalizing_at"),
            "completed_at": times.get("completed_at"),
            "failed_at": times.get("failed_at"),
            "expired_at": times.get("expired_at"),
            "cancelling_at": times.get("cancelling_at"),
            "cancelled_at": times.get("cancelled_at"),
            "request_counts": {
                "total": len(batch.lines) if started else 0,
                "completed": completed,
                "failed": failed,
            },
            "usage": {
                "input_tokens": batch.input_tokens,
                "input_tokens_details": {"cached_tokens": 0},
                "output_tokens": batch.output_tokens,
                "output_tokens_details": {"reasoning_tokens": 0},
                "total_tokens": batch.input_tokens + batch.output_tokens,
            },
            "metadata": batch.metadata,
        }


def _read_input(data: bytes) -> tuple[list[_Line], list[dict[str, Any]], str | None]:
    """The requests of a batch input file, the API's validation errors, and the model."""
    lines: list[_Line] = []
    errors: list[dict[str, Any]] = []
    seen: set[str] = set()
    model: str | None = None
    text = data.decode("utf-8", errors="replace")
    for number, raw in enumerate(text.splitlines(), 1):
        if not raw.strip():
            continue
        try:
            request = json.loads(raw)
        except ValueError:
            request = None
        if not isinstance(request, dict):
            message = "This line is not parseable as valid JSON."
            errors.append(_line_error("invalid_json_line", message, None, number))
            continue
        problem = _line_problem(request, seen, model)
        if problem is not None:
            errors.append(_line_error(*problem, number))
            continue
        body = request["body"]
        model = model or body["model"]
        seen.add(request["custom_id"])
        tokens = count_prompt_tokens(body["messages"])
        lines.append(_Line(number, request["custom_id"], body, tokens))
    if not lines and not errors:
        errors.append(_line_error("empty_file", "The batch input file is empty.", None, None))
    if len(lines) > MAX_REQUESTS:
        message = f"The batch input file has more than {MAX_REQUESTS:,} requests."
        errors.append(_line_error("too_many_tasks", message, None, None))
    return lines, errors, model


def _line_problem(
    request: dict[str, Any], seen: set[str], model: str | None
) -> tuple[str, str, str] | None:
    """The (code, message, param) of what is wrong with one input line, or None."""
    name = request.get("custom_id")
    if not isinstance(name, str) or not name:
        return (
            "missing_required_parameter",
            "Missing required parameter: 'custom_id'.",
            "custom_id",
        )
    if name in seen:
        return (
            "duplicate_custom_id",
            f"The custom_id '{name}' is a duplicate of another request's. The custom_id "
            "parameter must be unique for each request in a batch.",
            "custom_id",
        )
    if request.get("method") != "POST":
        return ("invalid_method", "The method of a batch request must be 'POST'.", "method")
    if request.get("url") != ENDPOINT:
        return (
            "url_mismatch",
            f"The URL provided for this request does not match the batch endpoint '{ENDPOINT}'.",
            "url",
        )
    body = request.get("body")
    if not isinstance(body, dict):
        return ("missing_required_parameter", "Missing required parameter: 'body'.", "body")
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        message = "Missing required parameter: 'body.messages'."
        return ("missing_required_parameter", message, "body.messages")
    if not isinstance(body.get("model"), str):
        message = "Missing required parameter: 'body.model'."
        return ("missing_required_parameter", message, "body.model")
    if model is not None and body["model"] != model:
        return (
            "model_mismatch",
            f"The model '{body['model']}' differs from the batch's model '{model}': every "
            "request in a batch must use the same model.",
            "body.model",
        )
    return None


def _metadata_problem(metadata: Any) -> str | None:
    """What is wrong with a batch's metadata (at most 16 string pairs), or None."""
    if metadata is None:
        return None
    if not isinstance(metadata, dict):
        return "Invalid 'metadata': expected an object of string keys and values."
    if len(metadata) > 16:
        return f"Invalid 'metadata': at most 16 keys are allowed, got {len(metadata)}."
    for key, value in metadata.items():
        if not isinstance(value, str):
            return f"Invalid 'metadata': the value of '{key}' must be a string."
        if len(key) > 64:
            return f"Invalid 'metadata': key '{key[:64]}...' is longer than 64 characters."
        if len(value) > 512:
            return f"Invalid 'metadata': the value of '{key}' is longer than 512 characters."
    return None


def _jsonl(lines: Sequence[Mapping[str, Any]]) -> bytes:
    return "".join(json.dumps(line, ensure_ascii=False) + "\n" for line in lines).encode()


def _page(
    request: web.Request, items: list[tuple[str, dict[str, Any]]], default: int, most: int
) -> web.Response:
    """A cursor page as `SyncCursorPage` reads it: the items after `after`, `limit` of them
    (`default` when not given, at most `most`)."""
    try:
        limit = int(request.query.get("limit", default))
    except ValueError:
        return _error(400, "Invalid 'limit': expected an integer.", "limit", "invalid_type")
    if not 1 <= limit <= most:
        return _error(
            400,
            f"Invalid 'limit': expected a value between 1 and {most}, but got {limit} instead.",
            "limit",
            "integer_out_of_range",
        )
    after = request.query.get("after")
    if after is not None:
        ids = [item_id for item_id, _ in items]
        # An unknown cursor gives an empty page rather than starting over.
        items = items[ids.index(after) + 1 :] if after in ids else []
    page = [obj for _, obj in items[:limit]]
    return web.json_response(
        {
            "object": "list",
            "data": page,
            "first_id": page[0]["id"] if page else None,
            "last_id": page[-1]["id"] if page else None,
            "has_more": len(items) > limit,
        }
    )
