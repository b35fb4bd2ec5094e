"""``pipedesk run``, ``serve`` and ``doctor`` as real subprocesses."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request

from tests.support import ROOT, cli_env, free_port, run_cli

SST2 = "distilbert/distilbert-base-uncased-finetuned-sst-2-english"


def test_run_prints_a_prediction_and_json(hub, pipedesk_home):
    env = cli_env(pipedesk_home, hub)
    plain = run_cli("run", "sentiment", "I love this product!", env=env)
    assert plain.returncode == 0, plain.stderr
    assert plain.stdout.startswith("POSITIVE")
    as_json = run_cli("run", "ner", "My name is Clara and I live in Berkeley, California.", "--json", env=env)
    assert as_json.returncode == 0, as_json.stderr
    payload = json.loads(as_json.stdout)
    assert payload["task"] == "ner"
    assert {"Clara", "Berkeley"} <= {e["entity"] for e in payload["result"]["entities"]}


def test_run_reads_stdin_and_takes_task_options(hub, pipedesk_home):
    env = cli_env(pipedesk_home, hub)
    out = run_cli(
        "run",
        "generate",
        "-",
        "--max-new-tokens",
        "5",
        "--temperature",
        "0",
        "--json",
        env=env,
        stdin="Once upon a time",
    )
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["result"]["text"].startswith("Once upon a time")


def test_bad_input_exits_2_with_one_line_on_stderr(hub, pipedesk_home):
    env = cli_env(pipedesk_home, hub)
    short = run_cli("run", "sentiment", "ok", env=env)
    assert short.returncode == 2
    assert short.stderr.strip().splitlines()[-1].startswith("pipedesk: error: The text is too short")
    assert len(short.stderr.strip().splitlines()) == 1
    missing = run_cli("run", "sentiment", "A fine text", "--model", "nobody/does-not-exist", env=env)
    assert missing.returncode == 2 and "No model called" in missing.stderr
    wrong = run_cli("run", "sentiment", "A fine text", "--model", "openai-community/gpt2", env=env)
    assert wrong.returncode == 2 and "does not fit" in wrong.stderr
    device = run_cli("run", "sentiment", "A fine text", "--device", "quantum", env=env)
    assert device.returncode == 2 and "Unknown device" in device.stderr


def test_cli_messages_speak_of_the_command_line_not_of_the_window(hub, pipedesk_home, tiny_models):
    env = cli_env(pipedesk_home, hub)
    empty = run_cli("run", "sentiment", "   ", env=env)
    assert empty.returncode == 2 and "box" not in empty.stderr and "empty" in empty.stderr
    flag = run_cli("run", "generate", "Once upon a time", "--max-new-tokens", "0", env=env)
    assert flag.returncode == 2
    assert "--max-new-tokens must be at least 1" in flag.stderr and "max_new_tokens" not in flag.stderr
    nan = run_cli("run", "generate", "Once upon a time", "--top-p", "nan", env=env)
    assert nan.returncode == 2 and "--top-p must be a number" in nan.stderr
    unknown = run_cli("run", "sentiment", "A fine text", "--model", "no-such-model", env=env)
    assert unknown.returncode == 2 and "no model called 'no-such-model'" in unknown.stderr
    assert "not downloaded" not in unknown.stderr
    # Models loading print no raw progress bars of their own.
    translated = run_cli("run", "translate", "Hello, how are you today?", env=env)
    assert translated.returncode == 0, translated.stderr
    assert "Loading weights" not in translated.stderr
    bars = [line for line in translated.stderr.replace("\r", "\n").splitlines() if "%|" in line]
    assert all(line.lstrip().startswith("Downloading English") for line in bars), bars  # ours only
    imported = run_cli(
        "models",
        "import",
        str(tiny_models["google/vit-base-patch16-224"]),
        "--task",
        "classify",
        "--name",
        "holiday-photos",
        env=env,
    )
    assert imported.returncode == 0, imported.stderr
    assert "pipedesk run classify --image PHOTO --model 'holiday-photos'" in imported.stdout
    doctor = run_cli("doctor", env=env)
    assert "holiday-photos (imported)" in doctor.stdout and "Models installed: 0" not in doctor.stdout


# A PyTorch .bin whose pickle would run a command when loaded with weights_only=False.
EVIL_BIN = """
import os, sys, torch
class Payload:
    def __reduce__(self):
        return (os.system, ("touch " + sys.argv[2],))
