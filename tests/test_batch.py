"""The batch engine on real tiny models, and the file readers, writers and journal on real files."""

from __future__ import annotations

import json
import random
import threading
import time

import pytest

from desktop.batch.journal import Journal
from desktop.batch.writer import NOT_DONE, write_results
from desktop.engine import filerun as engine
from desktop.engine.filerun import BatchRun
from desktop.errors import UserError
from desktop.files.reader import read_table
from desktop.tasks import TASKS
from tests.support import wait_until

WORDS = [
    "good",
    "bad",
    "great",
    "awful",
    "movie",
    "film",
    "service",
    "food",
    "love",
    "hate",
    "this",
    "the",
    "was",
    "really",
    "not",
]


def long_tailed_texts(n: int, seed: int = 7) -> list[str]:
    """Texts of very different lengths in shuffled order (some over the tiny model's 128 tokens)."""
    rng = random.Random(seed)
    sizes = [rng.choice([1, 2, 4, 8, 30, 90, 200]) for _ in range(n)]
    return [" ".join(rng.choice(WORDS) for _ in range(size)) + " ok" for size in sizes]


def run_all(run: BatchRun) -> tuple[dict[int, dict], list[engine.BatchProgress]]:
    results: dict[int, dict] = {}
    events = []
    for event in run:
        results.update(event.results)
        events.append(event)
    return results, events


# --- the engine --------------------------------------------------------------------------


def test_rows_come_back_in_input_order_with_the_same_labels_and_scores_as_one_at_a_time(runtime):
    texts = long_tailed_texts(40)
    texts[3] = "   "  # refused as a single run refuses it: the same words, in the row's note
    run = BatchRun(runtime, "sentiment", texts, token_budget=600)
    results, events = run_all(run)
    assert sorted(results) == list(range(len(texts)))
    finished = [row for event in events for row, _ in event.results]
    assert finished != sorted(finished), "rows should be computed out of order (sorted by length)"
    assert len([e for e in events if e.results]) > 3, "the token budget should give several batches"
    assert events[-1].state == "finished" and events[-1].done == len(texts)
    with pytest.raises(UserError) as refused:
        TASKS["sentiment"].predict(runtime, texts[3])
    assert results[3]["label"] is None and results[3]["note"] == str(refused.value)
    for row, text in enumerate(texts):
        if row == 3:
            continue
        single = TASKS["sentiment"].predict(runtime, text)
        assert results[row]["label"] == single.data["label"], row
        assert results[row]["score"] == pytest.approx(single.data["score"], abs=1e-4), row
        assert results[row]["note"] == "; ".join(single.notes), row


def test_ner_and_classify_match_the_single_text_tabs(runtime):
    texts = [
        "My name is Clara and I live in Berkeley, California.",
        "",
        "Hugging Face Inc. is a company based in New York City.   Its headquarters are in DUMBO,\n\nBrooklyn.",
    ]
    results, _ = run_all(BatchRun(runtime, "ner", texts))
    for row in (0, 2):
        single = TASKS["ner"].predict(runtime, texts[row]).data["entities"]
        assert [(e["entity"], e["type"], e["start"]) for e in results[row]["entities"]] == [
            (e["entity"], e["type"], e["start"]) for e in single
        ]
    assert {"PER", "LOC"} <= set(results[0]["entity_types"].split(", "))
    assert results[1]["entities"] is None and "empty" in results[1]["note"]
    classified, _ = run_all(
        BatchRun(runtime, "classify", ["What a wonderful, sunny day!", "I hate it."], "auto")
    )
    single = TASKS["classify"].predict(runtime, "Text", "What a wonderful, sunny day!", None, None)
    assert classified[0]["label"] == single.data["label"]


