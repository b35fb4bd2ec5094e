"""The packaged app: build/build.py's pieces, bundled models, the smoke mode, and the real build.

The tests marked ``build`` build ``dist/Pipedesk`` once per session with PyInstaller
(minutes on 2 cores) with the tiny models bundled under their real Hub ids, then run
the built executable: ``--smoke-test`` offline (HF_HUB_OFFLINE=1, inside a network
namespace with only loopback where one can be made), with no stdout/stderr (a windowed
build's situation), and the windowed start under Xvfb. The other tests are quick and
run the same code from source.
"""

from __future__ import annotations

import io
import os
import re
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from tests.support import ARTIFACTS, ROOT, free_port, need
from tests.support.build_script import BUILD_TIMEOUT, build_module

SST2 = "distilbert/distilbert-base-uncased-finetuned-sst-2-english"

build = build_module()


# --- build.py, quickly --------------------------------------------------------------------


def test_bundle_model_accepts_an_id_an_id_with_a_folder_and_an_owner_name_folder(tmp_path, tiny_models):
    folder = tiny_models[SST2]
    assert build.parse_bundle(f"{SST2}={folder}") == build.BundleRequest(SST2, folder)
    assert build.parse_bundle(str(folder)) == build.BundleRequest(SST2, folder)  # owner--name folder
    assert build.parse_bundle("openai-community/gpt2") == build.BundleRequest("openai-community/gpt2")
    plain = tmp_path / "my-model"
    plain.mkdir()
    with pytest.raises(build.BuildError, match="owner/name=PATH"):
        build.parse_bundle(str(plain))
    with pytest.raises(build.BuildError, match="not a Hub id"):
        build.parse_bundle(f"no spaces please={folder}")
    with pytest.raises(build.BuildError, match="neither a Hub id"):
        build.parse_bundle("not/a/model id")


def test_staging_copies_what_the_runtime_reads_and_forgets_earlier_models(tmp_path, tiny_models):
    source = tmp_path / "downloaded"
    shutil.copytree(tiny_models[SST2], source)
    for junk in ("model.onnx", "pytorch_model.bin", "README.md", ".git/HEAD", "flax_model.msgpack"):
        (source / junk).parent.mkdir(parents=True, exist_ok=True)
        (source / junk).write_text("not needed")
    stage = tmp_path / "stage"
    sizes = build.stage_models([build.BundleRequest(SST2, source)], stage)
    copied = sorted(
        p.name for p in (stage / "distilbert--distilbert-base-uncased-finetuned-sst-2-english").iterdir()
    )
    assert copied == sorted(p.name for p in tiny_models[SST2].iterdir() if p.is_file())
    assert sizes[SST2] == sum(p.stat().st_size for p in tiny_models[SST2].iterdir() if p.is_file())
    build.stage_models([], stage)
    assert list(stage.iterdir()) == [], "a model from an earlier build must not be bundled again"
    with pytest.raises(build.BuildError, match="not a model folder"):
        build.stage_models([build.BundleRequest("me/empty", tmp_path)], stage)
    with pytest.raises(build.BuildError, match="given twice"):
        build.stage_models([build.BundleRequest(SST2, source)] * 2, stage)


