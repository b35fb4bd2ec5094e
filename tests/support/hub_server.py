"""A small Hugging Face Hub look-alike HTTP server for tests.

``HubServer`` serves local model folders under Hub repo ids so that the *real*
``huggingface_hub`` client (``snapshot_download``, ``hf_hub_download``,
``HfApi.model_info``, ``HfApi.list_repo_tree``, transformers'
``from_pretrained``) works against it, with no network and no mocks. It
implements what huggingface_hub 2.4 asks for:

* ``GET /api/models/{repo_id}[/revision/{revision}]`` - repo info (``sha``,
  ``siblings``; with ``?blobs=true`` also ``size``, ``blobId`` and ``lfs``
  ``{sha256, size, pointerSize}`` for weight files), ``pipeline_tag``,
  ``config``, ``safetensors`` parameter counts; ``?expand=`` is honoured.
* ``GET /api/models/{repo_id}/tree/{revision}[/{path}]?recursive=&expand=`` -
  tree listing, paginated with a ``Link: <...>; rel="next"`` header every
  ``tree_page_size`` entries (like the Hub, cursor based).
* ``HEAD``/``GET /{repo_id}/resolve/{revision}/{filename}`` - ``X-Repo-Commit``,
  ``ETag`` (git blob sha1, or sha256 for LFS files, which also get
  ``X-Linked-Etag``/``X-Linked-Size``), ``Content-Length``, ``Accept-Ranges``
  and single ``Range`` requests (206 / 416). Never any ``X-Xet-*`` header or
  redirect, so the client always takes the plain HTTP download path.
* Errors are 404 JSON bodies with ``X-Error-Code`` ``RepoNotFound``,
  ``RevisionNotFound`` or ``EntryNotFound`` (the codes huggingface_hub maps to
  ``RepositoryNotFoundError``, ``RevisionNotFoundError`` and
  ``RemoteEntryNotFoundError``); an ``EntryNotFound`` from ``resolve`` carries
  ``X-Repo-Commit`` like the Hub's, so the client caches the miss.

Every revision resolves (``main``, any branch or tag, a short sha such as
``714eb0f``), except those listed in ``HubServer.unknown_revisions``. The
commit sha of a 40-hex revision is the revision itself; any other revision
resolves to one deterministic sha per repo (derived from the repo id and the
files' hashes, see ``HubServer.commit_for``). Short shas are *not* expanded to
a sha starting with them.

Pointing the client at the server
---------------------------------
huggingface_hub 2.4 reads ``HF_ENDPOINT`` **once, at import**, into
``huggingface_hub.constants.ENDPOINT`` and ``HUGGINGFACE_CO_URL_TEMPLATE``;
``HfApi()`` copies ``constants.ENDPOINT`` when it is constructed, and the
module-level helpers (``huggingface_hub.model_info`` ...) are bound to an
``HfApi`` built at import. transformers keeps its own shared ``HfApi`` too
(``transformers.utils.hub._hf_api``, built on first use). So setting
``os.environ["HF_ENDPOINT"]`` in a test that already imported huggingface_hub
does nothing. Either

* pass ``endpoint=server.url`` explicitly (``snapshot_download``,
  ``hf_hub_download``, ``HfApi(endpoint=...)``), as Pipedesk's ModelStore does;
* or wrap the code in ``with patch_hub_endpoint(server.url):`` which patches
  all of the above (and the env var) and restores them afterwards;
* or set ``HF_ENDPOINT`` in the environment of a *subprocess*.

``HF_HUB_OFFLINE`` is likewise read once at import into
``huggingface_hub.constants.HF_HUB_OFFLINE``, but that constant is consulted
on every request, so patching it (``patch_hub_offline()``) takes effect
immediately.

Download granularity: the client reads bodies in
``huggingface_hub.constants.DOWNLOAD_CHUNK_SIZE`` (10 MiB) pieces, so for
small files progress callbacks fire once per file and a dropped connection
restarts from byte 0 (nothing was written yet). Patch that constant (it is
read per download) to a few KiB to observe progress or ``Range`` resumes.

Threads: ``start()`` runs the accept loop on one daemon thread, and each
request is handled on its own daemon thread (``ThreadingHTTPServer``). The
public methods and attributes of ``HubServer`` may be used from any thread;
mutable state is guarded by a lock.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import socket
import struct
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import TracebackType
from typing import Any
from urllib.parse import parse_qs, quote, unquote, urlsplit

#: Files the Hub stores with Git LFS by default (its stock ``.gitattributes``).
LFS_SUFFIXES = (
    ".safetensors",
    ".bin",
    ".pt",
    ".pth",
    ".ckpt",
    ".h5",
    ".msgpack",
    ".onnx",
    ".ot",
    ".tflite",
    ".model",
    ".pkl",
    ".npy",
    ".npz",
    ".gguf",
    ".zip",
    ".gz",
    ".tar",
)
#: Files bigger than this are treated as LFS files whatever their name.
LFS_MIN_SIZE = 10 * 1024 * 1024

_COMMIT_RE = re.compile(r"[0-9a-f]{40}")
_RESOLVE_RE = re.compile(r"^/(?P<repo>[^/]+(?:/[^/]+)?)/resolve/(?P<rev>[^/]+)/(?P<path>.+)$")
_TREE_RE = re.compile(r"^/api/models/(?P<repo>[^/]+(?:/[^/]+)?)/tree/(?P<rev>[^/]+)(?:/(?P<path>.*))?$")
_INFO_RE = re.compile(r"^/api/models/(?P<repo>[^/]+(?:/[^/]+)?)(?:/revision/(?P<rev>[^/]+))?/?$")
_RANGE_RE = re.compile(r"^\s*bytes\s*=\s*(\d*)\s*-\s*(\d*)\s*$", re.IGNORECASE)

_TIMESTAMP = "2024-01-01T00:00:00.000Z"

_PIPELINE_TAGS = (
    ("ForSequenceClassification", "text-classification"),
    ("ForTokenClassification", "token-classification"),
    ("ForQuestionAnswering", "question-answering"),
    ("ForImageClassification", "image-classification"),
    ("ForMaskedLM", "fill-mask"),
    ("LMHeadModel", "text-generation"),
    ("ForCausalLM", "text-generation"),
    ("MTModel", "translation"),
    ("WhisperForConditionalGeneration", "automatic-speech-recognition"),
    ("ForConditionalGeneration", "summarization"),
    ("ForObjectDetection", "object-detection"),
)


# --------------------------------------------------------------------------- repo model


@dataclass(frozen=True)
class ServedFile:
    """One file of a served repo, with the hashes the Hub would report."""

    path: str
    local: Path
    size: int
    blob_id: str
    sha256: str | None = None
    pointer_size: int | None = None

    @property
    def is_lfs(self) -> bool:
        return self.sha256 is not None

    @property
    def etag(self) -> str:
        """What the Hub sends as ETag: sha256 for LFS files, the git blob sha1 otherwise."""
        return self.sha256 or self.blob_id

    def sibling(self, blobs: bool) -> dict[str, Any]:
        entry: dict[str, Any] = {"rfilename": self.path}
        if blobs:
            entry["size"] = self.size
            entry["blobId"] = self.blob_id
            if self.sha256 is not None:
                entry["lfs"] = {"sha256": self.sha256, "size": self.size, "pointerSize": self.pointer_size}
        return entry

    def tree_entry(self) -> dict[str, Any]:
        entry: dict[str, Any] = {"type": "file", "oid": self.blob_id, "size": self.size, "path": self.path}
        if self.sha256 is not None:
            entry["lfs"] = {"oid": self.sha256, "size": self.size, "pointerSize": self.pointer_size}
        return entry


def _git_blob_sha1(data: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


def _scan_file(path: str, local: Path) -> ServedFile:
    data = local.read_bytes()
    size = len(data)
    if path.endswith(LFS_SUFFIXES) or size >= LFS_MIN_SIZE:
        sha256 = hashlib.sha256(data).hexdigest()
        pointer = f"version https://git-lfs.github.com/spec/v1\noid sha256:{sha256}\nsize {size}\n".encode()
        return ServedFile(path, local, size, _git_blob_sha1(pointer), sha256, len(pointer))
    return ServedFile(path, local, size, _git_blob_sha1(data))


def _safetensors_parameters(files: Mapping[str, ServedFile]) -> dict[str, int]:
    """Parameter counts per dtype, read from the safetensors headers."""
    counts: dict[str, int] = {}
    for name, repo_file in files.items():
        if not name.endswith(".safetensors"):
            continue
        try:
            with repo_file.local.open("rb") as fh:
                (length,) = struct.unpack("<Q", fh.read(8))
                header = json.loads(fh.read(length))
        except (OSError, ValueError, struct.error):
            continue
        for key, tensor in header.items():
            if key == "__metadata__":
                continue
            numel = 1
            for dim in tensor["shape"]:
                numel *= dim
            counts[tensor["dtype"]] = counts.get(tensor["dtype"], 0) + numel
    return counts


@dataclass
class _Repo:
    """A served repo: its files (scanned once, at ``add_repo``) and derived metadata."""

    repo_id: str
    folder: Path
    files: dict[str, ServedFile]
    sha: str
    config: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def scan(cls, repo_id: str, folder: Path) -> _Repo:
        folder = Path(folder)
        if not folder.is_dir():
            raise FileNotFoundError(f"not a folder: {folder}")
        files: dict[str, ServedFile] = {}
        for local in sorted(folder.rglob("*")):
            rel = local.relative_to(folder)
            if not local.is_file() or any(
                part.startswith(".") and part != ".gitattributes" for part in rel.parts
            ):
                continue
            files[rel.as_posix()] = _scan_file(rel.as_posix(), local)
        digest = hashlib.sha1(repo_id.encode())
        for name, repo_file in files.items():
            digest.update(f"\0{name}\0{repo_file.etag}".encode())
        config: dict[str, Any] = {}
        if "config.json" in files:
            try:
                config = json.loads(files["config.json"].local.read_text(encoding="utf-8"))
            except (OSError, ValueError):
                config = {}
        return cls(repo_id=repo_id, folder=folder, files=files, sha=digest.hexdigest(), config=config)

    @property
    def pipeline_tag(self) -> str | None:
        for architecture in self.config.get("architectures") or []:
            for suffix, tag in _PIPELINE_TAGS:
                if architecture.endswith(suffix):
                    return tag
        return None

    def directories(self) -> set[str]:
        dirs: set[str] = set()
        for name in self.files:
            parts = name.split("/")[:-1]
            for i in range(1, len(parts) + 1):
                dirs.add("/".join(parts[:i]))
        return dirs

    def info(self, commit: str, *, blobs: bool, expand: list[str]) -> dict[str, Any]:
        params = _safetensors_parameters(self.files)
        tag = self.pipeline_tag
        model_type = self.config.get("model_type")
        data: dict[str, Any] = {
            "_id": self.sha[:24],
            "id": self.repo_id,
            "modelId": self.repo_id,
            "author": self.repo_id.split("/")[0] if "/" in self.repo_id else None,
            "sha": commit,
            "lastModified": _TIMESTAMP,
            "createdAt": _TIMESTAMP,
            "private": False,
            "gated": False,
            "disabled": False,
            "downloads": 0,
            "likes": 0,
            "library_name": "transformers",
            "tags": [t for t in ("transformers", "safetensors" if params else None, model_type, tag) if t],
            "pipeline_tag": tag,
            "config": {k: self.config[k] for k in ("architectures", "model_type") if k in self.config},
            "siblings": [f.sibling(blobs) for f in self.files.values()],
            "spaces": [],
            "usedStorage": sum(f.size for f in self.files.values()),
        }
        if params:
            data["safetensors"] = {"parameters": params, "total": sum(params.values())}
        if expand:
            data = {k: v for k, v in data.items() if k in {"_id", "id", *expand}}
        return data


# --------------------------------------------------------------------------- server


@dataclass(frozen=True)
class RequestRecord:
    """One request as the server saw it (``path`` is percent-decoded, without query)."""

    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]


class HubError(Exception):
    """An HTTP error answered the way the Hub does (JSON body + ``X-Error-Code``)."""

    def __init__(self, status: int, code: str | None, message: str, commit: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.commit = commit


class _Abort(Exception):
    """Raised inside a handler to drop the connection without any further output."""


class HubServer:
    """A Hub-compatible HTTP server on ``127.0.0.1`` (free port) serving local folders.

    The socket is bound in ``__init__`` (so ``url`` is known at once); ``start()``
    begins serving on a background thread. Use as a context manager::

        with HubServer({"openai-community/gpt2": folder}) as hub:
            snapshot_download("openai-community/gpt2", endpoint=hub.url, cache_dir=tmp)

    Read-only attributes: ``url`` (``http://127.0.0.1:PORT``); ``requests``, the
    ``(method, path)`` of every request received (path percent-decoded, without
    the query string; clear it with ``requests.clear()``); ``records``, the
    same requests with query and headers (``RequestRecord``).

    Attributes tests may set at any time:

    * ``unknown_revisions``: revisions answered with ``RevisionNotFound``.
    * ``tree_page_size``: entries per tree page (the Hub uses 1000).
    * ``chunk_size``: bytes written per socket write for file bodies.
    * ``delay_per_chunk``: seconds to sleep after each body chunk.
    * ``throttle_bytes_per_s``: cap on body throughput (None: unlimited).
    """

    def __init__(self, repos: Mapping[str, Path] | None = None) -> None:
        self._lock = threading.Lock()
        self._repos: dict[str, _Repo] = {}
        self._drops: dict[str, list[int]] = {}
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self._connections: set[socket.socket] = set()
        self.requests: list[tuple[str, str]] = []
        self.records: list[RequestRecord] = []
        self.unknown_revisions: set[str] = set()
        self.tree_page_size = 1000
        self.chunk_size = 64 * 1024
        self.delay_per_chunk = 0.0
        self.throttle_bytes_per_s: float | None = None
        for repo_id, folder in (repos or {}).items():
            self.add_repo(repo_id, folder)
        self._httpd = _HTTPServer(("127.0.0.1", 0), _Handler, self)
        host, port = self._httpd.server_address[:2]
        self.url = f"http://{host}:{port}"

    # ------------------------------------------------------------------ public

    def add_repo(self, repo_id: str, folder: Path) -> None:
        """Serve ``folder`` as ``repo_id`` (replacing any previous folder).

        The file list and hashes are taken now; call again after changing the
        folder. Changed content gives the repo a new commit sha.
        """
        repo = _Repo.scan(repo_id, Path(folder))
        with self._lock:
            self._repos[repo_id] = repo

    def remove_repo(self, repo_id: str) -> None:
        """Stop serving ``repo_id`` (it then answers ``RepoNotFound``)."""
        with self._lock:
            self._repos.pop(repo_id, None)

    def commit_for(self, repo_id: str, revision: str = "main") -> str:
        """The commit sha ``revision`` of ``repo_id`` resolves to."""
        return self._resolve(repo_id, revision)[1]

    def drop_connection_after(self, filename: str, nbytes: int, times: int = 1) -> None:
        """Fault injection for GETs of ``filename``.

        The next ``times`` GETs of that file (in any repo; or pass
        ``"owner/name/path"`` to target one repo) send the headers and
        ``nbytes`` bytes of the body, then close the socket (FIN, no RST). The
        client sees a short body (``httpx.RemoteProtocolError``); huggingface_hub
        retries up to 5 times, 1 s apart, resuming with a ``Range`` request from
        the bytes it had written (whole ``DOWNLOAD_CHUNK_SIZE`` pieces, see the
        module docstring), then raises that error. After ``times`` drops the
        file is served normally; ``times=0`` cancels a pending fault.
        """
        with self._lock:
            self._drops[filename] = [nbytes, times]

    def start(self) -> HubServer:
        """Begin serving on a daemon thread; returns ``self``."""
        if self._thread is None:
            self._thread = threading.Thread(
                target=self._httpd.serve_forever,
                kwargs={"poll_interval": 0.05},
                name="hub-server",
                daemon=True,
            )
            self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and close every connection, kept-alive or mid-body. Idempotent.

        Clients then see the connection drop or be refused, as if the Hub went
        away. A stopped server cannot be started again.
        """
        self._stopping.set()
        if self._thread is not None:
            self._httpd.shutdown()
            self._thread.join(timeout=5)
            self._thread = None
        self._httpd.server_close()
        with self._lock:
            connections = list(self._connections)
        for connection in connections:
            try:
                connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def __enter__(self) -> HubServer:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    # ------------------------------------------------------------------ internals (handler threads)

    def _track(self, connection: socket.socket, alive: bool) -> None:
        with self._lock:
            if alive:
                self._connections.add(connection)
            else:
                self._connections.discard(connection)

    def _record(self, record: RequestRecord) -> None:
        with self._lock:
            self.requests.append((record.method, record.path))
            self.records.append(record)

    def _repo(self, repo_id: str) -> _Repo:
        with self._lock:
            repo = self._repos.get(repo_id)
        if repo is None:
            raise HubError(404, "RepoNotFound", "Repository not found")
        return repo

    def _resolve(self, repo_id: str, revision: str) -> tuple[_Repo, str]:
        repo = self._repo(repo_id)
        with self._lock:
            unknown = revision in self.unknown_revisions
        if unknown:
            raise HubError(404, "RevisionNotFound", f"Invalid rev id: {revision}")
        return repo, revision if _COMMIT_RE.fullmatch(revision) else repo.sha

    def _take_drop(self, repo_id: str, path: str) -> int | None:
        with self._lock:
            for key in (f"{repo_id}/{path}", path):
                spec = self._drops.get(key)
                if spec is not None and spec[1] > 0:
                    spec[1] -= 1
                    return spec[0]
        return None

    def _pace(self, nbytes: int) -> None:
        delay = self.delay_per_chunk
        if self.throttle_bytes_per_s:
            delay += nbytes / self.throttle_bytes_per_s
        if delay > 0 and self._stopping.wait(delay):
            raise _Abort


class _HTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(
        self, address: tuple[str, int], handler: type[BaseHTTPRequestHandler], hub: HubServer
    ) -> None:
        self.hub = hub
        super().__init__(address, handler)

    def handle_error(self, request: Any, client_address: Any) -> None:
        # Client hang-ups (cancelled downloads) are expected; stay quiet.
        pass


class _Handler(BaseHTTPRequestHandler):
    """Answers one connection's requests; runs on a per-connection daemon thread."""

    protocol_version = "HTTP/1.1"
    server: _HTTPServer
    server_version = "hub-server/1.0"

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
        pass

    def setup(self) -> None:
        super().setup()
        self.server.hub._track(self.connection, alive=True)

    def finish(self) -> None:
        self.server.hub._track(self.connection, alive=False)
        try:
            super().finish()
        except OSError:
            pass

    def do_GET(self) -> None:  # noqa: N802 - stdlib naming
        self._dispatch(head=False)

    def do_HEAD(self) -> None:  # noqa: N802 - stdlib naming
        self._dispatch(head=True)

    def do_POST(self) -> None:  # noqa: N802 - stdlib naming
        length = int(self.headers.get("Content-Length") or 0)
        if length:
            self.rfile.read(length)
        self._dispatch(head=False)

    # ------------------------------------------------------------------ dispatch

    def _dispatch(self, *, head: bool) -> None:
        hub = self.server.hub
        split = urlsplit(self.path)
        raw_path = split.path
        query = parse_qs(split.query)
        hub._record(RequestRecord(self.command, unquote(raw_path), query, dict(self.headers.items())))
        if hub._stopping.is_set():
            self._hang_up()
            return
        try:
            if self.command in {"GET", "HEAD"} and (m := _RESOLVE_RE.match(raw_path)):
                self._file(unquote(m["repo"]), unquote(m["rev"]), unquote(m["path"]), head=head)
            elif self.command in {"GET", "HEAD"} and (m := _TREE_RE.match(raw_path)):
                self._tree(unquote(m["repo"]), unquote(m["rev"]), unquote(m["path"] or ""), query, head=head)
            elif self.command in {"GET", "HEAD"} and (m := _INFO_RE.match(raw_path)):
                self._info(unquote(m["repo"]), unquote(m["rev"] or "main"), query, head=head)
            else:
                raise HubError(404, None, "Not Found")
        except HubError as err:
            self._error(err, head=head)
        except _Abort:
            self._hang_up()
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True

    def _error(self, err: HubError, *, head: bool) -> None:
        body = json.dumps({"error": err.message}).encode()
        headers = {"Content-Type": "application/json; charset=utf-8", "X-Error-Message": _ascii(err.message)}
        if err.code:
            headers["X-Error-Code"] = err.code
        if err.commit:
            headers["X-Repo-Commit"] = err.commit
        self._send(err.status, headers, body, head=head)

    def _send(self, status: int, headers: Mapping[str, str], body: bytes, *, head: bool) -> None:
        self.send_response(status)
        for key, value in headers.items():
            self.send_header(key, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if not head:
            self.wfile.write(body)

    def _json(self, data: Any, *, head: bool, extra: Mapping[str, str] | None = None) -> None:
        body = json.dumps(data).encode()
        self._send(200, {"Content-Type": "application/json; charset=utf-8", **(extra or {})}, body, head=head)

    def _hang_up(self) -> None:
        """Close the socket at once (FIN): the client sees a truncated response."""
        self.close_connection = True
        try:
            self.wfile.flush()
            self.connection.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass

    # ------------------------------------------------------------------ routes

    def _info(self, repo_id: str, revision: str, query: dict[str, list[str]], *, head: bool) -> None:
        repo, commit = self.server.hub._resolve(repo_id, revision)
        blobs = _truthy(query.get("blobs"))
        expand = [v for key in ("expand", "expand[]") for v in query.get(key, [])]
        self._json(repo.info(commit, blobs=blobs, expand=expand), head=head)

    def _tree(
        self, repo_id: str, revision: str, path: str, query: dict[str, list[str]], *, head: bool
    ) -> None:
        hub = self.server.hub
        repo, commit = hub._resolve(repo_id, revision)
        path = path.strip("/")
        recursive = _truthy(query.get("recursive"))
        expand = _truthy(query.get("expand"))
        dirs = repo.directories()
        if path and path not in dirs:
            raise HubError(404, "EntryNotFound", f"{path} does not exist on {revision}", commit)
        prefix = f"{path}/" if path else ""

        def wanted(name: str) -> bool:
            if not name.startswith(prefix):
                return False
            return recursive or "/" not in name[len(prefix) :]

        entries: list[dict[str, Any]] = [
            {
                "type": "directory",
                "oid": hashlib.sha1(f"{commit}:{d}".encode()).hexdigest(),
                "size": 0,
                "path": d,
            }
            for d in sorted(dirs)
            if wanted(d)
        ]
        entries += [f.tree_entry() for name, f in sorted(repo.files.items()) if wanted(name)]
        if expand:
            for entry in entries:
                entry["lastCommit"] = {"id": commit, "title": "Upload model", "date": _TIMESTAMP}

        start = int((query.get("cursor") or ["0"])[0] or 0)
        size = max(1, hub.tree_page_size)
        page = entries[start : start + size]
        extra: dict[str, str] = {}
        if start + size < len(entries):
            route = f"/api/models/{repo_id}/tree/{quote(revision, safe='')}"
            if path:
                route += "/" + quote(path, safe="")
            flags = f"recursive={str(recursive).lower()}&expand={str(expand).lower()}"
            extra["Link"] = f'<{hub.url}{route}?{flags}&cursor={start + size}>; rel="next"'
        self._json(page, head=head, extra=extra)

    def _file(self, repo_id: str, revision: str, path: str, *, head: bool) -> None:
        hub = self.server.hub
        repo, commit = hub._resolve(repo_id, revision)
        repo_file = repo.files.get(path)
        if repo_file is None:
            raise HubError(404, "EntryNotFound", f"{path} does not exist on {revision}", commit)
        size = repo_file.size
        headers = {
            "Content-Type": "application/octet-stream",
            "Accept-Ranges": "bytes",
            "ETag": f'"{repo_file.etag}"',
            "X-Repo-Commit": commit,
            "Content-Disposition": f'inline; filename="{_ascii(Path(path).name)}";',
        }
        if repo_file.is_lfs:
            headers["X-Linked-Etag"] = f'"{repo_file.etag}"'
            headers["X-Linked-Size"] = str(size)

        status, start, end = 200, 0, size
        range_header = self.headers.get("Range")
        if range_header and not head:
            try:
                parsed = _parse_range(range_header, size)
            except ValueError:
                parsed = (0, size)  # unparseable: ignore it, like most servers
            else:
                if parsed is None:
                    headers["Content-Range"] = f"bytes */{size}"
                    self._send(416, headers, b"", head=False)
                    return
                status = 206
                headers["Content-Range"] = f"bytes {parsed[0]}-{parsed[1] - 1}/{size}"
            start, end = parsed

        self.send_response(status)
        for key, value in headers.items():
            self.send_header(key, value)
        self.send_header("Content-Length", str(end - start))
        self.end_headers()
        if head:
            return

        drop_after = hub._take_drop(repo_id, path)
        limit = end if drop_after is None else min(end, start + drop_after)
        with repo_file.local.open("rb") as fh:
            fh.seek(start)
            position = start
            while position < limit:
                if hub._stopping.is_set():
                    raise _Abort
                chunk = fh.read(min(max(1, hub.chunk_size), limit - position))
                if not chunk:
                    break
                self.wfile.write(chunk)
                position += len(chunk)
                hub._pace(len(chunk))
        if drop_after is not None:
            raise _Abort


def _ascii(text: str) -> str:
    """``text`` made safe for an HTTP header (latin-1 only; keep it ASCII)."""
    return text.encode("ascii", "replace").decode("ascii")


def _truthy(values: list[str] | None) -> bool:
    return bool(values) and values[-1].strip().lower() in {"1", "true", "yes", "on"}


def _parse_range(header: str, size: int) -> tuple[int, int] | None:
    """``(start, end_exclusive)`` of a single ``bytes=`` range, None if unsatisfiable.

    Raises ValueError for headers this server does not understand (several
    ranges, other units), which are then ignored.
    """
    m = _RANGE_RE.match(header)
    if m is None or not any(m.groups()):
        raise ValueError(header)
    first, last = m.groups()
    if not first:
        suffix = int(last)
        return (max(0, size - suffix), size) if suffix and size else None
    start = int(first)
    end = size if not last else min(size, int(last) + 1)
    if start >= size or start >= end:
        return None
    return (start, end)


# --------------------------------------------------------------------------- client configuration


@contextmanager
def patch_hub_endpoint(url: str) -> Iterator[None]:
    """Point every import-time copy of the Hub endpoint at ``url``, restoring them on exit.

    Patches ``HF_ENDPOINT``, ``huggingface_hub.constants.ENDPOINT`` and
    ``HUGGINGFACE_CO_URL_TEMPLATE``, the module-level ``HfApi`` behind
    ``huggingface_hub.model_info`` & co., and drops transformers' shared
    ``HfApi`` so it is rebuilt with the new endpoint. Not thread-safe: use it
    around a test, not concurrently.
    """
    import sys

    from huggingface_hub import constants, hf_api

    url = url.rstrip("/")
    saved_env = os.environ.get("HF_ENDPOINT")
    saved = (constants.ENDPOINT, constants.HUGGINGFACE_CO_URL_TEMPLATE, hf_api.api.endpoint)
    transformers_hub = sys.modules.get("transformers.utils.hub")
    saved_transformers = getattr(transformers_hub, "_hf_api", None)
    os.environ["HF_ENDPOINT"] = url
    constants.ENDPOINT = url
    constants.HUGGINGFACE_CO_URL_TEMPLATE = url + "/{repo_id}/resolve/{revision}/{filename}"
    hf_api.api.endpoint = url
    if transformers_hub is not None:
        transformers_hub._hf_api = None  # type: ignore[attr-defined]
    try:
        yield
    finally:
        constants.ENDPOINT, constants.HUGGINGFACE_CO_URL_TEMPLATE, hf_api.api.endpoint = saved
        if transformers_hub is not None:
            transformers_hub._hf_api = saved_transformers  # type: ignore[attr-defined]
        if saved_env is None:
            os.environ.pop("HF_ENDPOINT", None)
        else:
            os.environ["HF_ENDPOINT"] = saved_env


@contextmanager
def patch_hub_offline(offline: bool = True) -> Iterator[None]:
    """Set ``HF_HUB_OFFLINE`` and huggingface_hub's import-time copy of it; restore on exit."""
    from huggingface_hub import constants

    saved_env = os.environ.get("HF_HUB_OFFLINE")
    saved = constants.HF_HUB_OFFLINE
    os.environ["HF_HUB_OFFLINE"] = "1" if offline else "0"
    constants.HF_HUB_OFFLINE = offline
    try:
        yield
    finally:
        constants.HF_HUB_OFFLINE = saved
        if saved_env is None:
            os.environ.pop("HF_HUB_OFFLINE", None)
        else:
            os.environ["HF_HUB_OFFLINE"] = saved_env


def wait_for(predicate: Callable[[], object], timeout: float = 5.0, interval: float = 0.01) -> bool:
    """Poll ``predicate()`` until it is truthy or ``timeout`` seconds pass; returns the last result."""
    deadline = time.monotonic() + timeout
    while True:
        if predicate():
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(interval)
