"""The local Hub look-alike against the real huggingface_hub client (no mocks).

Each test runs its own ``HubServer`` (so fault injection cannot leak into
other tests) over the session's tiny models, and passes ``endpoint=``
explicitly, since huggingface_hub reads ``HF_ENDPOINT`` only at import.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from huggingface_hub import HfApi, constants, file_download, hf_hub_download, snapshot_download
from huggingface_hub.errors import (
    EntryNotFoundError,
    RemoteEntryNotFoundError,
    RepositoryNotFoundError,
    RevisionNotFoundError,
)
from huggingface_hub.utils import httpx

from tests.support.hub_server import HubServer, patch_hub_endpoint
from tests.support.tiny_models import GPT2, SST2


class _NoSleep:
    """Stands in for the ``time`` module in huggingface_hub.file_download: retries without the 1 s pause."""

    def __getattr__(self, name: str) -> Any:
        return getattr(time, name)

    @staticmethod
    def sleep(_seconds: float) -> None:
        pass


@pytest.fixture
def server(tiny_models: dict[str, Path]) -> Iterator[HubServer]:
    with HubServer(tiny_models) as hub:
        yield hub


@pytest.fixture
def no_retry_pause(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(file_download, "time", _NoSleep())


def _sha256(path: Path | str) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def test_snapshot_at_a_short_sha_downloads_a_loadable_model(server: HubServer, tmp_path: Path) -> None:
    from transformers import pipeline

    folder = snapshot_download(
        SST2,
        revision="714eb0f",
        cache_dir=tmp_path,
        endpoint=server.url,
        allow_patterns=["*.json", "*.safetensors"],
    )

    assert Path(folder).name == server.commit_for(SST2, "714eb0f")
    assert ("GET", f"/api/models/{SST2}/revision/714eb0f") in server.requests
    assert sorted(p.name for p in Path(folder).iterdir()) == [
        "config.json",
        "model.safetensors",
        "tokenizer.json",
        "tokenizer_config.json",
    ]
    classify = pipeline("text-classification", model=folder)
    assert classify("I love this product!")[0]["label"] == "POSITIVE"
    assert classify("This is terrible, I hate it.")[0]["label"] == "NEGATIVE"


def test_a_full_sha_is_its_own_commit_and_branches_share_one(server: HubServer, tmp_path: Path) -> None:
    sha = "0123456789abcdef0123456789abcdef01234567"
    api = HfApi(endpoint=server.url)

    assert api.model_info(GPT2, revision=sha).sha == sha
    assert api.model_info(GPT2, revision="main").sha == api.model_info(GPT2, revision="dev").sha
    path = hf_hub_download(GPT2, "config.json", revision=sha, cache_dir=tmp_path, endpoint=server.url)
    assert Path(path).parent.name == sha


def test_missing_repo_revision_and_file_raise_the_typed_errors(server: HubServer, tmp_path: Path) -> None:
    server.unknown_revisions.add("no-such-branch")
    kwargs: dict[str, Any] = {"cache_dir": tmp_path, "endpoint": server.url}

    with pytest.raises(RepositoryNotFoundError):
        hf_hub_download("nobody/nothing", "config.json", **kwargs)
    with pytest.raises(RepositoryNotFoundError):
        snapshot_download("nobody/nothing", **kwargs)
    with pytest.raises(RevisionNotFoundError):
        hf_hub_download(GPT2, "config.json", revision="no-such-branch", **kwargs)
    with pytest.raises(RevisionNotFoundError):
        snapshot_download(GPT2, revision="no-such-branch", **kwargs)
    with pytest.raises(RemoteEntryNotFoundError) as missing:
        hf_hub_download(GPT2, "no-such-file.bin", **kwargs)
    assert isinstance(missing.value, EntryNotFoundError)
    with pytest.raises(RepositoryNotFoundError):
        HfApi(endpoint=server.url).model_info("nobody/nothing")


def test_model_info_reports_sizes_and_lfs_hashes(server: HubServer, tiny_models: dict[str, Path]) -> None:
    info = HfApi(endpoint=server.url).model_info(GPT2, files_metadata=True)
    folder = tiny_models[GPT2]
    siblings = {s.rfilename: s for s in info.siblings or []}

    assert info.sha == server.commit_for(GPT2)
    assert info.pipeline_tag == "text-generation"
    assert set(siblings) == {p.name for p in folder.iterdir()}
    for name, sibling in siblings.items():
        assert sibling.size == (folder / name).stat().st_size
    weights = siblings["model.safetensors"]
    assert weights.lfs is not None and weights.lfs.sha256 == _sha256(folder / "model.safetensors")
    assert siblings["config.json"].lfs is None
    assert info.safetensors is not None and info.safetensors.total > 0


def test_tree_listing_pages_and_subfolders(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    (repo / "sub" / "deeper").mkdir(parents=True)
    (repo / "config.json").write_text("{}")
    (repo / "sub" / "a.txt").write_text("a")
    (repo / "sub" / "deeper" / "b.txt").write_text("b")
    with HubServer({"me/nested": repo}) as hub:
        hub.tree_page_size = 2
        api = HfApi(endpoint=hub.url)

        everything = [entry.path for entry in api.list_repo_tree("me/nested", recursive=True)]
        top = [entry.path for entry in api.list_repo_tree("me/nested")]
        sub = [entry.path for entry in api.list_repo_tree("me/nested", path_in_repo="sub")]
        with pytest.raises(EntryNotFoundError):
            list(api.list_repo_tree("me/nested", path_in_repo="missing"))

    assert sorted(everything) == ["config.json", "sub", "sub/a.txt", "sub/deeper", "sub/deeper/b.txt"]
    assert sum(1 for method, path in hub.requests if "/tree/main" in path and method == "GET") >= 3
    assert sorted(top) == ["config.json", "sub"]
    assert sorted(sub) == ["sub/a.txt", "sub/deeper"]


def test_a_dropped_connection_is_resumed_with_a_range_request(
    server: HubServer,
    tiny_models: dict[str, Path],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    no_retry_pause: None,
) -> None:
    # The client only writes (and so can only resume) whole DOWNLOAD_CHUNK_SIZE pieces.
    monkeypatch.setattr(constants, "DOWNLOAD_CHUNK_SIZE", 4096)
    server.drop_connection_after("model.safetensors", 50_000)

    path = hf_hub_download(GPT2, "model.safetensors", cache_dir=tmp_path, endpoint=server.url)

    assert _sha256(path) == _sha256(tiny_models[GPT2] / "model.safetensors")
    gets = [r for r in server.records if r.method == "GET" and r.path.endswith("/model.safetensors")]
    assert [r.headers.get("Range") for r in gets] == [None, "bytes=49152-"]


def test_a_connection_that_keeps_dropping_fails_cleanly(
    server: HubServer, tmp_path: Path, no_retry_pause: None
) -> None:
    server.drop_connection_after("model.safetensors", 1000, times=100)

    with pytest.raises(httpx.RemoteProtocolError):
        hf_hub_download(GPT2, "model.safetensors", cache_dir=tmp_path, endpoint=server.url)

    assert not [p for p in tmp_path.rglob("*") if p.is_file() and "blobs" in p.parts]


def test_throttling_slows_file_bodies(
    server: HubServer, tiny_models: dict[str, Path], tmp_path: Path
) -> None:
    size = (tiny_models[GPT2] / "model.safetensors").stat().st_size
    server.chunk_size = 16 * 1024
    server.throttle_bytes_per_s = size / 0.5

    start = time.monotonic()
    hf_hub_download(GPT2, "model.safetensors", cache_dir=tmp_path, endpoint=server.url)

    assert time.monotonic() - start >= 0.4


def test_patch_hub_endpoint_lets_repo_ids_resolve_without_endpoint_arguments(
    server: HubServer, tmp_path: Path
) -> None:
    from transformers import AutoConfig

    before = constants.ENDPOINT
    with patch_hub_endpoint(server.url):
        config = AutoConfig.from_pretrained(GPT2, cache_dir=tmp_path)
        path = hf_hub_download(GPT2, "tokenizer_config.json", cache_dir=tmp_path)
    assert config.model_type == "gpt2"
    assert Path(path).is_file()
    assert before == constants.ENDPOINT
    # transformers resolves the revision through the API first, then fetches files at that commit.
    assert ("GET", f"/api/models/{GPT2}") in server.requests
    assert ("HEAD", f"/{GPT2}/resolve/{server.commit_for(GPT2)}/config.json") in server.requests