def test_generation_translation_and_summaries_run_on_batches(runtime):
    prompts = ["Once upon a time", "The weather today", "x" * 3]
    generated, _ = run_all(
        BatchRun(runtime, "generate", prompts, options={"max_new_tokens": 4, "temperature": 0})
    )
    for i, prompt in enumerate(prompts):
        single = TASKS["generate"].predict(runtime, prompt, None, 4, 0.0).data["text"]
        assert generated[i]["generated_text"].startswith(prompt) and len(
            generated[i]["generated_text"]
        ) > len(prompt)
        assert generated[i]["generated_text"] == single
    english = ["Hello, how are you today?", "I love this product!"]
    translated, _ = run_all(BatchRun(runtime, "translate", english))
    for row, text in enumerate(english):
        assert translated[row]["translation"] == TASKS["translate"].predict(runtime, text).data["translation"]
    article = " ".join(f"The council met on day {i} and agreed a new budget for the town." for i in range(40))
    summaries, _ = run_all(
        BatchRun(runtime, "summarize", [article], options={"min_length": 5, "max_length": 40})
    )
    single = TASKS["summarize"].predict(runtime, article, None, 5, 40)
    assert summaries[0]["summary"] == single.data["summary"]  # split in parts, not cut, as in the tab
    assert single.data["chunks"] > 1 and summaries[0]["note"] == "; ".join(single.notes)


def test_cancel_stops_between_batches_and_keeps_what_is_done(runtime):
    cancel = threading.Event()
    texts = long_tailed_texts(30)
    run = BatchRun(runtime, "sentiment", texts, batch_size=2, cancel=cancel)
    results: dict[int, dict] = {}
    for event in run:
        results.update(event.results)
        if len(results) >= 4:
            cancel.set()
    assert event.state == "cancelled"
    assert 4 <= len(results) < len(texts) and event.done == len(results)


@pytest.fixture(scope="module")
def slow_reader(tiny_models, tmp_path_factory):
    """A DistilBERT-sized classifier slow enough that Stop lands during a batch
    (tests/support/slow_models.py)."""
    from tests.support.slow_models import slow_reader as build

    sst2 = tiny_models["distilbert/distilbert-base-uncased-finetuned-sst-2-english"]
    return build(sst2, tmp_path_factory.mktemp("slow-reader"))


def test_stop_ends_the_batch_in_flight_within_a_second_and_keeps_nothing_of_it(runtime, slow_reader):
    """Stop during a batch that takes seconds: the run says cancelled within a second (the batch ends
    at its next layer) and none of that batch's rows is written (a resumed run does them)."""
    texts = [" ".join(WORDS[(n + i) % len(WORDS)] for i in range(400)) for n in range(16)]
    cancel = threading.Event()
    run = BatchRun(
        runtime, "sentiment", texts, str(slow_reader), batch_size=8, token_budget=8 * 512, cancel=cancel
    )
    layers = run.loaded.model.bert.encoder.layer
    entered: list[float] = []
    hooks = [layer.register_forward_pre_hook(lambda *_: entered.append(time.monotonic())) for layer in layers]
    events: list[engine.BatchProgress] = []
    try:
        thread = threading.Thread(target=lambda: events.extend(run), daemon=True)
        thread.start()
        wait_until(lambda: len(entered) >= 2, timeout=60)  # the batch is in flight, past its first layer
        layer_seconds = entered[1] - entered[0]
        pressed = time.monotonic()
        cancel.set()
        thread.join(30)
        stopped_in = time.monotonic() - pressed
    finally:
        for hook in hooks:
            hook.remove()
    # The whole batch would take len(layers) layers; Stop was pressed after the first.
    assert layer_seconds * (len(layers) - 2) > 1.0, "the batch is too quick to show anything here"
    assert stopped_in < 1.0 and len(entered) < len(layers), (stopped_in, layer_seconds, len(entered))
    assert events[-1].state == "cancelled" and not any(event.results for event in events)


def test_skipped_rows_are_not_run_again(runtime):
    texts = long_tailed_texts(12)
    results, events = run_all(BatchRun(runtime, "sentiment", texts, skip={0, 5, 6}))
    assert set(results) == set(range(12)) - {0, 5, 6}
    assert events[0].done == 3 and events[-1].done == 12


def same_results(a: dict[int, dict], b: dict[int, dict]) -> None:
    """Same rows and labels; scores within a tolerance (batches of other shapes round differently)."""
    assert a.keys() == b.keys()
    for row in a:
        assert a[row]["label"] == b[row]["label"] and a[row]["note"] == b[row]["note"], row
        assert a[row]["score"] == pytest.approx(b[row]["score"], abs=1e-4), row


def test_preparing_ahead_on_a_helper_thread_gives_the_same_results(runtime, monkeypatch):
    texts = long_tailed_texts(30)
    plain, _ = run_all(BatchRun(runtime, "sentiment", texts))
    monkeypatch.setattr(engine, "WINDOW_ROWS", 7)
    ahead, _ = run_all(BatchRun(runtime, "sentiment", texts, overlap=True))
    same_results(ahead, plain)


