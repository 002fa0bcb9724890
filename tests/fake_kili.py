"""A fake Kili GraphQL server, for the real `kili` SDK to talk to over HTTP on 127.0.0.1.

It answers the operations the SDK sends for prelabel's upload (kili 26.2.4, as pinned),
dispatching on each root field's name whatever the operation's name or alias, and projects
its answer on the fields the query selects, as a GraphQL server does. State lives in memory:
projects, assets, labels, and the bucket that signed URLs upload text to.

What it models of Kili, beyond the plumbing:
- assets with the same external id are accepted twice (Kili does not refuse them; the SDK
  filters them), so a test sees any duplicate an upload creates;
- `appendManyLabels` with `overwrite` replaces the predictions of the same model name on each
  targeted asset, and refuses a batch of more than 100 labels;
- NER annotations are placed in their asset's text as a browser would, counting UTF-16 code
  units; an annotation whose content is not at its `beginOffset` is recorded in `misplaced`;
- classification categories are checked against the project's job: a category that is not
  one of the job's, or more than one in a single-choice (`radio`) job, is recorded in
  `miscategorised`;
- a category's `confidence` is kept in the label's json_response as sent; one that is not an
  integer from 0 to 100 (prelabel's scale) is recorded in `bad_confidences`;
- assets have a `priority` (0 when created); `setAssetsPriority` sets it on the assets of
  `where.idIn`, except on those in `busy` (an asset in progress, done or skipped), which it
  declines, as Kili does; every call is recorded in `priority_calls`.

Knobs make it misbehave: `throttle` answers 429 with Retry-After, `fail_once` applies a
mutation then answers 500 (the SDK cannot know whether it was applied), `api_key` refuses
other keys with 401, `upload_local_data` is the license flag the SDK checks before uploads.
"""

from __future__ import annotations

import fnmatch
import gzip
import itertools
import json
import re
import threading
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

import graphql
from graphql import FieldNode, OperationDefinitionNode, SelectionSetNode

GRAPHQL_PATH = "/api/label/v2/graphql"
MAX_BATCH = 100


class FakeError(Exception):
    """A GraphQL error answer (HTTP 200, "errors")."""


@dataclass
class Failure:
    field: str
    after: int  # successful calls of `field` before the failing one
    apply: bool  # whether the failing call is applied before the 500


