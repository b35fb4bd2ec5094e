"""``pipedesk batch`` end to end on the tiny models from the local Hub, as a real subprocess."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pandas as pd

from desktop.cli import main
from desktop.tasks import TASKS
from tests.support import ROOT, cli_env, run_cli

REVIEWS = [
    "I love this product!",
    "The delivery was late and the box was damaged. " * 30,  # over the tiny model's 128 tokens
    "",
    "What a great movie, truly amazing.",
    "This is terrible, I hate it.",
    "Fine.",
]


def test_sentiment_over_a_csv_keeps_input_order_with_a_progress_bar(hub, pipedesk_home, runtime, tmp_path):
    source = tmp_path / "reviews.csv"
    pd.DataFrame({"id": range(1, 7), "review": REVIEWS, "stars": [5, 1, 3, 5, 1, 3]}).to_csv(
        source, index=False
    )
    out = run_cli(
        "batch",
        "sentiment",
        "--input",
        str(source),
        "--output",
        str(tmp_path / "out.xlsx"),
        env=cli_env(pipedesk_home, hub),
    )
    assert out.returncode == 0, out.stderr
    assert "row/s" in out.stderr or "it/s" in out.stderr  # the progress bar
    assert (
        "column 'review'" in out.stderr
        and "6 rows written" in out.stderr
        and "(1 refused, 1 with notes)" in out.stderr
    )
    frame = pd.read_excel(tmp_path / "out.xlsx", dtype=str, keep_default_na=False)
    assert list(frame.columns) == ["id", "review", "stars", "label", "score", "note"]
    assert list(frame["id"]) == ["1", "2", "3", "4", "5", "6"]
    for row, text in enumerate(REVIEWS):
        if text:
            assert frame["label"][row] == TASKS["sentiment"].predict(runtime, text).data["label"]
    assert "is empty" in frame["note"][2] and "only the beginning was analysed" in frame["note"][1]
    assert not (tmp_path / "out.xlsx.partial.jsonl").exists()


def test_ner_from_a_text_file_to_jsonl(hub, pipedesk_home, tmp_path):
    source = tmp_path / "notes.txt"
    source.write_text(
        "My name is Clara and I live in Berkeley, California.\n\nHugging Face is in New York City.\n"
    )
    target = tmp_path / "entities.jsonl"
    out = run_cli(
        "batch",
        "ner",
        "-i",
        str(source),
        "-o",
        str(target),
        "--batch-size",
        "2",
        env=cli_env(pipedesk_home, hub),
    )
    assert out.returncode == 0, out.stderr
    rows = [json.loads(line) for line in target.read_text().splitlines()]
    assert [r["text"] for r in rows][1] == "" and len(rows) == 3
    assert {"Clara", "Berkeley"} <= {e["entity"] for e in rows[0]["entities"]}
    assert "By entity type: " in out.stderr


def test_an_interrupted_run_resumes_without_redoing_finished_rows(hub, pipedesk_home, tmp_path):
    source = tmp_path / "many.txt"
    texts = [f"Review number {i}: {'great' if i % 2 else 'awful'} service" for i in range(3000)]
    source.write_text("\n".join(texts) + "\n")
    target = tmp_path / "many.csv"
    journal = tmp_path / "many.csv.partial.jsonl"
    args = [
        sys.executable,
        "-m",
        "desktop",
        "batch",
        "sentiment",
        "-i",
        str(source),
        "-o",
        str(target),
        "--batch-size",
        "1",
    ]
    proc = subprocess.Popen(
        args, env=cli_env(pipedesk_home, hub), cwd=ROOT, stderr=subprocess.PIPE, text=True
    )
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and (not journal.exists() or journal.read_text().count("\n") < 41):
            assert proc.poll() is None, proc.stderr.read()
            time.sleep(0.05)
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=60) == 130
        assert "Run the same command with --resume" in proc.stderr.read()
    finally:
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)
    assert not target.exists()
    lines = journal.read_text().splitlines()
    done = [json.loads(line) for line in lines[1:] if line.strip()]
    assert 40 <= len(done) < len(texts)
    # Mark one finished row: if --resume computed it again, the mark would be gone.
    marked = done[5]["row"]
    lines[6] = json.dumps({"row": marked, "values": {"label": "FROM-JOURNAL", "score": 0.5, "note": ""}})
    journal.write_text("\n".join(lines) + "\n")

    env = cli_env(pipedesk_home, hub)
    again = run_cli("batch", "sentiment", "-i", str(source), "-o", str(target), env=env)
    assert again.returncode == 2 and "Add --resume" in again.stderr
    resumed = run_cli("batch", "sentiment", "-i", str(source), "-o", str(target), "--resume", env=env)
    assert resumed.returncode == 0, resumed.stderr
    assert f"Resuming: {len(done):,} of 3,000 rows were already done" in resumed.stderr
    frame = pd.read_csv(target, dtype=str, keep_default_na=False)
    assert list(frame["text"]) == texts
    assert frame["label"][marked] == "FROM-JOURNAL"
    assert set(frame["label"]) - {"FROM-JOURNAL"} <= {"POSITIVE", "NEGATIVE"} and all(frame["score"])
    assert not journal.exists()


def test_user_errors_exit_2_with_one_clear_line(tmp_path, capsys):
    source = tmp_path / "in.csv"
    source.write_text("id,body\n1,hello there\n")
    cases = [
        (["--column", "text", "-o", str(tmp_path / "o.csv")], "no column 'text'. Its columns are: id, body"),
        (["-o", str(source)], "must not be the input file"),
        (["-o", str(tmp_path / "o.pdf")], "not .pdf"),
    ]
    for extra, message in cases:
        assert main(["batch", "sentiment", "-i", str(source), *extra]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and message in err[0], err
    (tmp_path / "empty.csv").write_bytes(b"")
    assert main(["batch", "sentiment", "-i", str(tmp_path / "empty.csv"), "-o", str(tmp_path / "o.csv")]) == 2
    assert "is empty" in capsys.readouterr().err
    assert main(["batch", "sentiment", "-i", str(tmp_path / "nope.csv"), "-o", str(tmp_path / "o.csv")]) == 2
    assert "could not be found" in capsys.readouterr().err


def test_a_binary_file_named_csv_exits_2_with_one_clear_line(tmp_path, capsys):
    from PIL import Image

    photo = tmp_path / "holiday.csv"  # a PNG photo, renamed: once read as 172 rows of garbage
    Image.new("RGB", (320, 200), (40, 120, 200)).save(photo, format="PNG")
    target = tmp_path / "out.csv"
    assert main(["batch", "sentiment", "-i", str(photo), "-o", str(target)]) == 2
    captured = capsys.readouterr()
    err = captured.err.strip().splitlines()
    assert len(err) == 1 and "holiday.csv is not a text file (it is a PNG image)" in err[0], err
    assert not target.exists() and "row" not in captured.out
