"""The runtime on real tiny models: model lookup, warm cache, limits, generation, long inputs."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from desktop.engine.device import choose_device
from desktop.engine.runtime import Runtime
from desktop.engine.start import local_door
from desktop.errors import ModelError, UserError
from desktop.models import ModelStore
from desktop.models.compat import check_fits
from desktop.tasks import TASKS
from desktop.tasks.spec import ModelRef

SST2 = "distilbert/distilbert-base-uncased-finetuned-sst-2-english"
STARS = "nlptown/bert-base-multilingual-uncased-sentiment"
STAR_LABELS = {"1 star", "2 stars", "3 stars", "4 stars", "5 stars"}


def test_auto_picks_the_gpu_there_is_and_bad_devices_are_refused(monkeypatch):
    import torch

    mps = getattr(torch.backends, "mps", None)
    has_mps = bool(mps and mps.is_available())
    expected = "cuda" if torch.cuda.is_available() else "mps" if has_mps else "cpu"
    assert choose_device("auto") == expected
    assert choose_device(None) == expected
    monkeypatch.setenv("PIPEDESK_DEVICE", "cpu")
    assert choose_device(None) == "cpu"  # the environment overrides auto
    assert choose_device("cpu") == "cpu"
    if not torch.cuda.is_available():
        with pytest.raises(UserError, match="no CUDA GPU"):
            choose_device("cuda:0")
    with pytest.raises(UserError, match="Unknown device"):
        choose_device("tpu")


def test_the_device_saved_in_settings_is_used_after_the_flag_and_the_environment(monkeypatch):
    """Settings → Device: used from the next start (a new Runtime); a saved device this computer does
    not have (or a name from another version) falls back to auto instead of stopping the app, while
    the same device asked for by --device is refused in words."""
    import torch

    from desktop import settings
    from desktop.engine.device import detected

    auto = choose_device("auto")
    settings.update(device="cpu")
    assert Runtime().device == "cpu" and Runtime("auto").device == auto
    has_mps = bool(getattr(torch.backends, "mps", None) and torch.backends.mps.is_available())
    if not has_mps:
        settings.update(device="mps")
        assert Runtime().device == auto
        with pytest.raises(UserError, match="Metal GPU is not available"):
            Runtime("mps").device  # noqa: B018
    settings.update(device="tpu")
    assert Runtime().device == auto
    monkeypatch.setenv("PIPEDESK_DEVICE", "cpu")
    settings.update(device="auto")
    assert Runtime().device == "cpu"
    choices, found = detected()
    assert choices[:2] == [("Auto (a GPU when there is one)", "auto"), ("CPU", "cpu")]
    assert found.startswith("Found: ") and "a CPU with" in found
    gpus = torch.cuda.device_count() if torch.cuda.is_available() else 0
    assert [value for _label, value in choices if value.startswith("cuda")] == [
        f"cuda:{i}" for i in range(gpus)
    ]
    if not gpus:
        assert "no NVIDIA GPU" in found


def test_model_names_resolve_to_pinned_refs_folders_or_errors(runtime, tiny_models, tmp_path):
    spec = TASKS["sentiment"]
    assert runtime.resolve(spec, None) == spec.default_model
    assert runtime.resolve(spec, "BERT multilingual (1-5 stars)").repo == STARS
    assert runtime.resolve(spec, SST2).revision == "714eb0f"  # pinned, even when typed
    assert runtime.resolve(spec, "someone/other-model") == ModelRef("someone/other-model", "main")
    assert runtime.resolve(spec, str(tiny_models[SST2])) == tiny_models[SST2]
    (tmp_path / "notamodel").mkdir()
    with pytest.raises(ModelError, match="not a model"):
        runtime.resolve(spec, str(tmp_path / "notamodel"))
    with pytest.raises(ModelError, match="does not exist"):
        runtime.resolve(spec, str(tmp_path / "missing"))
    with pytest.raises(ModelError, match="no model called"):
        runtime.resolve(spec, "not a model at all!")


def test_a_model_of_the_wrong_kind_is_refused_with_the_reason(tiny_models):
    with pytest.raises(ModelError, match="does not fit text classification.*GPT2LMHeadModel"):
        check_fits("text-classification", tiny_models["openai-community/gpt2"], "gpt2")
    check_fits("text-classification", tiny_models[SST2], "sst2")


def test_unknown_hub_model_gives_a_clear_error(runtime):
    with pytest.raises(ModelError, match="No model called 'nobody/does-not-exist'"):
        TASKS["sentiment"].predict(runtime, "A fine sentence.", "nobody/does-not-exist")


def test_switching_models_never_reloads_one_already_in_memory(runtime):
    spec = TASKS["sentiment"]
    spec.predict(runtime, "I love this product!", SST2)
    spec.predict(runtime, "I love this product!", STARS)
    loads = runtime.load_count
    for _ in range(3):
        assert spec.predict(runtime, "I love this product!", SST2).data["label"] == "POSITIVE"
        assert spec.predict(runtime, "I love this product!", STARS).data["label"] in STAR_LABELS
    assert runtime.load_count == loads


def test_a_slow_download_holds_up_no_other_model(tiny_models, tmp_path):
    """While one model downloads (slowly), another model answers: loading locks per model, and the
    device lock is held only while a model runs (issue #10, reliability). Decided by order, not by
    time: the answer must come while the other model's download is still under way."""
    import threading
    import time

    from tests.support.hub_server import HubServer

    with HubServer(tiny_models) as slow, pytest.MonkeyPatch.context() as patch:
        patch.setenv("HF_ENDPOINT", slow.url)
        store = ModelStore(tmp_path / "models")
        runtime = Runtime(device="cpu", store=store)
        spec = TASKS["sentiment"]
        assert spec.predict(runtime, "I love it", SST2).data["label"] == "POSITIVE"  # installed
        slow.throttle_bytes_per_s, slow.chunk_size = 10_000, 4_096  # the other model: about 20 s
        downloading = threading.Thread(target=lambda: spec.predict(runtime, "I love it", STARS), daemon=True)
        downloading.start()
        deadline = time.monotonic() + 30
        while not store.downloading() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert store.downloading(), "the other model's download never started"
        assert spec.predict(runtime, "What a great movie", SST2).data["label"] == "POSITIVE"
        still_downloading = store.downloading()
        slow.throttle_bytes_per_s = 0  # let the download finish
        downloading.join(60)
    assert still_downloading, "the installed model answered only after another model's download ended"


def test_memory_budget_evicts_the_least_recently_used_model(hub, shared_models_dir):
    store = ModelStore(shared_models_dir)
    small = Runtime(device="cpu", store=store, budget_bytes=1)  # room for one model only
    spec = TASKS["sentiment"]
    spec.predict(small, "I love it", SST2)
    spec.predict(small, "I love it", STARS)
    assert small.loaded_models() == ["BERT multilingual (1-5 stars)"]
    assert small.memory_in_use() > 0


def test_the_model_of_the_owners_last_request_is_loaded_while_the_app_starts(hub, tmp_path):
    """What the person asked last is in memory before they ask again (Runtime.preload_last, run by
    the engine as it warms up): the owner's requests are remembered, a visitor's are not; a model
    removed since is not downloaded again at start-up; a damaged note is ignored."""
    from desktop.engine.who import Who

    root = tmp_path / "models"
    spec = TASKS["sentiment"]
    first = Runtime(device="cpu", store=ModelStore(root))
    spec.predict(first, "I love it", SST2)
    spec.predict(first, "I love it", STARS)
    first.predict(spec, "I love it", SST2, who=Who.VISITOR)  # a visitor's request: not remembered

    again = Runtime(device="cpu", store=ModelStore(root))
    assert again.loaded_models() == []
    again.warm_up(preload=True)
    assert again.loaded_models() == ["BERT multilingual (1-5 stars)"] and again.load_count == 1
    assert spec.predict(again, "I love it", STARS).data["label"] in STAR_LABELS
    assert again.load_count == 1  # answered from memory

    ModelStore(root).remove(first.resolve(spec, STARS))
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")  # a download would fail: none is tried
        removed = Runtime(device="cpu", store=ModelStore(root))
        assert removed.preload_last() is None and removed.loaded_models() == []
    (root / "last.json").write_text("{not json")
    assert Runtime(device="cpu", store=ModelStore(root)).preload_last() is None


def test_over_long_text_is_truncated_with_a_note_not_a_crash(runtime):
    result = TASKS["sentiment"].predict(runtime, "I love this product! " * 400, SST2)
    assert result.data["label"] in {"POSITIVE", "NEGATIVE"}
    assert any("only the beginning was analysed" in note for note in result.notes)


def test_greedy_generation_is_repeatable_and_a_seed_fixes_sampling(runtime):
    gen = TASKS["generate"]
    a = gen.predict(runtime, "Once upon a time", None, 12, 0.0, 1.0, -1).data["text"]
    b = gen.predict(runtime, "Once upon a time", None, 12, 0.0, 1.0, -1).data["text"]
    assert a == b and a.startswith("Once upon a time") and len(a) > len("Once upon a time")
    s1 = gen.predict(runtime, "Once upon a time", None, 12, 1.5, 1.0, 1234).data["text"]
    s2 = gen.predict(runtime, "Once upon a time", None, 12, 1.5, 1.0, 1234).data["text"]
    assert s1 == s2


def test_generation_streams_growing_text_to_the_owner_and_to_visitors(runtime):
    """A visitor's generation runs on the visitors' lane (desktop/engine/lane.py): the same stream."""
    streams = []
    for who in (
        runtime,
        local_door(runtime).visitors(),
    ):  # the owner's first: it downloads the model visitors use
        stream = TASKS["generate"].stream(who, "The weather today", None, 8, 0.0, 1.0, -1)
        streams.append([r.data["text"] for r in stream])
    for pieces in streams:
        assert len(pieces) >= 2
        assert all(later.startswith(earlier) for earlier, later in zip(pieces, pieces[1:], strict=False))
    assert streams[1][-1] == streams[0][-1]


def test_long_text_is_translated_in_parts_not_cut(runtime):
    text = " ".join(f"This is sentence number {i} of a long letter." for i in range(30))
    result = TASKS["translate"].predict(runtime, text)
    assert result.data["chunks"] > 1
    assert result.data["translation"]
    assert any("parts" in note for note in result.notes)


def test_summary_respects_lengths_and_long_inputs_are_summarized_in_parts(runtime):
    article = " ".join(f"The council met on day {i} and agreed a new budget for the town." for i in range(40))
    result = TASKS["summarize"].predict(runtime, article, None, 5, 40)
    assert result.data["summary"]
    assert result.data["chunks"] > 1
    with pytest.raises(UserError, match="must not be more than max length"):
        TASKS["summarize"].predict(runtime, article, None, 50, 10)


def test_classify_routes_text_and_images(runtime, tmp_path):
    from PIL import Image

    cls = TASKS["classify"]
    assert cls.predict(runtime, "Text", "I love this product!", None, None).data["label"] == "POSITIVE"
    picture = tmp_path / "photo.png"
    Image.new("RGB", (48, 40), (30, 120, 200)).save(picture)
    result = cls.predict(runtime, "Image", None, str(picture), None)
    assert len(result.data["scores"]) == 5
    assert sum(result.data["scores"].values()) <= 1.0001
    not_image = tmp_path / "notes.png"
    not_image.write_text("hello, I am text")
    with pytest.raises(UserError, match="is not an image"):
        cls.predict(runtime, "Image", None, str(not_image), None)
    with pytest.raises(ModelError, match="does not fit image classification"):
        cls.predict(runtime, "Image", None, str(picture), SST2)


def test_an_image_too_large_to_decode_safely_is_refused(runtime, tmp_path):
    from PIL import Image

    huge = tmp_path / "huge.png"
    Image.new("1", (9000, 9000)).save(huge)  # 81 megapixels, tiny file
    with pytest.raises(UserError, match="too large to decode safely"):
        TASKS["classify"].predict(runtime, "Image", None, str(huge), None)


def test_downloads_go_to_the_app_cache_only(hub, tmp_path, pipedesk_home):
    store = ModelStore()  # PIPEDESK_HOME of this test
    folder = store.ensure(TASKS["sentiment"].default_model)
    assert pipedesk_home in folder.parents
    assert (folder / "config.json").is_file()
    manifest = json.loads(next((store.root / "manifests").glob("*.json")).read_text())
    assert manifest["repo"] == SST2 and manifest["files"]
    assert not any(name.endswith(".bin") for name in manifest["files"])  # safetensors only
    assert not (
        Path.home() / ".cache" / "huggingface" / "hub" / f"models--{SST2.replace('/', '--')}"
    ).exists()