@dataclass
class FakeKili:
    api_key: str = "fake-kili-key"
    upload_local_data: bool = True
    email: str = "prelabel-tests@example.com"

    projects: dict[str, dict[str, Any]] = field(default_factory=dict)
    assets: list[dict[str, Any]] = field(default_factory=list)
    labels: list[dict[str, Any]] = field(default_factory=list)
    blobs: dict[str, bytes] = field(default_factory=dict)
    #: calls per root field, and every 429 and 500 sent
    calls: Counter[str] = field(default_factory=Counter)
    throttled: int = 0
    #: GraphQL requests whose body came gzipped (the SDK compresses those over 1 MB)
    gzipped: int = 0
    failed: int = 0
    #: items per batched mutation, by field
    batches: dict[str, list[int]] = field(default_factory=dict)
    #: How this Kili counts beginOffset: UTF-16 units (a browser's count) or code points
    offset_unit: str = "utf16"
    #: NER annotations whose content was not at their beginOffset (in `offset_unit`)
    misplaced: list[dict[str, Any]] = field(default_factory=list)
    #: classification categories that the project's job does not have, or too many for a
    #: single-choice job
    miscategorised: list[dict[str, Any]] = field(default_factory=list)
    #: category confidences that are not integers from 0 to 100
    bad_confidences: list[dict[str, Any]] = field(default_factory=list)
    #: asset ids `setAssetsPriority` declines (in progress, done or skipped)
    busy: set[str] = field(default_factory=set)
    #: (priority, asset ids) of each `setAssetsPriority` call
    priority_calls: list[tuple[int, list[str]]] = field(default_factory=list)

    #: set when a call is held by `stall_after`
    stalled: threading.Event = field(default_factory=threading.Event)

    _throttle: tuple[int, int, str] | None = None  # (from call, to call, Retry-After)
    _stall: tuple[str, int] | None = None  # (field, calls of it to answer first)
    _released: threading.Event = field(default_factory=threading.Event)
    _failure: Failure | None = None
    _total: int = 0
    _ids: itertools.count[int] = field(default_factory=lambda: itertools.count(1))
    _lock: threading.RLock = field(default_factory=threading.RLock)
    _server: ThreadingHTTPServer | None = None

    # --- lifecycle -----------------------------------------------------------------------

    def start(self) -> FakeKili:
        fake = self

        class Handler(_Handler):
            server_fake = fake

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        ).start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    @property
    def base_url(self) -> str:
        assert self._server is not None
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    @property
    def endpoint(self) -> str:
        return self.base_url + GRAPHQL_PATH

    # --- knobs ---------------------------------------------------------------------------

    def throttle(self, after: int, count: int, retry_after: str = "1") -> None:
        """Answer 429 to the `count` GraphQL calls that follow the next `after` ones."""
        with self._lock:
            self._throttle = (self._total + after + 1, self._total + after + count, retry_after)

    def fail_once(self, field_name: str, after: int = 0, *, apply: bool = True) -> None:
        """Answer 500 to call `after + 1` of `field_name` from now, having applied it or not."""
        with self._lock:
            self._failure = Failure(field_name, self.calls[field_name] + after, apply)

    def stall_after(self, field_name: str, answered: int) -> None:
        """Hold call `answered + 1` of `field_name` unanswered (and unapplied) until
        `release`, as a server does whose client died; `stalled` is set when it arrives."""
        with self._lock:
            self._stall = (field_name, self.calls[field_name] + answered)
            self.stalled.clear()
            self._released.clear()

    def release(self) -> None:
        with self._lock:
            self._stall = None
        self._released.set()

    # --- views for tests -----------------------------------------------------------------

    def text_of(self, asset: dict[str, Any]) -> str:
        return self.blobs[_blob_path(asset["content"])].decode("utf-8")

    def project_assets(self, project_id: str) -> list[dict[str, Any]]:
        return [a for a in self.assets if a["project"]["id"] == project_id]

    def project_labels(self, project_id: str) -> list[dict[str, Any]]:
        ids = {a["id"] for a in self.project_assets(project_id)}
        return [lab for lab in self.labels if lab["assetId"] in ids]

    # --- HTTP ----------------------------------------------------------------------------

    def handle_graphql(
        self, body: dict[str, Any], key: str | None
    ) -> tuple[int, dict[str, str], bytes]:
        if key != f"X-API-Key: {self.api_key}":
            return _json(
                401,
                {"errors": [{"message": "[unauthenticated] Invalid API key", "extensions": {}}]},
            )
        document = graphql.parse(body["query"])
        names = {
            s.name.value
            for d in document.definitions
            if isinstance(d, OperationDefinitionNode)
            for s in d.selection_set.selections
            if isinstance(s, FieldNode)
        }
        with self._lock:
            stall = self._stall is not None and self._stall[0] in names
            stall = stall and self.calls[self._stall[0]] >= self._stall[1]  # type: ignore[index]
        if stall:
            self.stalled.set()
            self._released.wait(timeout=120)
            return 500, {"Content-Type": "text/plain"}, b"upstream connect error"
        with self._lock:
            self._total += 1
            if self._throttle and self._throttle[0] <= self._total <= self._throttle[1]:
                self.throttled += 1
                # not a GraphQL answer: what a rate-limiting gateway sends
                return (
                    429,
                    {"Retry-After": self._throttle[2], "Content-Type": "text/plain"},
                    b"Too Many Requests",
                )
            operation = next(
                d for d in document.definitions if isinstance(d, OperationDefinitionNode)
            )
            variables = body.get("variables") or {}
            data: dict[str, Any] = {}
            try:
                for selection in operation.selection_set.selections:
                    assert isinstance(selection, FieldNode)
                    name = selection.name.value
                    args = {
                        a.name.value: graphql.value_from_ast_untyped(a.value, variables)
                        for a in selection.arguments
                    }
                    failure = self._failure
                    failing = (
                        failure is not None
                        and failure.field == name
                        and self.calls[name] >= failure.after
                    )
                    if failing and failure is not None and not failure.apply:
                        self._failure = None
                        self.failed += 1
                        return 500, {"Content-Type": "text/plain"}, b"upstream connect error"
                    value = getattr(self, f"_{name}")(**args)
                    self.calls[name] += 1
                    if failing:
                        self._failure = None
                        self.failed += 1
                        return 500, {"Content-Type": "text/plain"}, b"upstream connect error"
                    data[(selection.alias or selection.name).value] = _project(
                        value, selection.selection_set
                    )
            except FakeError as exc:
                return _json(
                    200, {"data": None, "errors": [{"message": str(exc), "extensions": {}}]}
                )
            return _json(200, {"data": data})

    # --- resolvers: users and organizations ------------------------------------------------

    def _viewer(self) -> dict[str, Any]:
        return {"id": "user-1", "email": self.email, "firstname": "Pre", "lastname": "Label"}

    def _organizations(self, where: dict[str, Any], first: int, skip: int) -> list[dict[str, Any]]:
        org = {
            "id": "org-1",
            "name": "Fake org",
            "license": {"uploadLocalData": self.upload_local_data},
        }
        return [org][skip : skip + first]

    def _countOrganizations(self, where: dict[str, Any]) -> int:
        return 1

    # --- projects ------------------------------------------------------------------------

    def _createProject(self, data: dict[str, Any]) -> dict[str, Any]:
        pid = f"project-{next(self._ids)}"
        self.projects[pid] = {
            "id": pid,
            "title": data["title"],
            "description": data.get("description", ""),
            "inputType": data["inputType"],
            "jsonInterface": data["jsonInterface"],
            "workflowVersion": "V2",
            "steps": [{"id": f"{pid}-step-1", "name": "Default"}],
            "roles": [],
        }
        return {"id": pid}

    def _select_projects(self, where: dict[str, Any]) -> list[dict[str, Any]]:
        found = list(self.projects.values())
        if where.get("id"):
            found = [p for p in found if p["id"] == where["id"]]
        if where.get("searchQuery"):
            pattern = _ilike(where["searchQuery"])
            found = [
                p
                for p in found
                if pattern.fullmatch(p["title"]) or pattern.fullmatch(p["description"])
            ]
        return found

    def _projects(self, where: dict[str, Any], first: int, skip: int) -> list[dict[str, Any]]:
        return self._select_projects(where)[skip : skip + first]

    def _countProjects(self, where: dict[str, Any]) -> int:
        return len(self._select_projects(where))

    # --- assets --------------------------------------------------------------------------

    def _createUploadBucketSignedUrls(self, filePaths: list[str]) -> list[str]:
        return [f"{self.base_url}/bucket/{p}?X-Signature=fake&id={p}" for p in filePaths]

    def _filterExistingAssets(self, projectID: str, externalIDs: list[str]) -> list[str]:
        present = {a["externalId"] for a in self.project_assets(projectID)}
        return [e for e in externalIDs if e in present]

    def _appendManyAssets(
        self, data: dict[str, Any], where: dict[str, Any]
    ) -> list[dict[str, Any]]:
        pid = where["id"]
        if pid not in self.projects:
            raise FakeError(f"project {pid} not found")
        contents = data["contentArray"]
        self._batch("appendManyAssets", len(contents))
        created = []
        for i, content in enumerate(contents):
            if _blob_path(content) not in self.blobs:
                raise FakeError(f"asset content {content} was never uploaded")
            asset = {
                "id": (data.get("idArray") or [""] * len(contents))[i]
                or f"asset-{next(self._ids)}",
                "externalId": data["externalIDArray"][i],
                "content": content,
                "jsonMetadata": data["jsonMetadataArray"][i],
                "isHoneypot": False,
                "priority": 0,
                "project": {"id": pid},
            }
            self.assets.append(asset)
            created.append(asset)
        return created

    def _setAssetsPriority(self, where: dict[str, Any], priority: int) -> dict[str, Any]:
        ids = list(where.get("idIn") or [])
        self._batch("setAssetsPriority", len(ids))
        if not isinstance(priority, int):
            raise FakeError(f"priority must be an Int, got {priority!r}")
        self.priority_calls.append((priority, ids))
        assets = {a["id"]: a for a in self.assets}
        outcome: dict[str, list[dict[str, Any]]] = {"succeeded": [], "declined": [], "failed": []}
        for asset_id in ids:
            asset = assets.get(asset_id)
            if asset is None:
                outcome["failed"].append(
                    {"assetId": asset_id, "externalId": None, "details": "not found"}
                )
                continue
            which = {"assetId": asset_id, "externalId": asset["externalId"]}
            if asset_id in self.busy:
                outcome["declined"].append(which)
                continue
            asset["priority"] = priority
            outcome["succeeded"].append(which)
        return outcome

    def priorities(self, project_id: str) -> dict[str, int]:
        """Each asset's priority, by external id."""
        return {a["externalId"]: a["priority"] for a in self.project_assets(project_id)}

    def _select_assets(self, where: dict[str, Any]) -> list[dict[str, Any]]:
        found = self.project_assets((where.get("project") or {}).get("id", ""))
        if where.get("id"):
            found = [a for a in found if a["id"] == where["id"]]
        if where.get("idIn") is not None:
            found = [a for a in found if a["id"] in set(where["idIn"])]
        if where.get("externalIdStrictlyIn") is not None:
            found = [a for a in found if a["externalId"] in set(where["externalIdStrictlyIn"])]
        return found

    def _assets(self, where: dict[str, Any], first: int, skip: int) -> list[dict[str, Any]]:
        return self._select_assets(where)[skip : skip + first]

    def _countAssets(self, where: dict[str, Any]) -> int:
        return len(self._select_assets(where))

    # --- labels --------------------------------------------------------------------------

    def _appendManyLabels(
        self, data: dict[str, Any], where: dict[str, Any]
    ) -> list[dict[str, Any]]:
        labels_data = data["labelsData"]
        self._batch("appendManyLabels", len(labels_data))
        assets = {a["id"]: a for a in self.assets}
        project = (where.get("project") or {}).get("id")
        created = []
        for item in labels_data:
            asset = assets.get(item["assetID"])
            if asset is None or (project and asset["project"]["id"] != project):
                raise FakeError(f"asset {item['assetID']} not found in project {project}")
            if data.get("overwrite") and data["labelType"] in ("PREDICTION", "INFERENCE"):
                self.labels = [
                    lab
                    for lab in self.labels
                    if not (
                        lab["assetId"] == asset["id"]
                        and lab["labelType"] == data["labelType"]
                        and lab["modelName"] == item.get("modelName")
                    )
                ]
            label = {
                "id": f"label-{next(self._ids)}",
                "labelType": data["labelType"],
                "modelName": item.get("modelName"),
                "jsonResponse": item["jsonResponse"],
                "assetId": asset["id"],
                "author": {"id": "user-1", "email": self.email},
            }
            self._place_annotations(label, self.text_of(asset))
            self._check_categories(label, self.projects.get(asset["project"]["id"], {}))
            self._check_confidences(label)
            self.labels.append(label)
            created.append(label)
        return created

    def _place_annotations(self, label: dict[str, Any], text: str) -> None:
        for job in json.loads(label["jsonResponse"]).values():
            for annotation in job.get("annotations", []):
                begin, content = annotation["beginOffset"], annotation["content"]
                if self.offset_unit == "codepoint":
                    placed = text[begin : begin + len(content)] == content
                else:
                    units, wanted = text.encode("utf-16-le"), content.encode("utf-16-le")
                    placed = units[2 * begin : 2 * begin + len(wanted)] == wanted
                if not placed:
                    self.misplaced.append({"label": label["id"], **annotation})

    def add_human_label(self, asset_id: str, json_response: dict[str, Any]) -> None:
        """A label a person made in Kili's interface (type DEFAULT) on an asset."""
        with self._lock:
            self.labels.append(
                {
                    "id": f"label-{next(self._ids)}",
                    "labelType": "DEFAULT",
                    "modelName": None,
                    "jsonResponse": json.dumps(json_response),
                    "assetId": asset_id,
                    "author": {"id": "user-2", "email": "annotator@example.com"},
                }
            )

    def _check_categories(self, label: dict[str, Any], project: dict[str, Any]) -> None:
        interface = project.get("jsonInterface") or "{}"
        jobs = (json.loads(interface) if isinstance(interface, str) else interface).get("jobs", {})
        for name, job in json.loads(label["jsonResponse"]).items():
            spec = jobs.get(name) or {}
            if "categories" not in job or spec.get("mlTask") != "CLASSIFICATION":
                continue
            known = (spec.get("content") or {}).get("categories") or {}
            names = [c["name"] for c in job["categories"]]
            radio = (spec.get("content") or {}).get("input") == "radio"
            if any(n not in known for n in names) or (radio and len(names) > 1):
                self.miscategorised.append({"label": label["id"], "job": name, "names": names})

    def _check_confidences(self, label: dict[str, Any]) -> None:
        for job in json.loads(label["jsonResponse"]).values():
            categories = list(job.get("categories", []))
            categories += [c for a in job.get("annotations", []) for c in a.get("categories", [])]
            for category in categories:
                if "confidence" not in category:
                    continue
                value = category["confidence"]
                if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= 100:
                    self.bad_confidences.append({"label": label["id"], **category})

    def _select_labels(self, where: dict[str, Any]) -> list[dict[str, Any]]:
        project = (where.get("project") or {}).get("id")
        found = self.project_labels(project) if project else list(self.labels)
        if where.get("typeIn"):
            found = [lab for lab in found if lab["labelType"] in where["typeIn"]]
        if where.get("id"):
            found = [lab for lab in found if lab["id"] == where["id"]]
        if where.get("idIn") is not None:
            found = [lab for lab in found if lab["id"] in set(where["idIn"])]
        assets = {a["id"]: a for a in self.assets}
        return [
            {
                **lab,
                "jsonResponseUrl": None,
                "labelOf": {
                    "id": lab["assetId"],
                    "externalId": assets[lab["assetId"]]["externalId"],
                },
            }
            for lab in found
        ]

    def _labels(self, where: dict[str, Any], first: int, skip: int) -> list[dict[str, Any]]:
        return self._select_labels(where)[skip : skip + first]

    def _countLabels(self, where: dict[str, Any]) -> int:
        return len(self._select_labels(where))

    def _deleteLabels(self, ids: list[str]) -> list[str]:
        self._batch("deleteLabels", len(ids))
        gone = [lab["id"] for lab in self.labels if lab["id"] in set(ids)]
        self.labels = [lab for lab in self.labels if lab["id"] not in set(ids)]
        return gone

    def _batch(self, name: str, size: int) -> None:
        if size > MAX_BATCH:
            raise FakeError(f"{name}: at most {MAX_BATCH} items per call, got {size}")
        self.batches.setdefault(name, []).append(size)