torch.save({"weight": Payload()}, sys.argv[1])
"""


def test_pickled_weights_that_hold_code_are_refused_in_one_sentence(
    hub, pipedesk_home, tiny_models, tmp_path
):
    import shutil

    folder = tmp_path / "downloaded-model"
    shutil.copytree(tiny_models["distilbert/distilbert-base-uncased-finetuned-sst-2-english"], folder)
    for weights in folder.glob("*.safetensors"):
        weights.unlink()
    ran = tmp_path / "the-pickle-ran"
    made = subprocess.run([sys.executable, "-c", EVIL_BIN, str(folder / "pytorch_model.bin"), str(ran)])
    assert made.returncode == 0
    out = run_cli("run", "sentiment", "Nice phone.", "--model", str(folder), env=cli_env(pipedesk_home, hub))
    assert out.returncode == 2
    (said,) = [line for line in out.stderr.splitlines() if line.startswith("pipedesk: error:")]
    assert "hold code, not only numbers" in said and "safetensors" in said
    assert "Traceback" not in out.stderr and "weights_only" not in out.stderr
    assert not ran.exists()


def test_doctor_reports_versions_device_and_folders(pipedesk_home):
    out = run_cli("doctor", "--json", env=cli_env(pipedesk_home))
    assert out.returncode == 0, out.stderr
    report = json.loads(out.stdout)
    assert report["device"] == "cpu"
    assert report["packages"]["torch"].startswith("2.")
    assert all(str(pipedesk_home) in str(path) for path in report["folders"].values())
    text = run_cli("doctor", env=cli_env(pipedesk_home))
    assert "Folders" in text.stdout and "Device" in text.stdout


def _wait_for(url: str, proc: subprocess.Popen, timeout: float = 120) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert proc.poll() is None, proc.stderr.read() if proc.stderr else "server exited"
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                return response.read().decode()
        except OSError:
            time.sleep(0.5)
    raise AssertionError(f"{url} did not answer in {timeout}s")


def test_serve_answers_http_and_stops_on_interrupt(hub, pipedesk_home):

    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "desktop", "serve", "--port", str(port)],
        env=cli_env(pipedesk_home, hub),
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        config = _wait_for(f"http://127.0.0.1:{port}/config", proc)
        assert "sentiment" in config
        announced = proc.stdout.readline()  # printed once the server is fully up
        assert f"is running at http://127.0.0.1:{port}/" in announced
        proc.send_signal(signal.SIGINT)
        code = proc.wait(timeout=30)
        assert code == 0, proc.stderr.read()[-2000:]
    finally:
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)


def test_telemetry_is_off_and_caches_are_private_before_libraries_import(pipedesk_home):
    code = (
        "import desktop, gradio.analytics as a, huggingface_hub.constants as c, os, json;"
        "print(json.dumps([a.analytics_enabled(), c.HF_HUB_DISABLE_TELEMETRY, c.HF_HOME,"
        " os.environ['GRADIO_TEMP_DIR']]))"
    )
    env = cli_env(pipedesk_home)
    for name in ("GRADIO_ANALYTICS_ENABLED", "HF_HUB_DISABLE_TELEMETRY", "HF_HOME", "GRADIO_TEMP_DIR"):
        env.pop(name, None)
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, cwd=ROOT)
    analytics, telemetry_off, hf_home, gradio_tmp = json.loads(out.stdout)
    assert analytics is False and telemetry_off is True
    assert hf_home.startswith(str(pipedesk_home)) and gradio_tmp.startswith(str(pipedesk_home))


def test_gradio_imports_without_rewriting_its_type_stubs(pipedesk_home):
    """Gradio rewrites its components' .pyi stubs as it imports (a third of its import time, of the
    page's start); with Pipedesk imported first it does not, and its components still work."""
    code = (
        "import desktop, gradio as gr, gradio.component_meta as m, json;"
        "box = gr.Textbox(label='Text', value='hi');"
        "print(json.dumps([m.create_or_modify_pyi.__module__, box.value, type(box).__name__]))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], env=cli_env(pipedesk_home), capture_output=True, text=True, cwd=ROOT
    )
    assert json.loads(out.stdout) == ["desktop.env", "hi", "Textbox"], out.stderr
    plain = subprocess.run(
        [sys.executable, "-c", "import gradio.component_meta as m; print(m.create_or_modify_pyi.__module__)"],
        capture_output=True, text=True, cwd=ROOT,
    )  # fmt: skip
    assert (
        plain.stdout.strip() == "gradio.component_meta"
    )  # without Pipedesk: Gradio's own (the check can fail)
