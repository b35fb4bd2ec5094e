"""The Ray engine (desktop/batch/ray_engine.py, with ray_cluster, ray_io and ray_worker).

The same file through the local engine and through Ray gives the same file (model scores within
1e-4: Ray's workers may run another number of torch threads); Parquet
in and out; a folder of inputs; models reach machines that do not share this one's folders; a worker
that dies is replaced; errors in words. One local Ray instance (2 CPUs, no dashboard) serves the
API-level tests of the module; the command-line tests start their own, as a person's run does.
"""

from __future__ import annotations

import importlib.util
import ipaddress
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from desktop.batch.ray_cluster import plan_workers
from desktop.batch.ray_worker import FileWorker
from desktop.cli import main
from desktop.engine.filerun import BatchRun
from desktop.errors import UserError
from desktop.tasks import TASKS
from tests.support import ROOT, cli_env, need, run_cli
from tests.support.recordings import make_recordings

pytestmark = pytest.mark.slow

SST2 = "distilbert/distilbert-base-uncased-finetuned-sst-2-english"
REVIEWS = [
    "I love this product!",
    "The delivery was late and the box was damaged. " * 30,  # over the tiny model's 128 tokens
    "",
    "What a great movie, truly amazing.",
    "Ça marche très bien, merci !",
    "This is terrible, I hate it.",
    "ok",
    "The film was long, but the ending made it worth it.",
]


@pytest.fixture(scope="module")
def ray_instance(hub):
    """One local Ray instance for the module's API-level tests (the engine uses a running one)."""
    need(importlib.util.find_spec("ray") is not None, 'Ray is not installed (pip install -e ".[dev]")')
    import ray

    from desktop.batch.ray_cluster import connect

    connect(None)  # as the command starts its own: listening on 127.0.0.1 only
    yield ray
    ray.shutdown()


def both_engines(task: str, source: Path, suffix: str, capsys, *extra: str) -> tuple[Path, Path, str]:
    """Run ``pipedesk batch`` on ``source`` with the local engine, then with Ray: (local, ray, stderr)."""
    local, on_ray = source.with_name(f"local{suffix}"), source.with_name(f"ray{suffix}")
    assert main(["batch", task, "-i", str(source), "-o", str(local), *extra]) == 0, capsys.readouterr().err
    capsys.readouterr()
    assert main(["batch", task, "-i", str(source), "-o", str(on_ray), "--engine", "ray", *extra]) == 0
    return local, on_ray, capsys.readouterr().err


def assert_same(ray_value, local_value, where: str = "") -> None:
    """Equal, except model scores within 1e-4: workers may run another number of torch threads than
    this process, and float sums in another order differ in the last digits (labels never do)."""
    if isinstance(local_value, dict):
        assert isinstance(ray_value, dict) and ray_value.keys() == local_value.keys(), where
        for key in local_value:
            assert_same(ray_value[key], local_value[key], f"{where}.{key}")
    elif isinstance(local_value, list):
        assert isinstance(ray_value, list) and len(ray_value) == len(local_value), where
        for index, (a, b) in enumerate(zip(ray_value, local_value, strict=True)):
            assert_same(a, b, f"{where}[{index}]")
    elif isinstance(local_value, float) and not isinstance(local_value, bool):
        assert ray_value == pytest.approx(local_value, abs=1e-4), where
    else:
        assert ray_value == local_value, where


def same_file(on_ray: Path, local: Path) -> None:
    """The Ray output holds the local output's rows, columns and words, in the same order."""
    import csv

    if local.suffix == ".jsonl":
        parse = [json.loads(line) for line in local.read_text(encoding="utf-8").splitlines()]
        assert_same([json.loads(line) for line in on_ray.read_text(encoding="utf-8").splitlines()], parse)
        return
    delimiter = "\t" if local.suffix == ".tsv" else ","

    def cells(path: Path) -> list[list[object]]:
        with path.open(encoding="utf-8-sig", newline="") as handle:
            return [[_number(cell) for cell in row] for row in csv.reader(handle, delimiter=delimiter)]

    assert_same(cells(on_ray), cells(local))


def _number(cell: str) -> object:
    try:
        return float(cell) if "." in cell else cell
    except ValueError:
        return cell


def local_values(runtime, task: str, texts: list[str | None]) -> list[dict]:
    results: dict[int, dict] = {}
    for event in BatchRun(runtime, task, ["" if t is None else t for t in texts]):
        results.update(event.results)
    return [results[row] for row in range(len(texts))]


