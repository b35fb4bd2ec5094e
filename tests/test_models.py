"""The ModelStore against a real local Hub and the real huggingface_hub client.

Each test that injects faults (throttling, dropped connections, a stopped
server) runs its own ``HubServer`` over the session's tiny models and points
``HF_ENDPOINT`` at it, so nothing leaks into other tests. The only fakes: the
free-space number (a full disk cannot be made here) and huggingface_hub's 1 s
pause between retries.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from desktop import settings
from desktop.engine import inventory
from desktop.errors import ModelError
from desktop.models import DAMAGED, INCOMPLETE, MISSING, READY, ModelStore, catalog, storage
from desktop.models import transfers as downloads
from desktop.models.ref import ModelRef
from desktop.models.transfers import DownloadCancelled
from desktop.tasks import TASKS
from tests.support import ROOT, cli_env
from tests.support.hub_server import HubServer, wait_for
from tests.support.tiny_models import GPT2, SST2, STARS

SST2_REF = TASKS["sentiment"].default_model
OFFLINE = "is not downloaded yet and this computer is offline: connect once, or import it from a folder"


@pytest.fixture
def server(tiny_models: dict[str, Path], monkeypatch: pytest.MonkeyPatch) -> Iterator[HubServer]:
    """A Hub of this test's own, with HF_ENDPOINT pointing at it."""
    with HubServer(tiny_models) as hub:
        monkeypatch.setenv("HF_ENDPOINT", hub.url)
        yield hub


def _gets(hub: HubServer, filename: str) -> list[Any]:
    return [r for r in hub.records if r.method == "GET" and r.path.endswith("/" + filename)]


def _file_requests(hub: HubServer) -> list[tuple[str, str]]:
    return [r for r in hub.requests if "/resolve/" in r[1]]


def test_first_use_downloads_into_the_app_cache_with_live_progress(server, pipedesk_home):
    server.throttle_bytes_per_s = 150_000  # about 1.3 s for the 200 KB model
    store = ModelStore()
    assert store.status(SST2_REF) == MISSING
    calls: list[tuple[int, int, str]] = []
    folder = store.ensure(SST2_REF, progress=lambda *call: calls.append(call))

    assert pipedesk_home in folder.parents and (folder / "model.safetensors").is_file()
    assert store.status(SST2_REF) == READY
    first = calls[0]
    assert first[0] == 0 and first[2] == "Downloading DistilBERT (SST-2, English): 4 files, 200 KB"
    bars = [c for c in calls if c[1]]
    assert len({done for done, _t, _d in bars}) >= 3, "the bar moved only once"
    assert [done for done, _t, _d in bars] == sorted(done for done, _t, _d in bars)
    assert bars[-1][0] == bars[-1][1] == 200_435
    assert any("/s" in desc and "left" in desc for _d, _t, desc in bars), "no speed or time left shown"
    assert not (Path.home() / ".cache/huggingface/hub" / f"models--{SST2.replace('/', '--')}").exists()


