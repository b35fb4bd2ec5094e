"""``pipedesk models ...`` as real subprocesses against the local Hub."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

from desktop.models import ModelStore
from desktop.tasks import TASKS
from tests.support import ROOT, cli_env, run_cli
from tests.support.hub_server import HubServer, wait_for
from tests.support.tiny_models import GPT2, SST2, STARS

STARS_REF = TASKS["sentiment"].alternatives[0]


def _models(env: dict[str, str]) -> dict[str, dict]:
    out = run_cli("models", "list", "--json", env=env)
    assert out.returncode == 0, out.stderr
    return {m["id"]: m for m in json.loads(out.stdout)["models"]}


def test_download_shows_a_bar_then_list_and_path_show_the_model(hub, pipedesk_home):
    env = cli_env(pipedesk_home, hub)
    before = _models(env)
    assert before[SST2]["status"] == "not downloaded" and before[SST2]["tasks"] == ["sentiment", "classify"]

    out = run_cli("models", "download", "DistilBERT (SST-2, English)", env=env)
    assert out.returncode == 0, out.stderr
    assert "DistilBERT (SST-2, English) is ready (200 KB)" in out.stdout
    assert "Downloading DistilBERT (SST-2, English): 4 files, 200 KB" in out.stderr
    assert "100%" in out.stderr and "200k/200k" in out.stderr  # the terminal bar reached the end

    listed = run_cli("models", "list", env=env)
    line = next(x for x in listed.stdout.splitlines() if x.startswith(SST2))
    assert line.split()[-5:] == ["ready", "200", "KB", "just", "now"]
    assert "free" in listed.stdout.splitlines()[-1]
    path = run_cli("models", "path", env=env)
    assert path.stdout.strip() == str(pipedesk_home / "cache" / "models")

    missing = run_cli("models", "download", "nobody/nothing", env=env)
    assert missing.returncode == 2 and "No model called 'nobody/nothing'" in missing.stderr


def test_import_a_folder_then_run_by_its_name_and_bad_folders_are_refused(
    hub, pipedesk_home, tiny_models, tmp_path
):
    env = cli_env(pipedesk_home, hub)
    (tmp_path / "holiday photos").mkdir()
    not_model = run_cli("models", "import", str(tmp_path / "holiday photos"), "--task", "sentiment", env=env)
    assert not_model.returncode == 2 and "is not a model: it has no config.json" in not_model.stderr
    wrong = run_cli("models", "import", str(tiny_models[GPT2]), "--task", "sentiment", env=env)
    assert wrong.returncode == 2 and "does not fit text classification" in wrong.stderr

    ok = run_cli(
        "models", "import", str(tiny_models[SST2]), "--task", "sentiment", "--name", "office", env=env
    )
    assert ok.returncode == 0, ok.stderr
    assert "Imported office for sentiment" in ok.stdout
    run = run_cli("run", "sentiment", "I love this product!", "--model", "office", "--json", env=env)
    assert run.returncode == 0, run.stderr
    assert json.loads(run.stdout)["result"]["label"] == "POSITIVE"
    assert _models(env)["office"]["status"] == "ready" and _models(env)["office"]["last_used"]

    gone = run_cli("models", "remove", "office", env=env)
    assert gone.returncode == 0 and "Removed office" in gone.stdout
    assert "office" not in _models(env)


def test_verify_finds_a_damaged_file_repair_fixes_it_and_remove_deletes(hub, pipedesk_home):
    env = cli_env(pipedesk_home, hub)
    folder = ModelStore().ensure(STARS_REF)
    with open((folder / "model.safetensors").resolve(), "r+b") as fh:
        fh.truncate(500)

    damaged = run_cli("models", "verify", env=env)
    assert damaged.returncode == 1
    assert f"{STARS}: damaged" in damaged.stdout and "model.safetensors: wrong size (500 of" in damaged.stdout
    repaired = run_cli("models", "verify", STARS, "--repair", env=env)
    assert repaired.returncode == 0, repaired.stderr + repaired.stdout
    assert "repaired 1 file(s)" in repaired.stdout and f"{STARS}: ready" in repaired.stdout

    removed = run_cli("models", "remove", STARS, env=env)
    assert removed.returncode == 0 and "freed 201 KB" in removed.stdout
    assert _models(env)[STARS]["status"] == "not downloaded"
    again = run_cli("models", "remove", STARS, env=env)
    assert again.returncode == 2 and "nothing to remove" in again.stderr


def test_offline_a_missing_model_is_refused_with_the_message_and_no_request(hub, pipedesk_home):
    requests = len(hub.requests)
    out = run_cli("models", "download", GPT2, env=cli_env(pipedesk_home, hub, HF_HUB_OFFLINE="1"))
    assert out.returncode == 2
    assert out.stderr.strip() == (
        "pipedesk: error: GPT-2 (English) is not downloaded yet and this computer is offline: "
        "connect once, or import it from a folder."
    )
    assert len(hub.requests) == requests


def test_ctrl_c_cancels_a_download_and_keeps_nothing(tiny_models, pipedesk_home):
    with HubServer(tiny_models) as slow:
        slow.throttle_bytes_per_s, slow.chunk_size = 30_000, 16_384
        proc = subprocess.Popen(
            [sys.executable, "-m", "desktop", "models", "download", STARS],
            env=cli_env(pipedesk_home, slow),
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        storage = ModelStore().storage(STARS_REF)
        try:
            assert wait_for(lambda: any((storage / "blobs").glob("*.incomplete")), 30)
            proc.send_signal(signal.SIGINT)
            _out, err = proc.communicate(timeout=20)
        finally:
            if proc.poll() is None:
                os.kill(proc.pid, signal.SIGKILL)
        assert proc.returncode == 130, err
        assert "The download of BERT multilingual (1-5 stars) was cancelled; nothing was kept." in err
        assert not storage.exists()


def test_move_changes_the_models_folder_and_the_models_still_work(hub, pipedesk_home, tmp_path):
    env = cli_env(pipedesk_home, hub)
    ModelStore().ensure(TASKS["sentiment"].default_model)
    new = tmp_path / "big disk" / "models"
    moved = run_cli("models", "move", str(new), env=env)
    assert moved.returncode == 0, moved.stderr
    assert moved.stdout.strip() == f"Models folder is now {new}; the models were moved there."
    assert run_cli("models", "path", env=env).stdout.strip() == str(new)
    again = run_cli("models", "move", str(new), env=env)
    assert again.stdout.strip() == f"Models are already kept in {new}: nothing was moved."
    assert _models(env)[SST2]["status"] == "ready"
    assert run_cli("models", "verify", SST2, env=env).returncode == 0
    assert not Path(pipedesk_home / "cache" / "models" / "hub").exists()
    inside = run_cli("models", "move", str(new / "inner"), env=env)
    assert inside.returncode == 2 and "cannot be inside the current one" in inside.stderr


def test_a_custom_hub_id_is_checked_against_the_task_and_listed(hub, pipedesk_home, tiny_models):
    env = cli_env(pipedesk_home, hub)
    hub.add_repo("someone/tiny-writer", tiny_models[GPT2])
    hub.add_repo("someone/tiny-sentiment", tiny_models[SST2])
    wrong = run_cli("models", "download", "someone/tiny-writer", "--task", "sentiment", env=env)
    assert wrong.returncode == 2 and "does not fit text classification" in wrong.stderr
    assert "someone/tiny-writer" not in _models(env)
    assert not (pipedesk_home / "cache/models/hub/models--someone--tiny-writer").exists()  # nothing kept

    ok = run_cli("models", "download", "someone/tiny-sentiment", "--task", "sentiment", env=env)
    assert ok.returncode == 0, ok.stderr
    row = _models(env)["someone/tiny-sentiment"]
    assert (row["status"], row["tasks"], row["source"]) == ("ready", ["sentiment"], "added from the Hub")