def test_sentiment_gives_the_local_engines_csv(ray_instance, hub, tmp_path, capsys):
    source = tmp_path / "reviews.csv"
    pd.DataFrame({"id": range(1, 9), "review": REVIEWS, "stars": [5, 1, 3, 5, 4, 1, 3, 4]}).to_csv(
        source, index=False
    )
    local, on_ray, err = both_engines("sentiment", source, ".csv", capsys)
    same_file(on_ray, local)
    frame = pd.read_csv(on_ray, dtype=str, keep_default_na=False)
    assert list(frame.columns) == ["id", "review", "stars", "label", "score", "note"]
    assert set(frame["label"]) == {"POSITIVE", "NEGATIVE", ""}
    assert "is empty" in frame["note"][2] and "only the beginning was analysed" in frame["note"][1]
    assert "Ray: 1 worker, 2 CPUs each, on the Ray instance this process runs" in err
    assert "8 rows written" in err and "2 refused" in err and "1 with notes" in err


def test_ner_gives_the_local_engines_jsonl_with_entities_as_lists(ray_instance, hub, tmp_path, capsys):
    source = tmp_path / "notes.txt"
    source.write_text(
        "My name is Clara and I live in Berkeley, California.\n\nHugging Face is in New York City.\nok\n"
    )
    local, on_ray, err = both_engines("ner", source, ".jsonl", capsys)
    same_file(on_ray, local)
    rows = [json.loads(line) for line in on_ray.read_text().splitlines()]
    assert {"Clara", "Berkeley"} <= {e["entity"] for e in rows[0]["entities"]}
    assert rows[1]["entities"] is None and "is empty" in rows[1]["note"]
    assert "By entity type: " in err


def test_translation_gives_the_local_engines_tsv(ray_instance, hub, tmp_path, capsys):
    source = tmp_path / "to_translate.csv"
    texts = ["Hello, how are you today?", "The weather is lovely. We walk to the sea.", "", "Thank you."]
    pd.DataFrame({"text": texts}).to_csv(source, index=False)
    local, on_ray, _err = both_engines("translate", source, ".tsv", capsys)
    same_file(on_ray, local)
    frame = pd.read_csv(on_ray, sep="\t", dtype=str, keep_default_na=False)
    assert all(frame["translation"][i] for i in (0, 1, 3)) and "is empty" in frame["note"][2]


def test_recordings_in_a_folder_or_listed_by_relative_name_give_the_local_engines_transcripts(
    ray_instance, hub, tmp_path, capsys
):
    recordings = make_recordings(tmp_path / "made")
    folder = tmp_path / "interviews"
    (folder / "day 2").mkdir(parents=True)
    shutil.copy(recordings["tone.wav"], folder / "a.wav")
    shutil.copy(recordings["babble.wav"], folder / "day 2" / "b.wav")
    local, on_ray, _ = both_engines("transcribe", folder, ".csv", capsys)
    same_file(on_ray, local)
    rows = pd.read_csv(on_ray, keep_default_na=False)
    assert [Path(f).name for f in rows["file"]] == ["a.wav", "b.wav"]
    assert list(rows["transcript"]) == ["a tone", "hello world"]
    # Names relative to the list's folder, not to the folder the command is typed in.
    listing = folder / "list.txt"
    listing.write_text("day 2/b.wav\na.wav\nmissing.wav\n")
    local, on_ray, _ = both_engines("transcribe", listing, ".jsonl", capsys)
    same_file(on_ray, local)
    answers = [json.loads(line) for line in on_ray.read_text(encoding="utf-8").splitlines()]
    assert [a["transcript"] for a in answers[:2]] == ["hello world", "a tone"]
    assert "could not be found" in answers[2]["note"]


