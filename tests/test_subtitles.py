"""Subtitles people can use (desktop/tasks/subtitles.py) and Whisper's tokens as times
(desktop/tasks/timing.py): pure rules, no model.

The rules: at most two lines of at most 42 characters per cue, lines broken at spaces and balanced,
a new cue with each segment, after a sentence ends and at a pause, every word kept in order; SubRip
and WebVTT written from the same cues.
"""

from __future__ import annotations

import pytest

from desktop.tasks import subtitles, timing
from desktop.tasks.subtitles import MAX_LINE, cues, srt, vtt, wrap

LONG = (
    "Speech recognition turns what people say into text that can be searched and read later, "
    "and subtitles make that text appear on screen while the speaker talks, one short cue "
    "after another, so that nobody has to read a wall of words at once"
)


def cue_texts(segments):
    return [" ".join(cue.lines) for cue in cues(segments)]


def test_a_long_segment_becomes_cues_of_at_most_two_lines_of_42_characters_with_every_word_in_order():
    found = cues([{"start": 10.0, "end": 40.0, "text": LONG}])
    assert len(found) >= 3
    assert all(1 <= len(cue.lines) <= 2 for cue in found)
    assert all(len(line) <= MAX_LINE for cue in found for line in cue.lines)
    assert " ".join(" ".join(cue.lines) for cue in found) == LONG  # nothing lost, nothing moved
    assert found[0].start == 10.0 and found[-1].end == pytest.approx(40.0)
    assert all(a.end <= b.start + 1e-6 for a, b in zip(found, found[1:], strict=False)), (
        "in order, no overlap"
    )
    assert all(cue.end > cue.start for cue in found)


def test_lines_are_broken_at_spaces_and_balanced():
    lines = wrap("The quick brown fox jumps over the lazy dog and runs far away")  # 61 characters
    assert lines == ["The quick brown fox jumps over", "the lazy dog and runs far away"]
    assert wrap("Short enough for one line.") == ["Short enough for one line."]
    assert wrap("word " * 30) is None  # more than two lines' worth
    # A comma is a good place to break when it keeps the lines nearly as balanced.
    assert wrap("When the rain stopped, we walked down to the river together") == [
        "When the rain stopped,",
        "we walked down to the river together",
    ]


def test_a_cue_ends_with_its_sentence_and_at_a_pause():
    assert cue_texts([{"start": 0.0, "end": 4.0, "text": "Hello there. How are you? Fine!"}]) == [
        "Hello there.",
        "How are you?",
        "Fine!",
    ]
    words = [
        {"start": 0.0, "end": 0.4, "word": " So"},
        {"start": 0.4, "end": 0.9, "word": " we"},
        {"start": 0.9, "end": 1.3, "word": " waited"},
        {"start": 2.5, "end": 2.9, "word": " and"},  # 1.2 s of silence before it
        {"start": 2.9, "end": 3.5, "word": " waited"},
    ]
    found = cues([{"start": 0.0, "end": 3.5, "text": "So we waited and waited", "words": words}])
    assert [(cue.start, cue.end, cue.lines) for cue in found] == [
        (0.0, 1.3, ("So we waited",)),
        (2.5, 3.5, ("and waited",)),
    ]


def test_each_segment_starts_its_own_cue_and_empty_ones_give_none():
    segments = [
        {"start": 0.0, "end": 2.0, "text": "a tone"},
        {"start": 2.0, "end": 4.0, "text": "hello world"},
        {"start": 4.0, "end": 5.0, "text": "   "},
    ]
    assert cue_texts(segments) == ["a tone", "hello world"]


def test_text_without_spaces_is_cut_between_characters():
    text = "今天天气很好我们去公园散步吧" * 8  # 112 characters, no spaces
    found = cues([{"start": 0.0, "end": 20.0, "text": text}])
    assert all(len(line) <= MAX_LINE for cue in found for line in cue.lines)
    assert "".join("".join(cue.lines) for cue in found) == text


def test_a_short_cue_shows_long_enough_when_there_is_room():
    words = [{"start": 1.0, "end": 1.1, "word": " Yes."}, {"start": 3.0, "end": 3.4, "word": " Then"}]
    found = cues([{"start": 1.0, "end": 3.4, "text": "Yes. Then", "words": words}])
    assert (found[0].start, found[0].end) == (1.0, pytest.approx(1.0 + subtitles.MIN_SECONDS))
    crowded = [{"start": 1.0, "end": 1.1, "word": " Yes."}, {"start": 1.3, "end": 1.6, "word": " Then"}]
    found = cues([{"start": 1.0, "end": 1.6, "text": "Yes. Then", "words": crowded}])
    assert found[0].end == pytest.approx(1.3), "never over the next cue"


def test_subrip_and_webvtt_are_written_from_the_same_cues():
    segments = [
        {"start": 0.0, "end": 2.5, "text": "a tone"},
        {"start": 30.0, "end": 3725.25, "text": " hello <world> & more "},
    ]
    assert srt(segments) == (
        "1\n00:00:00,000 --> 00:00:02,500\na tone\n\n2\n00:00:30,000 --> 01:02:05,250\nhello <world> & more\n"
    )
    assert vtt(segments) == (
        "WEBVTT\n\n00:00:00.000 --> 00:00:02.500\na tone\n\n"
        "00:00:30.000 --> 01:02:05.250\nhello &lt;world&gt; &amp; more\n"
    )
    assert srt([]) == "" and vtt([]) == "WEBVTT\n"


# --- Whisper's tokens as times ------------------------------------------------------------------


def test_timestamp_tokens_become_segments_and_text_without_times_one_segment():
    first = 1000  # <|0.00|>; each next id 20 ms later
    tokens = [
        first,
        5,
        6,
        first + 150,
        first + 150,
        7,
        first + 260,
        8,
    ]  # the last one runs to the window's end
    assert [(s.start, s.end, s.tokens) for s in timing.segments(tokens, first)] == [
        (0.0, 3.0, [5, 6]),
        (3.0, 5.2, [7]),
        (5.2, None, [8]),
    ]
    assert [(s.start, s.end, s.tokens) for s in timing.segments([5, 6], first)] == [(0.0, None, [5, 6])]
    assert timing.segments([], first) == []


def test_tokens_are_grouped_into_words_with_their_punctuation():
    texts = [" Hello", ",", " wor", "ld", "!", ' "', "Yes", '"']
    tokens = list(range(len(texts)))
    words = timing.word_groups(tokens, texts, "en", lambda ids: "".join(texts[i] for i in ids))
    assert [text for text, _ids in words] == [" Hello,", " world!", ' "Yes"']
    assert [ids for _text, ids in words] == [[0, 1], [2, 3, 4], [5, 6, 7]]
    # Without spaces between words (Japanese, Chinese): each character is a word; two tokens that
    # spell one character (each half alone decodes to U+FFFD) stay together.
    halves = ["今", "\ufffd", "\ufffd", "は"]
    joined = timing.word_groups([0, 1, 2, 3], halves, "ja", lambda ids: "日" if ids == [1, 2] else "?")
    assert joined == [("今", [0]), ("日", [1, 2]), ("は", [3])]


def test_word_times_come_from_where_each_words_first_token_is_heard():
    # Three tokens then the end token; token 0 heard from position 0, token 1 from 25, 2 from 40, end 60.
    alignment = [(0, 0), (0, 10), (1, 25), (1, 30), (2, 40), (3, 60)]
    assert timing.word_times([2, 1], alignment) == [(0.0, 0.8), (0.8, 1.2)]