class FlakyGPU:
    """A stand-in GPU (there is none here, so this is the one fake): the task's real forward on the
    CPU model, failing as told while the run believes it is on cuda."""

    def __init__(self, spec, fail) -> None:
        self.inner, self.fail, self.sizes = spec, fail, []

    def __getattr__(self, name):
        return getattr(self.inner, name)

    def forward(self, model, pieces, options, stop):
        self.sizes.append(len(pieces))
        if model.device != "cpu":
            self.fail(pieces)
        return self.inner.forward(model, pieces, options, stop)


def on_fake_gpu(run: BatchRun, fail) -> FlakyGPU:
    import dataclasses

    run.loaded = dataclasses.replace(run.loaded, device="cuda:0")
    run.spec = fake = FlakyGPU(run.spec, fail)
    return fake


def test_out_of_memory_splits_the_batch_and_retries(runtime):
    import torch

    def too_big(pieces):
        if len(pieces) > 2:
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")

    texts = long_tailed_texts(16)
    expected, _ = run_all(BatchRun(runtime, "sentiment", texts))
    run = BatchRun(runtime, "sentiment", texts, token_budget=4096)
    fake = on_fake_gpu(run, too_big)
    results, events = run_all(run)
    same_results(results, expected)
    assert run.loaded.device == "cuda:0" and not any(e.notes for e in events)
    assert max(fake.sizes) > 2 and run.budget < 4096


def test_a_gpu_that_keeps_failing_hands_the_run_to_the_cpu_with_a_note(runtime):
    def broken(pieces):
        raise RuntimeError("CUDA error: an illegal memory access was encountered")

    texts = long_tailed_texts(10)
    expected, _ = run_all(BatchRun(runtime, "sentiment", texts))
    run = BatchRun(runtime, "sentiment", texts)
    on_fake_gpu(run, broken)
    results, events = run_all(run)
    assert run.loaded.device == "cpu"
    same_results(results, expected)
    notes = [n for e in events for n in e.notes]
    assert len(notes) == 1 and "continues on the CPU" in notes[0]


def quantized(model) -> bool:
    import torch

    kinds = {type(m).__module__ for m in model.modules() if "Linear" in type(m).__name__}
    plain = any(isinstance(m, torch.nn.Linear) and type(m) is torch.nn.Linear for m in model.modules())
    return any("quantized" in kind for kind in kinds) and not plain


def test_fast_cpu_mode_measures_this_processor_once_and_uses_int8_only_where_faster(runtime):
    from desktop import settings
    from desktop.engine.fastcpu import machine_key

    texts = long_tailed_texts(30)
    full, _ = run_all(BatchRun(runtime, "sentiment", texts))
    assert settings.load().fast_cpu_speedups is None
    measured = BatchRun(runtime, "sentiment", texts, fast_cpu=True)
    speedup = settings.load().fast_cpu_speedups[machine_key()]  # measured once, and kept
    assert speedup > 0 and quantized(measured.loaded.model) == (speedup >= 1.05)

    settings.update(fast_cpu_speedups={machine_key(): 2.0})  # a processor where int8 pays off
    run = BatchRun(runtime, "sentiment", texts, fast_cpu=True)
    fast, events = run_all(run)
    assert quantized(run.loaded.model) and not [n for e in events for n in e.notes]
    agree = sum(fast[i]["label"] == full[i]["label"] for i in range(len(texts)))
    assert agree >= 0.9 * len(texts)

    settings.update(fast_cpu_speedups={machine_key(): 0.95})  # one where it does not: said so
    slow = BatchRun(runtime, "sentiment", texts, fast_cpu=True)
    assert not quantized(slow.loaded.model) and "not faster" in " ".join(slow.notes)
    assert BatchRun(runtime, "generate", ["hello"], fast_cpu=True).notes  # not for generators: said so


def test_non_text_tasks_and_bad_options_and_batch_sizes_are_refused(runtime):
    with pytest.raises(UserError, match="Unknown task"):
        BatchRun(runtime, "paint", ["x"])
    with pytest.raises(UserError, match="at least 1"):
        BatchRun(runtime, "sentiment", ["x"], batch_size=0)
    with pytest.raises(UserError, match="must not be more than max length"):
        BatchRun(runtime, "summarize", ["x"], options={"min_length": 50, "max_length": 10})