def test_parquet_in_parquet_parts_out_in_input_order(ray_instance, runtime, tmp_path):
    from desktop.batch.ray_engine import Cluster, RayRun

    texts = [*REVIEWS, None, *reversed(REVIEWS)]
    source = tmp_path / "reviews.parquet"
    pd.DataFrame({"id": range(len(texts)), "review": texts, "stars": [2.5] * len(texts)}).to_parquet(source)
    parts = tmp_path / "parts"
    # Batches of 3 rows over 2 workers: 6 batches, finishing in any order, written in input order.
    with RayRun("sentiment", str(source), f"{parts}/", rows_per_task=3, cluster=Cluster(workers=2)) as run:
        assert (run.source.column, run.total, run.plan.workers) == ("review", len(texts), 2)
        list(run)
    assert len(list(parts.glob("*.parquet"))) >= 2
    frame = pd.read_parquet(parts)
    assert list(frame.columns) == ["id", "review", "stars", "label", "score", "note"]
    assert str(frame["id"].dtype) == "int64" and str(frame["score"].dtype) == "float64"
    assert list(frame["id"]) == list(range(len(texts)))
    expected = local_values(runtime, "sentiment", texts)
    assert [_none(v) for v in frame["label"]] == [e["label"] for e in expected]
    assert list(frame["note"]) == [e["note"] for e in expected]
    scores = [(_none(v), e["score"]) for v, e in zip(frame["score"], expected, strict=True)]
    assert all(got == want if want is None else got == pytest.approx(want, abs=1e-5) for got, want in scores)


def test_a_folder_of_two_csv_files_to_one_parquet_file(ray_instance, runtime, tmp_path, capsys):
    folder = tmp_path / "inbox"
    folder.mkdir()
    pd.DataFrame({"n": [1, 2, 3], "comment": REVIEWS[:3]}).to_csv(folder / "a.csv", index=False)
    pd.DataFrame({"n": [4, 5, 6, 7, 8], "comment": REVIEWS[3:]}).to_csv(folder / "b.csv", index=False)
    (folder / "_SUCCESS").write_text("")  # what Spark leaves behind: not read
    target = tmp_path / "out.parquet"
    assert main(["batch", "sentiment", "-i", str(folder), "-o", str(target), "--engine", "ray"]) == 0
    assert "note: reading the texts from column 'comment'" in capsys.readouterr().err
    frame = pd.read_parquet(target)
    assert list(frame["n"]) == [1, 2, 3, 4, 5, 6, 7, 8]
    expected = local_values(runtime, "sentiment", REVIEWS)
    assert [_none(v) for v in frame["label"]] == [e["label"] for e in expected]
    assert list(frame["note"]) == [e["note"] for e in expected]


def test_an_imported_model_is_shipped_to_a_machine_without_it(
    ray_instance, hub, tiny_models, tmp_path, capsys
):
    """``same_machine=False`` and a home of its own for the workers: what a second computer sees."""
    from desktop.batch.ray_engine import RayRun

    assert main(["models", "import", str(tiny_models[SST2]), "--task", "sentiment", "--name", "office"]) == 0
    source = tmp_path / "reviews.csv"
    pd.DataFrame({"review": REVIEWS}).to_csv(source, index=False)
    local = tmp_path / "local.csv"
    assert main(["batch", "sentiment", "-i", str(source), "-o", str(local), "--model", "office"]) == 0
    node = tmp_path / "other-machine"
    with RayRun(
        "sentiment",
        str(source),
        str(tmp_path / "ray.csv"),
        "office",
        same_machine=False,
        worker_env={"PIPEDESK_HOME": str(node)},
    ) as run:
        list(run)
    same_file(tmp_path / "ray.csv", local)
    shipped = list((node / "cache" / "models" / "shipped").glob("*/*/config.json"))
    assert len(shipped) == 1 and not (node / "cache" / "models" / "manifests").exists()


class DiesOnce(FileWorker):
    """A worker whose process exits in the middle of its first batch (once per test, marked by a
    file): it stands in for a machine that runs out of memory or is switched off."""

    def __call__(self, batch):
        marker = Path(os.environ["PIPEDESK_TEST_DIES_ONCE"])
        if not marker.exists():
            marker.touch()
            os._exit(1)
        return super().__call__(batch)


def test_a_hub_model_downloads_once_on_another_machine_and_a_dead_worker_is_replaced(
    ray_instance, hub, tmp_path, capsys
):
    from desktop.batch.ray_engine import RayRun

    source = tmp_path / "reviews.csv"
    pd.DataFrame({"review": REVIEWS}).to_csv(source, index=False)
    local = tmp_path / "local.csv"
    assert main(["batch", "sentiment", "-i", str(source), "-o", str(local)]) == 0
    node, died = tmp_path / "other-machine", tmp_path / "died"
    with RayRun(
        "sentiment",
        str(source),
        str(tmp_path / "ray.csv"),
        same_machine=False,
        worker_env={"PIPEDESK_HOME": str(node), "PIPEDESK_TEST_DIES_ONCE": str(died)},
        worker=DiesOnce,
    ) as run:
        list(run)
    assert died.exists()  # the first worker did die
    same_file(tmp_path / "ray.csv", local)
    manifests = list((node / "cache" / "models" / "manifests").glob("*.json"))
    assert [json.loads(m.read_text())["repo"] for m in manifests] == [SST2]


