"""One definition per task: a single request and a file row give the same answer and the same refusal.

Every task that runs on files gets the same inputs (normal, too short, empty, over-long, and a text
longer than the model reads) once as single requests and once as the rows of a file run; answers
are compared (scores with a tolerance: batches of other shapes round differently) and a refusal
must reach the file row's note word for word.
"""

from __future__ import annotations

import pytest

from desktop.batch.run import BatchRun
from desktop.errors import UserError
from desktop.tasks import TASKS

ARTICLE = " ".join(f"The council met on day {i} and agreed a new budget for the town." for i in range(30))
OPTIONS = {
    "generate": {"max_new_tokens": 6, "temperature": 0.0, "top_p": 1.0, "seed": -1},
    "summarize": {"min_length": 4, "max_length": 24},
    "labels": {"labels": "billing, shipping, broken product", "multi_label": False, "template": ""},
}
INPUTS = {
    "sentiment": ["I love this product!", "ok", "", "   ", "good " * 4_001, "I love this product! " * 300],
    "classify": ["What a wonderful, sunny day!", "ok", "", "good " * 4_001, "sunny " * 600],
    "ner": ["My name is Clara and I live in Berkeley, California.", "ab", "", "Clara " * 4_000],
    "generate": ["Once upon a time", "ab", "", "x" * 10_001, "word " * 1_200],
    "translate": ["Hello, how are you today?", "a", "", "a " * 25_001, ARTICLE],
    "summarize": [ARTICLE, "Far too short.", "", "word " * 20_001],
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
