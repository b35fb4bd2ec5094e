"""Pure pre/post-processing: no model, no server."""

from __future__ import annotations

import pytest

from desktop.errors import UserError
from desktop.tasks.generate import OPTIONS, generation_kwargs
from desktop.tasks.ner import highlighted, to_entities
from desktop.tasks.sentiment import label_result
from desktop.tasks.text import (
    TextLimits,
    check_text,
    clean_whitespace,
    map_span,
    pack_chunks,
    split_sentences,
)


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("", "empty"),
        ("   \n\t ", "empty"),
        (None, "empty"),
        ("hi", "at least 3 characters"),
        ("x" * 101, "too long"),
    ],
)
def test_check_text_refuses_bad_input_with_a_reason(value, message):
    with pytest.raises(UserError, match=message):
        check_text(value, TextLimits(min_chars=3, max_chars=100))


def test_check_text_strips_and_accepts():
    assert check_text("  fine text \n", TextLimits()) == "fine text"


def test_clean_whitespace_maps_offsets_back_to_what_was_typed():
    typed = "  My name is   Clara\n\nand I live in\tBerkeley. "
    cleaned, index = clean_whitespace(typed)
    assert cleaned == "My name is Clara and I live in Berkeley."
    start = cleaned.index("Clara")
    s, e = map_span(index, start, start + len("Clara"))
    assert typed[s:e] == "Clara"
    start = cleaned.index("Berkeley")
    s, e = map_span(index, start, start + len("Berkeley"))
    assert typed[s:e] == "Berkeley"


def test_entities_point_into_the_original_text_and_highlight_it():
    typed = "Clara   lives in\n\nParis"
    cleaned, index = clean_whitespace(typed)
    groups = [
        {"entity_group": "LOC", "score": 0.9, "start": cleaned.index("Paris"), "end": len(cleaned)},
        {"entity_group": "PER", "score": 0.8, "start": 0, "end": 5},
    ]
    entities = to_entities(typed, index, groups)
    assert [(e["entity"], e["type"]) for e in entities] == [("Clara", "PER"), ("Paris", "LOC")]
    shown = highlighted(typed, entities)
    assert shown["text"] == typed
    assert [typed[x["start"] : x["end"]] for x in shown["entities"]] == ["Clara", "Paris"]


def test_a_label_result_names_the_best_class_and_keeps_every_score():
    out = label_result({"POS": 0.8, "NEG": 0.2})
    assert out.data["label"] == "POS" and out.data["score"] == pytest.approx(0.8)
    assert out.outputs == ({"POS": 0.8, "NEG": 0.2},) and out.text == "POS (80.0%)"


def test_pack_chunks_keeps_every_word_within_budget():
    text = " ".join(f"Sentence number {i} is here." for i in range(40))
    words = lambda s: len(s.split())  # noqa: E731
    chunks = pack_chunks(split_sentences(text), words, 12)
    assert all(words(c) <= 12 for c in chunks)
    assert " ".join(chunks).split() == text.split()
    # one sentence longer than the budget is split on whitespace, not dropped
    long_one = " ".join(["word"] * 30)
    assert " ".join(pack_chunks([long_one], words, 7)).split() == long_one.split()


def test_generation_is_greedy_at_temperature_zero():
    assert generation_kwargs(20, 0.0, 0.9) == {"max_new_tokens": 20, "do_sample": False}
    sampled = generation_kwargs(20, 0.7, 0.9)
    assert sampled["do_sample"] is True and sampled["temperature"] == 0.7


def test_options_are_checked_with_a_reason():
    max_new_tokens = OPTIONS[0]
    assert max_new_tokens.check("12") == 12
    assert max_new_tokens.check(None) == 50
    with pytest.raises(UserError, match="at least 1"):
        max_new_tokens.check(0)
    with pytest.raises(UserError, match="must be a whole number"):
        max_new_tokens.check("many")
