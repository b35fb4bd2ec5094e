"""``pipedesk batch`` end to end on the tiny models from the local Hub, as a real subprocess."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

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


# --- files as people have them (issue #16: never analyse the wrong data silently) ------------------


def test_a_file_with_no_column_of_text_is_refused_with_its_columns(hub, pipedesk_home, tmp_path, capsys):
    prices = tmp_path / "prices.csv"
    prices.write_text("id,price,qty\n1,9.99,3\n2,12.50,1\n3,4.00,10\n", encoding="utf-8")
    assert main(["batch", "sentiment", "-i", str(prices), "-o", str(tmp_path / "out.csv")]) == 2
    (said,) = capsys.readouterr().err.strip().splitlines()
    assert "prices.csv has no column of text to analyse" in said and "(id, price, qty)" in said
    assert "--column" in said and not (tmp_path / "out.csv").exists()
    # Named on purpose, a column is what the person asked for.
    env = cli_env(pipedesk_home, hub)
    chosen = run_cli(
        "batch", "sentiment", "-i", str(prices), "-o", str(tmp_path / "o.csv"), "-c", "price", env=env
    )
    assert chosen.returncode == 0, chosen.stderr


def test_a_workbook_is_read_from_its_sheet_with_text_and_says_which(hub, pipedesk_home, tmp_path, capsys):
    from tests.support.workbooks import shop_workbook

    source = shop_workbook(tmp_path / "shop.xlsx")
    out = tmp_path / "out.csv"
    assert main(["batch", "sentiment", "-i", str(source), "-o", str(out)]) == 0
    err = capsys.readouterr().err
    assert "shop.xlsx has 3 sheets: the rows come from 'Reviews', the first with text" in err
    assert "'Summary', 'Notes'" in err
    assert list(pd.read_csv(out)["review"]) == ["I love this product!", "This is terrible, I hate it."]
    assert main(["batch", "sentiment", "-i", str(source), "-o", str(out), "--sheet", "Notes"]) == 0
    assert list(pd.read_csv(out)["note"])[0].startswith("Call the supplier")
    assert main(["batch", "sentiment", "-i", str(source), "-o", str(out), "--sheet", "Orders"]) == 2
    assert (
        "shop.xlsx has no sheet 'Orders'. Its sheets are: Summary, Reviews, Notes." in capsys.readouterr().err
    )


def test_parquet_in_and_out_with_the_local_engine_keeps_types(hub, pipedesk_home, runtime, tmp_path):
    source = tmp_path / "reviews.parquet"
    pd.DataFrame(
        {"id": [1, 2, 3], "review": ["I love this product!", "", "This is terrible, I hate it."]}
    ).to_parquet(source, index=False)
    target = tmp_path / "labelled.parquet"
    out = run_cli("batch", "sentiment", "-i", str(source), "-o", str(target), env=cli_env(pipedesk_home, hub))
    assert out.returncode == 0, out.stderr
    frame = pd.read_parquet(target)
    assert list(frame["id"]) == [1, 2, 3] and str(frame["id"].dtype) == "int64"
    assert str(frame["score"].dtype) == "float64" and frame["score"][1] != frame["score"][1]  # NaN: empty row
    assert frame["label"][0] == runtime.predict(TASKS["sentiment"], "I love this product!").data["label"]
    assert "empty" in frame["note"][1]


def test_folders_of_photos_run_one_row_per_photo_with_reasons_for_the_others(hub, pipedesk_home, tmp_path):
    from tests.support.tiny_media import SQUARE_LABEL
    from tests.test_one_pipeline import photo_folder

    folder = photo_folder(tmp_path / "photos")
    env = cli_env(pipedesk_home, hub)
    found = run_cli("batch", "detect", "-i", str(folder), "-o", str(tmp_path / "objects.csv"), env=env)
    assert found.returncode == 0, found.stderr
    rows = pd.read_csv(tmp_path / "objects.csv", keep_default_na=False)
    assert list(rows.columns) == ["file", "count", "objects", "note"]
    names = [Path(f).relative_to(folder).as_posix() for f in rows["file"]]
    assert names == ["b.png", "notes.png", "trip/box.png", "trip/day 2/wall.jpg", "trip/empty.png"]
    by_name = dict(zip(names, rows.to_dict("records"), strict=True))
    assert int(by_name["trip/box.png"]["count"]) == 1
    assert json.loads(by_name["trip/box.png"]["objects"])[0]["label"] == SQUARE_LABEL
    assert int(by_name["trip/day 2/wall.jpg"]["count"]) == 0
    assert "is not an image Pipedesk can read" in by_name["notes.png"]["note"]
    assert "is empty" in by_name["trip/empty.png"]["note"]
    assert f"By object: {SQUARE_LABEL} 2" in found.stderr
    labelled = run_cli("batch", "classify", "-i", str(folder), "-o", str(tmp_path / "labels.jsonl"), env=env)
    assert labelled.returncode == 0, labelled.stderr
    answers = [json.loads(line) for line in (tmp_path / "labels.jsonl").read_text().splitlines()]
    assert [bool(a["label"]) for a in answers] == [True, False, True, True, False]
