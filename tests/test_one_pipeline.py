"""One definition per task: a single request and a file row give the same answer and the same refusal.

Every task that runs on files gets the same inputs (normal, too short, empty, over-long, and a text
longer than the model reads) once as single requests and once as the rows of a file run; answers
are compared (scores with a tolerance: batches of other shapes round differently) and a refusal
must reach the file row's note word for word.
"""

from __future__ import annotations

import pytest

from desktop.engine.filerun import BatchRun
from desktop.errors import UserError
from desktop.tasks import TASKS
from tests.support import tiny_chat

ARTICLE = " ".join(f"The council met on day {i} and agreed a new budget for the town." for i in range(30))
OPTIONS = {
    "generate": {"max_new_tokens": 6, "temperature": 0.0, "top_p": 1.0, "seed": -1},
    "summarize": {"min_length": 4, "max_length": 24},
    "prompt": {"prompt": tiny_chat.PROMPT, "json_fields": "product, complaint", "max_new_tokens": 40},
    "labels": {"labels": "billing, shipping, broken product", "multi_label": False, "template": ""},
}
ROWS = [{"id": str(n), "review": review} for n, (review, _product, _json) in enumerate(tiny_chat.REVIEWS)]
INPUTS = {
    "sentiment": ["I love this product!", "ok", "", "   ", "good " * 4_001, "I love this product! " * 300],
    "classify": ["What a wonderful, sunny day!", "ok", "", "good " * 4_001, "sunny " * 600],
    "ner": ["My name is Clara and I live in Berkeley, California.", "ab", "", "Clara " * 4_000],
    "generate": ["Once upon a time", "ab", "", "x" * 10_001, "word " * 1_200],
    "translate": ["Hello, how are you today?", "a", "", "a " * 25_001, ARTICLE],
    "summarize": [ARTICLE, "Far too short.", "", "word " * 20_001],
    "prompt": [
        *ROWS,
        {"id": "8", "review": ""},
        {"id": "9", "review": "  "},
        {"id": "10", "review": "w " * 600},
    ],
    "labels": [
        "My package never arrived.",
        "I was charged twice for my order.",
        "ok",
        "",
        "good " * 4_001,
        "The screen cracked after one day. " * 40,
    ],
}


def single(runtime, task: str, text: str):
    """(values, note) of one request, or (None, refusal) when it is refused."""
    spec = TASKS[task]
    options = OPTIONS.get(task, {})
    inputs = spec.file_inputs(text)
    args = [*(inputs.get(name) for name in spec.inputs), None, *(options.get(o.name) for o in spec.options)]
    try:
        result = spec.predict(runtime, *args)
    except UserError as exc:
        return None, str(exc)
    return spec.row_values(result), "; ".join(result.notes)


def same(task: str, row: dict, values: dict) -> None:
    for column, value in values.items():
        if isinstance(value, float):  # scores (Labels: one column per label)
            assert row[column] == pytest.approx(value, abs=1e-4), column
        elif column == "entities":
            assert [(e["entity"], e["type"], e["start"], e["end"]) for e in row[column]] == [
                (e["entity"], e["type"], e["start"], e["end"]) for e in value
            ]
        else:
            assert row[column] == value, column


@pytest.mark.parametrize("task", sorted(INPUTS))
def test_a_single_request_and_a_file_row_agree_on_answers_and_refusals(runtime, task):
    texts = INPUTS[task]
    results: dict[int, dict] = {}
    for event in BatchRun(runtime, task, texts, options=OPTIONS.get(task)):
        results.update(event.results)
    refusals = 0
    for row, text in enumerate(texts):
        values, note = single(runtime, task, text)
        got = results[row]
        assert got["note"] == note, (task, row)
        if values is None:
            refusals += 1
            assert all(got[column] is None for column in TASKS[task].columns), (task, row)
        else:
            same(task, got, values)
    assert refusals >= 3, "too short, empty and too long are refused the same way everywhere"


@pytest.mark.parametrize("system", ["", tiny_chat.PIP_SYSTEM])
def test_the_chat_tab_and_a_file_row_give_the_same_answer_to_the_same_prompt(runtime, system):
    """A prompt over a file asks what the Chat tab is asked for the filled prompt (same system prompt,
    same settings), and the answers agree, in whatever batch the row ran."""
    from desktop.tasks.prompt import user_message

    settings = {"max_new_tokens": 40, "temperature": 0.0, "top_p": 0.95, "seed": -1}
    for fields in ("", "product, complaint"):
        options = {"prompt": tiny_chat.PROMPT, "system": system, "json_fields": fields, **settings}
        results: dict[int, dict] = {}
        for event in BatchRun(runtime, "prompt", ROWS, options=options):
            results.update(event.results)
        for number, row in enumerate(ROWS):
            message = user_message(tiny_chat.PROMPT, row, [f.strip() for f in fields.split(",") if f])
            said = TASKS["chat"].predict(runtime, message, [], None, system, *settings.values())
            assert results[number]["answer"] == said.text, (fields, row)
    if not system:  # what the tiny model learnt (with a system prompt it answers something else)
        assert results[0]["product"] == "blender" and results[1]["product"] == "kettle"


def photo_folder(folder):
    """Photos as people keep them: a subfolder, a JPEG, an empty one, a text file named .png."""
    from tests.support.tiny_media import square

    (folder / "trip" / "day 2").mkdir(parents=True)
    square((300, 300), (75, 75, 225, 225)).save(folder / "trip" / "box.png")
    square((300, 300), None).save(folder / "trip" / "day 2" / "wall.jpg", quality=92)
    square((240, 180), (60, 45, 180, 135)).save(folder / "b.png")
    (folder / "trip" / "empty.png").write_bytes(b"")
    (folder / "notes.png").write_text("not a photo", encoding="utf-8")
    (folder / "notes.txt").write_text("not listed at all", encoding="utf-8")
    return folder


@pytest.mark.parametrize("task", ["classify", "detect"])
def test_a_photo_and_its_row_in_a_folder_run_agree(runtime, task, tmp_path):
    from desktop.files.reader import read_rows

    spec = TASKS[task]
    table = read_rows(photo_folder(tmp_path / "photos"), spec.file_input, spec.folder_kind)
    paths = table.texts("file")
    assert [p.replace(str(tmp_path / "photos"), "") for p in paths] == [
        "/b.png", "/notes.png", "/trip/box.png", "/trip/day 2/wall.jpg", "/trip/empty.png",
    ]  # fmt: skip
    results: dict[int, dict] = {}
    for event in BatchRun(runtime, task, paths, holds=table.holds):
        results.update(event.results)
    for row, path in enumerate(paths):
        inputs = spec.file_inputs(path, "image")
        args = [*(inputs.get(name) for name in spec.inputs), None, *(o.default for o in spec.options)]
        try:
            result = spec.predict(runtime, *args)
        except UserError as exc:
            assert results[row]["note"] == str(exc) and all(results[row][c] is None for c in spec.columns)
            continue
        got, want = results[row], spec.row_values(result)
        if task == "classify":
            assert got["label"] == want["label"] and got["score"] == pytest.approx(want["score"], abs=1e-4)
        else:
            assert got["count"] == want["count"]
            for found, expected in zip(got["objects"], want["objects"], strict=True):
                assert found["label"] == expected["label"]
                assert found["score"] == pytest.approx(expected["score"], abs=1e-3)
                assert all(abs(found["box"][k] - expected["box"][k]) <= 2 for k in expected["box"])
    assert [bool(results[row]["note"]) for row in (1, 4)] == [True, True]  # a text file, an empty one