# --- reading files -----------------------------------------------------------------------


def write(path, data: bytes):
    path.write_bytes(data)
    return path


def test_csv_in_utf8_with_bom_and_with_cp1252_rows_named(tmp_path):
    bom = read_table(write(tmp_path / "a.csv", "\ufefftext,n\ncafé crème,1\n".encode()))
    assert bom.columns == ["text", "n"] and bom.texts("text") == ["café crème"] and not bom.warnings
    mixed = (
        b"text,n\nplain,1\n"
        + "café,2\n".encode("cp1252")
        + b'"two\nlines",3\n'
        + "naïve,4\n".encode("cp1252")
    )
    table = read_table(write(tmp_path / "b.csv", mixed + b"odd \x81 byte,5\n"))
    assert table.texts("text") == ["plain", "café", "two\nlines", "naïve", "odd \x81 byte"]
    assert len(table.warnings) == 1
    assert "rows 2, 4 and 5" in table.warnings[0] and "cp1252" in table.warnings[0]
    assert set(table.notes) == {1, 3, 4} and "Windows-1252" in table.notes[1]


def test_tsv_semicolons_and_utf16_are_read(tmp_path):
    assert read_table(write(tmp_path / "a.tsv", b"id\ttext\n1\thello, world\n")).texts("text") == [
        "hello, world"
    ]
    semi = read_table(write(tmp_path / "s.csv", b"id;text\n1;hello, world\n2;bye\n"))
    assert semi.columns == ["id", "text"] and semi.texts("text") == ["hello, world", "bye"]
    wide = read_table(write(tmp_path / "u.csv", "text\nÉté\n".encode("utf-16")))
    assert wide.texts("text") == ["Été"]


def test_malformed_csv_rows_are_kept_and_named_an_unclosed_quote_is_refused(tmp_path):
    table = read_table(write(tmp_path / "m.csv", b"id,text\n1,fine\n2,too,many,fields\n3\n\n4,last\n"))
    assert [row[0] for row in table.rows] == ["1", "2", "3", "", "4"]
    assert table.texts("text") == ["fine", "too", "", "", "last"]
    assert "Rows 2 and 3" in table.warnings[0] and "malformed" in table.notes[1]
    with pytest.raises(UserError, match="quote opened on line 3 is never closed"):
        read_table(write(tmp_path / "q.csv", b'id,text\n1,ok\n2,"never closed\n3,more\n'))


def test_xlsx_jsonl_and_txt(tmp_path):
    from openpyxl import Workbook

    book = Workbook()
    book.active.append(["id", "review"])
    book.active.append([1, "Great"])
    book.active.append([2, None])
    book.active.append([3, 42])
    book.save(tmp_path / "r.xlsx")
    sheet = read_table(tmp_path / "r.xlsx")
    assert sheet.columns == ["id", "review"] and sheet.texts("review") == ["Great", "", "42"]
    assert sheet.guess_column() == "review"
    lines = b'{"text": "one", "n": 1}\n\n"two"\nnot json\n{"n": 4}\n'
    jsonl = read_table(write(tmp_path / "r.jsonl", lines))
    assert jsonl.columns == ["text", "n"] and jsonl.texts("text") == ["one", "two", "", ""]
    assert "Row 3" in jsonl.warnings[0] and "not a JSON object" in jsonl.notes[2]
    txt = read_table(write(tmp_path / "r.txt", b"first\n\nthird\n\n\n"))
    assert txt.columns == ["text"] and txt.texts("text") == ["first", "", "third"]


def test_empty_files_missing_columns_wrong_types_and_the_size_cap(tmp_path, monkeypatch):
    for name, data in (("e.csv", b""), ("w.txt", b" \n\n")):
        with pytest.raises(UserError, match="is empty"):
            read_table(write(tmp_path / name, data))
    with pytest.raises(UserError, match="header but no rows"):
        read_table(write(tmp_path / "h.csv", b"id,text\n"))
    table = read_table(write(tmp_path / "c.csv", b"id,body\n1,x\n"))
    with pytest.raises(UserError, match="no column 'text'. Its columns are: id, body"):
        table.texts("text")
    with pytest.raises(UserError, match=r"old-style \.xls"):
        read_table(write(tmp_path / "o.xls", b"x"))
    with pytest.raises(UserError, match="not .pdf"):
        read_table(write(tmp_path / "d.pdf", b"x"))
    with pytest.raises(UserError, match="not a valid Excel workbook"):
        read_table(write(tmp_path / "bad.xlsx", b"not a zip"))
    monkeypatch.setenv("PIPEDESK_BATCH_MAX_MB", "0.001")
    with pytest.raises(UserError, match="is 0 MB; Pipedesk reads files of up to 0 MB.*Split it"):
        read_table(write(tmp_path / "big.csv", b"text\n" + b"x" * 2000 + b"\n"))