def test_two_requests_for_the_same_model_download_it_once(server):
    server.throttle_bytes_per_s = 400_000
    store = ModelStore()
    folders: list[Path] = []
    threads = [threading.Thread(target=lambda: folders.append(store.ensure(SST2_REF))) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert len(folders) == 2 and folders[0] == folders[1]
    assert len(_gets(server, "model.safetensors")) == 1


def test_a_dropped_connection_is_resumed_and_the_model_is_whole(server):
    server.drop_connection_after("model.safetensors", 70_000)
    store = ModelStore()
    store.ensure(SST2_REF)
    gets = _gets(server, "model.safetensors")
    assert len(gets) == 2 and gets[1].headers.get("Range") == "bytes=65536-"  # resumed, not restarted
    assert store.verify(SST2_REF, online=True) == []


def test_a_connection_that_keeps_dropping_is_a_clear_error_and_leaves_no_broken_model(server, monkeypatch):
    from huggingface_hub import file_download

    # huggingface_hub waits 1 s before each retry; file_download uses nothing else from ``time``.
    monkeypatch.setattr(file_download, "time", SimpleNamespace(sleep=lambda _seconds: None))
    server.drop_connection_after("model.safetensors", 0, times=6)  # the first try and all 5 retries
    store = ModelStore()
    with pytest.raises(ModelError, match="connection to the model server failed.*try again"):
        store.ensure(SST2_REF)
    assert store.local_path(SST2_REF) is None and store.status(SST2_REF) == INCOMPLETE
    assert store.ensure(SST2_REF)  # the connection is back: the next try finishes it
    assert store.verify(SST2_REF) == []


def test_a_killed_download_is_never_used_and_the_next_try_starts_clean(server, pipedesk_home):
    server.throttle_bytes_per_s = 40_000  # about 5 s: time to kill it midway
    code = "from desktop.models import ModelStore; from desktop.tasks import TASKS; ModelStore().ensure(TASKS['sentiment'].default_model)"
    proc = subprocess.Popen([sys.executable, "-c", code], env=cli_env(pipedesk_home), cwd=ROOT)
    store = ModelStore()
    blobs = store.storage(SST2_REF) / "blobs"

    def weights_started() -> list[Path]:  # the weights are the only file bigger than one 64 KiB read
        return [p for p in blobs.glob("*.incomplete") if p.exists() and p.stat().st_size >= 65_536]

    try:
        assert wait_for(weights_started, 30)
    finally:
        os.kill(proc.pid, signal.SIGKILL)  # like a crash or a power cut
        proc.wait()
    assert weights_started()
    assert store.status(SST2_REF) == INCOMPLETE and store.local_path(SST2_REF) is None

    server.throttle_bytes_per_s = None
    folder = store.ensure(SST2_REF)
    assert "Range" not in _gets(server, "model.safetensors")[-1].headers  # fetched whole again
    assert list(blobs.glob("*.incomplete")) == []  # the crashed part is cleaned away
    assert (
        store.verify(SST2_REF, online=True) == [] and (folder / "model.safetensors").stat().st_size == 189_528
    )


def test_a_file_that_arrives_damaged_is_fetched_again_then_refused_and_nothing_is_kept(
    tiny_models, tmp_path, monkeypatch
):
    served = tmp_path / "served"
    shutil.copytree(tiny_models[SST2], served)
    with HubServer({SST2: served}) as server:
        monkeypatch.setenv("HF_ENDPOINT", server.url)
        weights = served / "model.safetensors"
        good = weights.read_bytes()
        weights.write_bytes(good[:-100] + b"x" * 100)  # the listing still has the right hashes
        store = ModelStore()
        with pytest.raises(ModelError, match="arrived damaged twice .*model.safetensors: content differs"):
            store.ensure(SST2_REF)
        assert len(_gets(server, "model.safetensors")) == 2
        assert store.local_path(SST2_REF) is None and store.manifest(SST2_REF) is None
        assert not any(p.stat().st_size == len(good) for p in (store.storage(SST2_REF) / "blobs").iterdir())
        weights.write_bytes(good)
        assert store.ensure(SST2_REF) and store.verify(SST2_REF) == []


def test_cancel_stops_the_download_and_keeps_nothing(server):
    server.throttle_bytes_per_s, server.chunk_size = 60_000, 16_384  # 3.3 s in all
    store = ModelStore()
    cancel = threading.Event()
    errors: list[BaseException] = []

    def download() -> None:
        try:
            store.ensure(SST2_REF, cancel=cancel)
        except BaseException as exc:
            errors.append(exc)

    thread = threading.Thread(target=download)
    thread.start()
    assert wait_for(lambda: (t := store.transfer(SST2_REF)) is not None and t.done > 0, 20)
    assert store.status(SST2_REF) == "downloading"
    started = time.monotonic()
    assert store.cancel(SST2_REF)
    thread.join(10)
    assert time.monotonic() - started < 2.5  # at most one 64 KiB read later
    assert isinstance(errors[0], DownloadCancelled) and "nothing was kept" in str(errors[0])
    assert not store.storage(SST2_REF).exists() and store.status(SST2_REF) == MISSING


def test_a_model_larger_than_the_free_space_is_refused_before_anything_is_written(server, monkeypatch):
    monkeypatch.setattr(downloads, "free_bytes", lambda folder: 150_000)  # the one fake: a full disk
    store = ModelStore()
    with pytest.raises(
        ModelError, match=r"Not enough disk space for DistilBERT.*needs 200 KB and only 150 KB"
    ):
        store.ensure(SST2_REF)
    assert not store.storage(SST2_REF).exists() and not store.manifests.exists()
    assert _file_requests(server) == []


def test_truncated_deleted_and_altered_files_are_found_and_repaired(server):
    store = ModelStore()
    folder = store.ensure(SST2_REF)
    weights, tokenizer, config = (
        folder / "model.safetensors",
        folder / "tokenizer.json",
        folder / "config.json",
    )
    with open(weights.resolve(), "r+b") as fh:
        fh.truncate(1000)
    tokenizer.resolve().unlink()
    altered = config.resolve().read_bytes().replace(b"distilbert", b"DISTILBERT")
    config.resolve().write_bytes(altered)
    assert store.status(SST2_REF) == DAMAGED and store.local_path(SST2_REF) is not None

    expected = {
        "model.safetensors": "wrong size (1,000 of 189,528 bytes)",
        "tokenizer.json": "missing",
        "config.json": "content differs",
    }
    assert {p.file: p.issue for p in store.verify(SST2_REF, online=True)} == expected
    before = len(server.requests)
    assert {p.file: p.issue for p in store.verify(SST2_REF, online=False)} == expected
    assert len(server.requests) == before  # offline, the manifest answers

    repaired = store.repair(SST2_REF)
    assert {p.file for p in repaired} == set(expected)
    assert store.verify(SST2_REF) == [] and store.status(SST2_REF) == READY
    assert len(_gets(server, "tokenizer_config.json")) == 1  # the good file was not fetched again


def test_offline_a_cached_model_runs_with_no_network_call_and_a_missing_one_says_so(server, monkeypatch):
    from desktop.engine.runtime import Runtime

    ModelStore().ensure(SST2_REF)
    runtime = Runtime(device="cpu")
    for how in ("setting", "HF_HUB_OFFLINE"):
        if how == "setting":
            settings.update(offline=True)
        else:
            settings.update(offline=False)
            monkeypatch.setenv("HF_HUB_OFFLINE", "1")
        before = len(server.requests)
        assert TASKS["sentiment"].predict(runtime, "I love this product!").data["label"] == "POSITIVE"
        with pytest.raises(ModelError) as missing:
            TASKS["sentiment"].predict(runtime, "I love this product!", STARS)
        assert str(missing.value) == f"BERT multilingual (1-5 stars) {OFFLINE}."
        assert server.requests[before:] == [], how


def test_with_the_network_absent_a_missing_model_fails_at_once(tiny_models, monkeypatch):
    with HubServer(tiny_models) as server:
        monkeypatch.setenv("HF_ENDPOINT", server.url)
        ModelStore().ensure(SST2_REF)
    # The server is stopped: its port refuses connections, like a laptop with no network.
    store = ModelStore()
    started = time.monotonic()
    with pytest.raises(ModelError, match=f"GPT-2 \\(English\\) {OFFLINE}"):
        store.ensure(TASKS["generate"].default_model)
    assert time.monotonic() - started < 2.5  # at most one 64 KiB read later
    assert store.ensure(SST2_REF) == store.local_path(SST2_REF)  # what is cached still works
    assert store.verify(SST2_REF) == []  # online check impossible: the manifest answers


def test_import_checks_the_folder_and_the_name_then_works_by_name(tiny_models, tmp_path):
    from desktop.engine.runtime import Runtime

    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(ModelError, match="is not a model: it has no config.json"):
        inventory.import_folder(empty, "sentiment")
    no_weights = tmp_path / "no-weights"
    no_weights.mkdir()
    shutil.copy(tiny_models[SST2] / "config.json", no_weights)
    with pytest.raises(ModelError, match="no weights"):
        inventory.import_folder(no_weights, "sentiment")
    with pytest.raises(ModelError, match="does not fit text classification: it is a GPT2LMHeadModel model"):
        inventory.import_folder(tiny_models[GPT2], "sentiment", "story teller")
    with pytest.raises(ModelError, match="cannot be a model name"):
        inventory.import_folder(tiny_models[SST2], "sentiment", "me/mine")
    assert catalog.imported() == {}

    name, copy = inventory.import_folder(tiny_models[SST2], "sentiment", "office sentiment")
    assert name == "office sentiment" and ModelStore().root in copy.parents
    with pytest.raises(ModelError, match="already a model called"):
        inventory.import_folder(tiny_models[SST2], "sentiment", "office sentiment")
    runtime = Runtime(device="cpu")
    result = TASKS["sentiment"].predict(runtime, "I love this product!", "office sentiment")
    assert result.data["label"] == "POSITIVE" and result.model == copy.name
    assert catalog.verify_imported(name) == []
    (copy / "tokenizer.json").write_text("{}")
    assert [p.file for p in catalog.verify_imported(name)] == ["tokenizer.json"]


def test_the_list_shows_every_model_with_status_size_task_and_last_use(server, tiny_models):
    from desktop.tasks import known_models

    store = ModelStore()
    store.ensure(SST2_REF)
    inventory.import_folder(tiny_models[GPT2], "generate", "my gpt")
    catalog.add_custom("someone/custom-model", "ner")
    rows = {row.id: row for row in inventory.entries(store)}
    assert set(known_models()) <= set(rows)
    sst2 = rows[SST2]
    assert (sst2.status, sst2.size, sst2.tasks) == (READY, 200_435, ("sentiment", "classify"))
    assert sst2.last_used and time.time() - sst2.last_used < 60
    assert rows[STARS].status == MISSING and rows[STARS].last_used is None
    assert (rows["my gpt"].source, rows["my gpt"].status, rows["my gpt"].tasks) == (
        "imported",
        READY,
        ("generate",),
    )
    assert rows["someone/custom-model"].status == MISSING and rows["someone/custom-model"].tasks == ("ner",)
    store.remove(SST2_REF)
    assert {row.id: row for row in inventory.entries(store)}[SST2].status == MISSING
    assert not store.storage(SST2_REF).exists()


@pytest.mark.parametrize("where", ["same disk", "other disk"])
def test_moving_the_models_folder_keeps_every_model_working(server, tiny_models, tmp_path, where):
    from desktop.engine.runtime import Runtime

    store = ModelStore()
    old = store.root
    store.ensure(SST2_REF)
    inventory.import_folder(tiny_models[STARS], "sentiment", "stars")
    if where == "same disk":
        new = tmp_path / "elsewhere" / "models"
    else:
        shm = Path("/dev/shm")
        if not shm.is_dir() or shm.stat().st_dev == tmp_path.stat().st_dev:
            pytest.skip("no second file system (/dev/shm) to move models to")
        new = Path(shm, f"pipedesk-test-{os.getpid()}-{time.monotonic_ns()}", "models")
    calls: list[tuple[int, int, str]] = []
    try:
        storage.change_models_dir(new, move=True, progress=lambda *c: calls.append(c))
        assert settings.load().models_dir == new and ModelStore().root == new
        assert calls and calls[-1][0] == calls[-1][1]
        assert not (old / "hub").exists() and not (old / "catalog.json").exists()
        moved = ModelStore(new)
        assert moved.status(SST2_REF) == READY and moved.verify(SST2_REF) == []
        assert catalog.verify_imported("stars") == []
        runtime = Runtime(device="cpu")
        assert TASKS["sentiment"].predict(runtime, "I love this product!").data["label"] == "POSITIVE"
        assert TASKS["sentiment"].predict(runtime, "I love this product!", "stars").data["label"]
        requests = len(server.requests)
        # Switching again and leaving the models: the new folder starts empty, the old one is kept.
        storage.change_models_dir(tmp_path / "fresh", move=False)
        assert ModelStore().status(SST2_REF) == MISSING and ModelStore(new).storage(SST2_REF).exists()
        assert ModelStore(new).status(SST2_REF) == READY and len(server.requests) == requests
    finally:
        if where == "other disk":
            shutil.rmtree(new.parent, ignore_errors=True)


def test_a_models_folder_inside_the_current_one_is_refused():
    store = ModelStore()
    with pytest.raises(Exception, match="cannot be inside the current one"):
        storage.change_models_dir(store.root / "sub", store=store)
    assert settings.load().models_dir is None


def test_unknown_models_and_revisions_get_clear_errors(server):
    store = ModelStore()
    with pytest.raises(ModelError, match="No model called 'nobody/nothing'"):
        store.ensure(ModelRef("nobody/nothing"))
    server.unknown_revisions.add("v9")
    with pytest.raises(ModelError, match="has no revision 'v9'"):
        store.ensure(ModelRef(SST2, "v9"))
    with pytest.raises(ModelError, match="not downloaded, so there is nothing to verify"):
        store.verify(ModelRef(STARS))


def test_models_inside_a_packaged_app_are_ready_listed_and_cannot_be_removed(
    tiny_models, tmp_path, monkeypatch
):
    # A PyInstaller build cannot be made in a unit test: its one visible trace, sys._MEIPASS, is set instead.
    shutil.copytree(tiny_models[SST2], tmp_path / "bundle" / "models" / SST2.replace("/", "--"))
    shutil.copytree(tiny_models[GPT2], tmp_path / "bundle" / "models" / "someone--extra-model")
    monkeypatch.setattr(sys, "_MEIPASS", str(tmp_path / "bundle"), raising=False)
    store = ModelStore()
    assert store.status(SST2_REF) == READY and store.ensure(SST2_REF).parent.name == "models"
    rows = {row.id: row for row in inventory.entries(store)}
    assert (rows[SST2].source, rows[SST2].status) == ("inside the app", READY) and rows[SST2].size > 0
    assert rows["someone/extra-model"].status == READY
    with pytest.raises(ModelError, match="is part of this app and cannot be removed"):
        store.remove(SST2_REF)


def test_lan_visitors_get_no_models_tab_and_its_events_are_not_in_the_api():
    import gradio as gr

    from desktop.ui import models_tab
    from desktop.ui.app import AppContext

    with gr.Blocks() as visitors, gr.Tabs():
        models_tab.build(None, AppContext(local=False))
    assert visitors.blocks == {} or not any(
        getattr(b, "label", None) == "Models" for b in visitors.blocks.values()
    )
    assert not visitors.fns
    with gr.Blocks() as local, gr.Tabs():
        models_tab.build(None, AppContext(local=True))
    assert any(getattr(b, "label", None) == "Models" for b in local.blocks.values())
    assert local.fns and all(fn.api_visibility == "private" for fn in local.fns.values())