def test_bad_bundle_option_exits_2_with_one_line(tmp_path):
    done = subprocess.run(
        [sys.executable, str(ROOT / "build" / "build.py"), "--bundle-model", str(tmp_path / "missing")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2
    assert done.stderr.strip().startswith("build: error: --bundle-model")
    assert len(done.stderr.strip().splitlines()) == 1


# --- bundled models and the smoke mode, from source ---------------------------------------


@pytest.fixture
def fake_bundle(tmp_path, tiny_models, monkeypatch):
    """A folder laid out like a PyInstaller bundle (``sys._MEIPASS``) holding the tiny models."""
    bundle = tmp_path / "bundle"
    build.stage_models(
        [build.BundleRequest(repo, path) for repo, path in tiny_models.items()], bundle / "models"
    )
    shutil.copytree(ROOT / "assets", bundle / "assets")
    monkeypatch.setattr(sys, "_MEIPASS", str(bundle), raising=False)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")  # nothing listens: any download would fail
    return bundle


def test_bundled_models_are_ready_with_no_download(fake_bundle, tiny_models):
    from desktop.engine.runtime import Runtime
    from desktop.models import ModelStore, bundled
    from desktop.tasks import get

    assert bundled.bundled_repos() == sorted(tiny_models)
    store = ModelStore()
    ref = get("sentiment").default_model
    inside = fake_bundle / "models" / "distilbert--distilbert-base-uncased-finetuned-sst-2-english"
    assert bundled.bundled_path(ref) == inside
    assert store.local_path(ref) == inside
    assert store.status(ref) == "ready"
    result = get("sentiment").predict(Runtime(device="cpu", store=store), "I love this product!", "")
    assert result.data["label"] == "POSITIVE"
    assert not store.root.exists() or not any(store.root.rglob("*.safetensors")), "nothing was downloaded"


def test_smoke_mode_calls_every_task_over_http_and_passes(fake_bundle, tiny_models):
    from desktop.shell import smoke
    from desktop.tasks import TASKS

    out = io.StringIO()
    assert smoke.run(device="cpu", out=out) == 0, out.getvalue()
    report = out.getvalue()
    assert f"{len(tiny_models)} bundled models" in report
    assert re.search(r"engine process \d+", report), report  # answered by the engine process
    for task in TASKS:
        assert any(line.startswith(f"ok   {task} ") for line in report.splitlines()), report
    assert "ok   classify (image)" in report and "ok   page" in report
    _assert_speech_and_objects(report)
    assert "Smoke test passed" in report


def _assert_speech_and_objects(report: str) -> None:
    """The smoke test's uploaded recording was transcribed and its photo went through Objects."""
    lines = {line.split()[1]: line for line in report.splitlines() if line.startswith(("ok ", "FAIL"))}
    assert lines["transcribe"].startswith("ok") and lines["transcribe"].endswith("'a tone'"), report
    assert lines["detect"].startswith("ok") and '{"image": ' in lines["detect"], report


def test_smoke_mode_fails_and_names_the_tasks_whose_models_are_missing(monkeypatch, tmp_path):
    from desktop.shell import smoke

    shutil.copytree(ROOT / "assets", tmp_path / "empty-bundle" / "assets")
    monkeypatch.setattr(sys, "_MEIPASS", str(tmp_path / "empty-bundle"), raising=False)
    monkeypatch.setattr(smoke, "CALL_TIMEOUT", 60.0)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    out = io.StringIO()
    assert smoke.run(device="cpu", out=out) == 1
    report = out.getvalue()
    assert "FAIL sentiment" in report and "not downloaded yet" in report
    assert "Smoke test FAILED (" in report and "summarize" in report.splitlines()[-1]


def test_smoke_calls_match_every_tasks_public_api():
    from desktop.shell.smoke import task_calls
    from desktop.tasks import TASKS
    from desktop.ui.handlers import public_parameters

    image = {"path": "x.png", "meta": {"_type": "gradio.FileData"}}
    audio = {"path": "x.wav", "meta": {"_type": "gradio.FileData"}}
    calls = task_calls(TASKS.values(), image, audio)
    assert [c.label for c in calls if "(" not in c.label] == list(TASKS)
    for call in calls:
        assert len(call.data) == len(public_parameters(TASKS[call.api])), call
    assert any(call.data[:1] == ("Image",) and image in call.data for call in calls)
    assert next(call for call in calls if call.api == "transcribe").data[0] == audio
    assert next(call for call in calls if call.api == "detect").data[0] == image


# --- the real build ----------------------------------------------------------------------


def _can_isolate_network() -> bool:
    if not (shutil.which("unshare") and shutil.which("ip")):
        return False
    probe = subprocess.run(
        ["unshare", "-n", "ip", "link", "set", "lo", "up"], capture_output=True, timeout=10
    )
    return probe.returncode == 0


def _loopback_only(command: list[str]) -> list[str]:
    """``command`` in a new network namespace whose only interface is loopback."""
    return ["unshare", "-n", "sh", "-c", 'ip link set lo up && exec "$@"', "sh", *command]


def _snapshot(folder: Path) -> dict[str, int]:
    """Every file under ``folder`` with its modification time."""
    return {
        os.path.join(parent, name): os.lstat(os.path.join(parent, name)).st_mtime_ns
        for parent, _dirs, names in os.walk(folder)
        for name in names
    }


def _app_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HF_", "PIPEDESK_"))}
    env.update(PIPEDESK_HOME=str(tmp_path / "home"), HOME=str(tmp_path / "user"), HF_HUB_OFFLINE="1", **extra)
    return env


@pytest.mark.build
@pytest.mark.timeout(BUILD_TIMEOUT + 300)
def test_packaged_app_answers_every_task_with_the_network_off(packaged_app, tiny_models, tmp_path):
    from desktop.tasks import TASKS

    isolated = _can_isolate_network()
    # Decided before the run: a check that did not happen is a skip, never a pass that says "skipped".
    need(isolated, "could not make a network namespace (unshare -n) to run the app with the network off")
    command = [str(packaged_app), "--smoke-test"]
    env = _app_env(tmp_path)
    before = _snapshot(packaged_app.parent)
    done = subprocess.run(_loopback_only(command), env=env, capture_output=True, text=True, timeout=300)
    report = done.stdout
    assert done.returncode == 0, report + done.stderr[-3000:]
    assert "packaged build" in report and f"{len(tiny_models)} bundled models" in report
    assert re.search(r"engine process \d+", report), report  # the tasks answered through a frozen spawn
    for task in TASKS:
        assert any(line.startswith(f"ok   {task} ") for line in report.splitlines()), report
    assert "ok   classify (image)" in report
    _assert_speech_and_objects(report)  # PyAV's FFmpeg and the Whisper/YOLOS code are in the build
    assert not (tmp_path / "user" / ".cache" / "huggingface").exists(), "wrote to ~/.cache/huggingface"
    assert (tmp_path / "home" / "logs" / "pipedesk.log").is_file()
    after = _snapshot(packaged_app.parent)
    changed = sorted(set(after.items()) ^ set(before.items()))
    assert not changed, f"the app wrote into its own folder: {changed[:10]}"
    # The Ray engine stays out of the desktop app (it is pipedesk[cluster]'s); pyarrow is in (Parquet).
    bundled = {path.name for path in (packaged_app.parent / "_internal").iterdir()}
    assert "ray" not in bundled and "pyarrow" in bundled


@pytest.mark.build
@pytest.mark.timeout(BUILD_TIMEOUT + 300)
def test_packaged_app_runs_with_no_stdout_or_stderr(packaged_app, tmp_path):
    """A windowed build starts with sys.stdout and sys.stderr set to None; the log file still tells."""
    env = _app_env(tmp_path)
    done = subprocess.run(
        ["sh", "-c", 'exec "$@" >&- 2>&-', "sh", str(packaged_app), "--smoke-test"], env=env, timeout=300
    )
    log = (tmp_path / "home" / "logs" / "pipedesk.log").read_text(encoding="utf-8")
    assert done.returncode == 0, log[-4000:]
    assert "Smoke test passed" in log


@pytest.mark.build
@pytest.mark.timeout(BUILD_TIMEOUT + 300)
def test_packaged_app_window_shows_the_ui_under_xvfb_and_closes(packaged_app, display, tmp_path):
    """Double-click start of the built app: the Qt window shows the Gradio UI; closing it ends the app."""
    from tests.support.window_driver import TITLE, DevTools, close_window, find_window, refused, screenshot

    devtools = free_port()
    env = _app_env(tmp_path, DISPLAY=display, QTWEBENGINE_REMOTE_DEBUGGING=f"127.0.0.1:{devtools}")
    env.pop("WAYLAND_DISPLAY", None)
    app = subprocess.Popen(
        [str(packaged_app)], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    lines: list[str] = []
    threading.Thread(target=lambda: lines.extend(app.stdout), daemon=True).start()
    try:
        wid = find_window(display, TITLE, timeout=60)
        assert wid, "no window appeared:\n" + "".join(lines)
        deadline = time.monotonic() + 120
        while not (found := re.search(r"running at (http://127\.0\.0\.1:(\d+)/)", "".join(lines))):
            assert app.poll() is None and time.monotonic() < deadline, "no server:\n" + "".join(lines)
            time.sleep(0.2)
        tools = DevTools(devtools)
        while time.monotonic() < deadline:
            if tools.page()["url"] == found.group(1) and tools.evaluate(
                "!!document.querySelector('#run-sentiment')"
            ):
                break
            time.sleep(0.5)
        assert tools.evaluate("document.title") == "Pipedesk"
        assert tools.evaluate("!!document.querySelector('#run-sentiment')"), "the window does not show the UI"
        time.sleep(1.0)  # let the UI paint
        ARTIFACTS.mkdir(exist_ok=True)
        colours, top = screenshot(display, ARTIFACTS / "packaged-window.png")
        assert colours > 200 and top < 0.9, f"the window looks blank: {colours} colours, top {top:.0%}"
        close_window(display, wid)
        assert app.wait(timeout=30) == 0, "".join(lines)
        assert refused(int(found.group(2)))
    finally:
        if app.poll() is None:
            app.kill()
            app.wait(timeout=10)


@pytest.mark.build
@pytest.mark.timeout(BUILD_TIMEOUT + 300)
def test_ci_smoke_helper_puts_models_in_for_the_run_only(packaged_app, tiny_models, tmp_path, capfd):
    """``build.py --smoke-test DIR`` (the workflow's check): extra models in for the run, then out."""
    extra = tmp_path / "models" / "pipedesk-tests--extra-sentiment"
    shutil.copytree(tiny_models[SST2], extra)
    assert build.smoke_test(packaged_app.parent, extra.parent, timeout=300) == 0
    assert f"{len(tiny_models) + 1} bundled models" in capfd.readouterr().out
    assert not (packaged_app.parent / "_internal" / "models" / extra.name).exists()
    assert len(list((packaged_app.parent / "_internal" / "models").iterdir())) == len(tiny_models)