def test_a_cell_too_long_is_cut_and_marked(tmp_path, monkeypatch):
    import desktop.files.table as batchfiles

    monkeypatch.setattr(batchfiles, "MAX_CELL_CHARS", 10)
    table = read_table(write(tmp_path / "l.txt", b"short\n" + b"y" * 50 + b"\n"))
    assert table.texts("text") == ["short", "y" * 10]
    assert "cut to its first 10 characters" in table.notes[1]


# --- writing results and the journal ------------------------------------------------------


def test_every_export_format_appends_the_result_columns_in_input_order(tmp_path):
    import pandas as pd

    table = read_table(write(tmp_path / "in.csv", b"id,label,text\n1,a,x\n2,b,y\n3,c,z\n"))
    table.add_note(0, "read as Windows-1252 (not valid UTF-8)")
    results = {
        2: {"label": "POSITIVE", "score": 0.9, "note": ""},
        0: {"label": "NEGATIVE", "score": 0.1, "note": "truncated: only the first 128 tokens were read"},
    }
    for suffix in (".csv", ".tsv", ".xlsx", ".jsonl"):
        path = write_results(
            table, results, ["label", "score"], tmp_path / f"out{suffix}", prefix="sentiment"
        )
        if suffix == ".xlsx":
            frame = pd.read_excel(path, dtype=str, keep_default_na=False)
        elif suffix == ".jsonl":
            frame = pd.read_json(path, lines=True, dtype=str)
        else:
            frame = pd.read_csv(path, sep="\t" if suffix == ".tsv" else ",", dtype=str, keep_default_na=False)
        assert list(frame.columns) == ["id", "label", "text", "sentiment_label", "score", "note"], suffix
        assert list(frame["id"]) == ["1", "2", "3"] and list(frame["label"]) == ["a", "b", "c"]
        assert list(frame["sentiment_label"])[::2] == ["NEGATIVE", "POSITIVE"]
        assert frame["note"][0].startswith("read as Windows-1252") and "truncated" in frame["note"][0]
        assert frame["note"][1] == NOT_DONE
    entities = {0: {"entities": [{"entity": "Clara", "type": "PER"}], "entity_types": "PER", "note": ""}}
    flat = write_results(table, entities, ["entities", "entity_types"], tmp_path / "ner.csv", prefix="ner")
    assert json.loads(pd.read_csv(flat)["entities"][0]) == [{"entity": "Clara", "type": "PER"}]
    nested = write_results(
        table, entities, ["entities", "entity_types"], tmp_path / "ner.jsonl", prefix="ner"
    )
    assert json.loads(nested.read_text().splitlines()[0])["entities"][0]["entity"] == "Clara"
    with pytest.raises(UserError, match="not .txt"):
        write_results(table, results, ["label"], tmp_path / "out.txt")


def test_the_journal_survives_a_torn_last_line_and_refuses_another_run(tmp_path):
    path = tmp_path / "out.csv.partial.jsonl"
    header = {"task": "sentiment", "rows": 3}
    journal = Journal.open(path, header, resume=False)
    assert not path.exists()  # nothing written before the first result
    journal.write([(2, {"label": "POSITIVE"}), (0, {"label": "NEGATIVE"})])
    journal.close()
    with path.open("a") as handle:
        handle.write('{"row": 1, "val')  # the line being written when the run died
    with pytest.raises(UserError, match="interrupted run. Add --resume"):
        Journal.open(path, header, resume=False)
    with pytest.raises(UserError, match="different run.*task was 'sentiment'"):
        Journal.open(path, {"task": "ner", "rows": 3}, resume=True)
    again = Journal.open(path, header, resume=True)
    assert again.done == {2: {"label": "POSITIVE"}, 0: {"label": "NEGATIVE"}}
    again.write([(1, {"label": "POSITIVE"})])
    again.close()
    assert Journal.open(path, header, resume=True).done.keys() == {0, 1, 2}