def serve_for_sdk(monkeypatch: Any) -> Iterator[FakeKili]:
    """A started fake for the real SDK (a fixture's body; `monkeypatch` is pytest's): the
    SDK's per-process rate limiter (500 calls/min) fresh, as in each `prelabel upload`
    process, so that earlier tests do not slow this one, and KILI_SDK_SKIP_CHECKS set."""
    from kili.core.constants import MAX_CALLS_PER_MINUTE
    from kili.core.graphql import graphql_client
    from pyrate_limiter import Duration, Limiter, Rate

    fresh = Limiter(Rate(MAX_CALLS_PER_MINUTE, Duration.MINUTE), max_delay=120 * 1000)
    monkeypatch.setattr(graphql_client, "_limiter", fresh)
    monkeypatch.setenv("KILI_SDK_SKIP_CHECKS", "1")
    server = FakeKili().start()
    try:
        yield server
    finally:
        server.stop()


class _Handler(BaseHTTPRequestHandler):
    server_fake: FakeKili

    def log_message(self, format: str, *args: Any) -> None:  # quiet
        pass

    def _body(self) -> bytes:
        raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        if self.headers.get("Content-Encoding") == "gzip":
            raw = gzip.decompress(raw)
            with self.server_fake._lock:
                self.server_fake.gzipped += 1
        return raw

    def _send(self, status: int, headers: dict[str, str], body: bytes) -> None:
        self.send_response(status)
        for key, value in headers.items():
            self.send_header(key, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_POST(self) -> None:
        if urlsplit(self.path).path != GRAPHQL_PATH:
            self._send(404, {}, b"not found")
            return
        body = json.loads(self._body())
        self._send(*self.server_fake.handle_graphql(body, self.headers.get("Authorization")))

    def do_PUT(self) -> None:
        path = urlsplit(self.path).path
        if not path.startswith("/bucket/"):
            self._send(404, {}, b"not found")
            return
        data = self._body()
        with self.server_fake._lock:
            self.server_fake.blobs[path.removeprefix("/bucket/")] = data
        self._send(200, {}, b"")

    def do_GET(self) -> None:
        path = urlsplit(self.path).path.removeprefix("/bucket/")
        blob = self.server_fake.blobs.get(path)
        if blob is None:
            self._send(404, {}, b"not found")
        else:
            self._send(200, {"Content-Type": "text/plain; charset=utf-8"}, blob)


def _json(status: int, payload: dict[str, Any]) -> tuple[int, dict[str, str], bytes]:
    return status, {"Content-Type": "application/json"}, json.dumps(payload).encode()


def _blob_path(url: str) -> str:
    query = parse_qs(urlsplit(url).query)
    return query["id"][0] if "id" in query else urlsplit(url).path.removeprefix("/bucket/")


def _ilike(pattern: str) -> re.Pattern[str]:
    glob = pattern.replace("*", "[*]").replace("?", "[?]").replace("%", "*").replace("_", "?")
    return re.compile(fnmatch.translate(glob), re.IGNORECASE)


def _project(value: Any, selection: SelectionSetNode | None) -> Any:
    """Keep the fields the query selects, under their aliases, as a GraphQL server does."""
    if selection is None or value is None:
        return value
    if isinstance(value, list):
        return [_project(v, selection) for v in value]
    out = {}
    for node in selection.selections:
        if isinstance(node, FieldNode):
            key = (node.alias or node.name).value
            out[key] = _project(value.get(node.name.value), node.selection_set)
    return out