def test_the_command_runs_on_its_own_local_ray_instance(hub, pipedesk_home, runtime, tmp_path):
    need(importlib.util.find_spec("ray") is not None, 'Ray is not installed (pip install -e ".[dev]")')
    source = tmp_path / "reviews.csv"
    pd.DataFrame({"id": range(1, 9), "review": REVIEWS}).to_csv(source, index=False)
    target = tmp_path / "out.parquet"
    out = run_cli(
        "batch", "sentiment", "-i", str(source), "-o", str(target), "--engine", "ray", "--workers", "1",
        env=cli_env(pipedesk_home, hub), timeout=400,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    assert "Ray: 1 worker, 2 CPUs each, on a Ray instance started on this machine" in out.stderr
    assert "8 rows written" in out.stderr and "row/s" in out.stderr
    frame = pd.read_parquet(target)
    assert list(frame["id"]) == list(range(1, 9)) and str(frame["id"].dtype) == "int64"
    for row, text in enumerate(REVIEWS):
        if len(text) >= 3:
            assert frame["label"][row] == runtime.predict(TASKS["sentiment"], text).data["label"]


# Starts a local instance as `pipedesk batch --engine ray` does, then lists every port that the
# Ray processes it started listen on.
LISTENERS = """
import json, psutil, ray
from desktop.batch.ray_cluster import connect
connect(None)
ray.get(ray.remote(lambda: 1).remote())  # a worker process is up too
ports = set()
for proc in [psutil.Process(), *psutil.Process().children(recursive=True)]:
    try:
        ports |= {(proc.name(), c.laddr.ip, c.laddr.port) for c in proc.net_connections("inet")
                  if c.status == psutil.CONN_LISTEN}
    except psutil.Error:
        pass
ray.shutdown()
print(json.dumps(sorted(ports)))
"""


def test_a_local_ray_instance_listens_on_this_computer_only(pipedesk_home):
    need(importlib.util.find_spec("ray") is not None, 'Ray is not installed (pip install -e ".[dev]")')
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAY_")}
    done = subprocess.run(
        [sys.executable, "-c", LISTENERS], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr[-2000:]
    ports = json.loads(done.stdout.strip().splitlines()[-1])
    assert len(ports) >= 3, ports  # the GCS, the raylet, a worker at least
    open_to_all = [p for p in ports if not ipaddress.ip_address(p[1].removeprefix("::ffff:")).is_loopback]
    assert not open_to_all, f"Ray listens beyond this computer: {open_to_all}"


def test_ctrl_c_cancels_the_job_and_stops_ray(hub, pipedesk_home, tmp_path):
    psutil = pytest.importorskip("psutil")
    need(importlib.util.find_spec("ray") is not None, 'Ray is not installed (pip install -e ".[dev]")')
    source = tmp_path / "many.txt"
    source.write_text("".join(f"Review {i}: {'great' if i % 2 else 'awful'} service\n" for i in range(3000)))
    target = tmp_path / "many.csv"
    command = [sys.executable, "-m", "desktop", "batch", "sentiment", "-i", str(source), "-o", str(target)]
    proc = subprocess.Popen(
        [*command, "--engine", "ray", "--batch-size", "1"],
        env=cli_env(pipedesk_home, hub),
        cwd=ROOT,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        lines = []
        while not any(line.startswith("Ray: ") for line in lines):
            line = proc.stderr.readline()
            assert line, "".join(lines)
            lines.append(line)
        time.sleep(3)  # the worker starts and works on the first 2,048 rows, one at a time
        children = psutil.Process(proc.pid).children(recursive=True)
        assert children  # Ray's own processes
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=90) == 130
        assert "Interrupted: the Ray job was cancelled; nothing was written." in proc.stderr.read()
    finally:
        if proc.poll() is None:
            proc.kill()
    assert not target.exists()
    _gone, alive = psutil.wait_procs(children, timeout=30)
    assert [p for p in alive if p.is_running() and p.status() != psutil.STATUS_ZOMBIE] == []


BLOCK_RAY = """
import importlib.abc, sys

class NoRay(importlib.abc.MetaPathFinder):
    # Stands in for an installation without the cluster extra: Ray and pyarrow cannot be imported.
    def find_spec(self, name, path=None, target=None):
        if name.partition(".")[0] in ("ray", "pyarrow"):
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return None

sys.meta_path.insert(0, NoRay())
"""


def test_without_the_extra_the_ray_engine_says_how_to_install_it(tmp_path, pipedesk_home):
    blocker = tmp_path / "blocker"
    blocker.mkdir()
    (blocker / "sitecustomize.py").write_text(BLOCK_RAY)
    env = cli_env(pipedesk_home, PYTHONPATH=str(blocker))
    source = tmp_path / "in.csv"
    source.write_text("text\nhello there\n")
    out = run_cli(
        "batch", "sentiment", "-i", str(source), "-o", str(tmp_path / "o.csv"), "--engine", "ray", env=env
    )
    assert out.returncode == 2
    assert out.stderr.strip().splitlines() == [
        'pipedesk: error: The Ray engine needs the cluster extra: pip install "pipedesk[cluster]"'
    ]
    helped = run_cli("batch", "sentiment", "--help", env=env)  # --help never imports Ray
    assert helped.returncode == 0 and "--engine {local,ray}" in helped.stdout


def test_mistakes_are_said_in_one_line(tmp_path, capsys):
    source = tmp_path / "in.csv"
    source.write_text("text\nhello there\n")
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "old.parquet").write_bytes(b"")
    cases = [
        (
            ["--engine", "ray", "--resume", "-o", str(tmp_path / "o.csv")],
            "--resume works with the local engine",
        ),
        (["--workers", "2", "-o", str(tmp_path / "o.csv")], "--workers goes with --engine ray"),
        (["-o", f"{tmp_path / 'parts'}/"], "the Ray engine writes folders of Parquet"),
        (["--engine", "ray", "-o", str(tmp_path / "o.pdf")], ".jsonl, .parquet or into a folder"),
        (["--engine", "ray", "-o", f"{tmp_path / 'full'}/"], "is not empty: write the Parquet parts"),
        (
            ["--engine", "ray", "--workers", "0", "-o", str(tmp_path / "o.csv")],
            "--workers must be at least 1",
        ),
    ]
    for extra, message in cases:
        assert main(["batch", "sentiment", "-i", str(source), *extra]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and message in err[0], err


def test_an_unreachable_cluster_is_said_in_words(tmp_path, pipedesk_home):
    need(importlib.util.find_spec("ray") is not None, 'Ray is not installed (pip install -e ".[dev]")')
    import socket

    with socket.socket() as closed:  # a port nothing listens on
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
    source = tmp_path / "in.csv"
    source.write_text("text\nhello there\n")
    base = ["batch", "sentiment", "-i", str(source), "-o", str(tmp_path / "o.csv"), "--engine", "ray"]
    env = cli_env(pipedesk_home)
    out = run_cli(*base, "--ray-address", f"127.0.0.1:{port}", env=env, timeout=120)
    assert out.returncode == 2, out.stderr
    assert f"Could not reach the Ray cluster at 127.0.0.1:{port} (Connection refused)" in out.stderr
    assert len(out.stderr.strip().splitlines()) == 1


def test_workers_are_planned_from_the_clusters_resources():
    two_cores = [{"CPU": 2.0}]
    plan = plan_workers(two_cores, None, None)
    assert (plan.workers, plan.threads, plan.cpus, plan.line()) == (1, 2, 1.0, "1 worker, 2 CPUs each")
    assert (plan_workers(two_cores, 2, None).threads, plan_workers(two_cores, 2, None).cpus) == (1, 0.5)
    cluster = [{"CPU": 16.0}, {"CPU": 16.0}]
    assert plan_workers(cluster, None, None).workers == 8  # 4 CPUs each
    gpus = [{"CPU": 32.0, "GPU": 4.0}, {"CPU": 32.0, "GPU": 2.0}]
    assert (plan_workers(gpus, None, None).workers, plan_workers(gpus, None, 0.5).workers) == (6, 12)
    assert plan_workers(gpus, None, None).line() == "6 workers, 1 GPU each"
    with pytest.raises(UserError, match="room for 6"):
        plan_workers(gpus, 7, 1)
    with pytest.raises(UserError, match="no machine of the Ray cluster has that many GPUs"):
        plan_workers(two_cores, None, 1)


def _none(value):
    """A missing cell as None (pandas reads it as None or NaN)."""
    return None if value is None or (isinstance(value, float) and value != value) else value
