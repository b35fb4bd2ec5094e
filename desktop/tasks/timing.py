"""Where Whisper's words are: a window's tokens into timed segments, and words timed from the
alignment of its text with the sound.

Whisper writes times as tokens (``<|1.20|>``, one every 20 ms after ``<|notimestamps|>``): a segment
is the text between a start and an end time. Word times come from the model's alignment heads: the
engine returns, for each text token, the encoder positions it attends to (50 a second, dynamic time
warping over the cross-attention); a word starts where its first token does. Punctuation is kept
with the word it belongs to, as OpenAI's Whisper does. Pure Python; any thread.
"""

from __future__ import annotations

import string
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

SECONDS_PER_TIMESTAMP = 0.02
POSITIONS_PER_SECOND = 50
#: Languages written without spaces between words: each character (or token) is a word.
UNSPACED = {"zh", "ja", "th", "lo", "my", "yue"}
PREPENDED = "\"'“¿([{-"
APPENDED = "\"'.。,，!！?？:：”)]}、"


@dataclass
class Segment:
    """Text tokens between two times (seconds from the window's start; ``end`` None: the window's end)."""

    start: float
    end: float | None
    tokens: list[int] = field(default_factory=list)
    words: list[dict[str, Any]] = field(default_factory=list)


def segments(tokens: Sequence[int], first_timestamp: int) -> list[Segment]:
    """A window's generated tokens (timestamps are ids from ``first_timestamp`` on) as segments;
    with no timestamps at all, one segment of the whole window."""
    out: list[Segment] = []
    start: float | None = None
    current: list[int] = []
    for token in tokens:
        if token < first_timestamp:
            if start is None:  # text before any time: it starts where the last segment ended
                start = (out[-1].end or 0.0) if out else 0.0
            current.append(token)
            continue
        time = (token - first_timestamp) * SECONDS_PER_TIMESTAMP
        if start is not None and current:
            out.append(Segment(start, time, current))
            start, current = None, []
        else:
            start = time
    if current:
        out.append(Segment(start or 0.0, None, current))
    return out


def word_groups(
    tokens: list[int], texts: list[str], language: str, decode: Callable[[list[int]], str]
) -> list[tuple[str, list[int]]]:
    """A segment's text tokens grouped into words: (the word's text, with its leading space; its tokens).
    ``texts`` are the tokens' own texts; ``decode`` joins tokens whose bytes make one character."""
    pieces: list[tuple[str, list[int]]] = []
    waiting: list[int] = []
    for token, text in zip(tokens, texts, strict=True):
        waiting.append(token)
        whole = text if len(waiting) == 1 else decode(waiting)
        if "\ufffd" not in whole:  # a whole character (several tokens may spell one)
            pieces.append((whole, waiting))
            waiting = []
    if waiting:
        pieces.append((decode(waiting), waiting))
    if language in UNSPACED:
        words = pieces
    else:
        words = []
        for text, ids in pieces:
            if not words or text.startswith(" ") or text.strip() in string.punctuation:
                words.append((text, list(ids)))
            else:
                words[-1] = (words[-1][0] + text, words[-1][1] + ids)
    return _merge_punctuation(words)


def _merge_punctuation(words: list[tuple[str, list[int]]]) -> list[tuple[str, list[int]]]:
    out: list[tuple[str, list[int]]] = []
    carried: tuple[str, list[int]] | None = None
    for text, ids in words:
        if carried is not None:
            text, ids = (
                carried[0] + text.lstrip() if carried[0].endswith(" ") else carried[0] + text,
                carried[1] + ids,
            )
            carried = None
        if text.strip() and text.strip() in APPENDED and out:
            out[-1] = (out[-1][0] + text.strip(), out[-1][1] + ids)
        elif text.strip() and text.strip() in PREPENDED:
            carried = (text, ids)
        else:
            out.append((text, ids))
    if carried is not None:
        out.append(carried)
    return out


def word_times(counts: list[int], alignment: Sequence[tuple[int, int]]) -> list[tuple[float, float]]:
    """Each word's (start, end) in seconds from the window's start, from the number of tokens of each
    word (in order) and the alignment of those tokens plus the end token: (token index, position)."""
    starts: dict[int, int] = {}
    for index, position in alignment:
        starts.setdefault(int(index), int(position))
    bounds = [0]
    for count in counts:
        bounds.append(bounds[-1] + count)
    last = max(starts.values(), default=0)

    def at(index: int) -> float:
        return starts.get(index, last) / POSITIONS_PER_SECOND

    return [(at(begin), at(end)) for begin, end in zip(bounds, bounds[1:], strict=False)]


def timed_words(
    segment: Segment,
    groups: list[tuple[str, list[int]]],
    times: list[tuple[float, float]],
    offset: float,
    end: float,
) -> list[dict[str, Any]]:
    """A segment's words as data: text and times in the recording (``offset`` is the window's start),
    kept inside the segment (``end``: its end in the recording) and in order."""
    floor = offset + segment.start
    out = []
    for (text, _ids), (start, stop) in zip(groups, times, strict=True):
        start = min(max(offset + start, floor), end)
        stop = min(max(offset + stop, start), end)
        out.append({"start": round(start, 2), "end": round(stop, 2), "word": text})
        floor = start
    return out
