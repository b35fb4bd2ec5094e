"""Subtitles from timed segments: SubRip (``.srt``) and WebVTT (``.vtt``), cut as subtitles are.

The one definition of Pipedesk's subtitle rules, used by the Transcribe tab's downloads, the API, the
command line and file runs:

* a cue shows at most :data:`MAX_LINES` lines of at most :data:`MAX_LINE` characters, lines broken
  at spaces and balanced (never in the middle of a word, unless a word alone is too long; text
  without spaces, such as Chinese or Japanese, is broken between characters);
* a new cue starts with each segment, after a sentence ends (``.``, ``?``, ``!``, ``…``, ``。``...),
  at a pause of :data:`PAUSE_SECONDS` or more between words, and when the next word would not fit;
* a cue runs from its first word's start to its last word's end (at least :data:`MIN_SECONDS`,
  where the next cue and the segment's end leave room). With word timestamps those are the words'
  own times; without them, a segment's times are shared among its words by their length.

Pure Python; any thread.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

MAX_LINE = 42
MAX_LINES = 2
PAUSE_SECONDS = 0.6
#: A cue shows at least this long (when the next cue or the segment's end leaves room).
MIN_SECONDS = 0.8
SENTENCE_ENDS = (".", "!", "?", "…", "。", "！", "？", "؟", "।")
_CLOSING = "\"'”’»)]}"


@dataclass(frozen=True)
class Word:
    """A word (or a piece of text) with its times; ``text`` keeps its leading space."""

    start: float
    end: float
    text: str


@dataclass(frozen=True)
class Cue:
    """One subtitle: when it shows and its lines."""

    start: float
    end: float
    lines: tuple[str, ...]


def clock(seconds: float, separator: str = ",") -> str:
    """``75.5`` -> ``00:01:15,500`` (SubRip's clock; WebVTT's with ``separator="."``)."""
    millis = max(0, round(seconds * 1000))
    hours, millis = divmod(millis, 3_600_000)
    minutes, millis = divmod(millis, 60_000)
    secs, millis = divmod(millis, 1000)
    return f"{hours:02d}:{minutes:02d}:{secs:02d}{separator}{millis:03d}"


def srt(segments: list[dict[str, Any]]) -> str:
    """The segments as SubRip subtitles (``.srt``): numbered cues, ``00:00:01,500`` clocks."""
    blocks = [
        f"{number}\n{clock(cue.start)} --> {clock(cue.end)}\n" + "\n".join(cue.lines) + "\n"
        for number, cue in enumerate(cues(segments), start=1)
    ]
    return "\n".join(blocks)


def vtt(segments: list[dict[str, Any]]) -> str:
    """The segments as WebVTT subtitles (``.vtt``): what browsers and most players read."""
    blocks = [
        f"{clock(cue.start, '.')} --> {clock(cue.end, '.')}\n" + "\n".join(map(_vtt_text, cue.lines)) + "\n"
        for cue in cues(segments)
    ]
    return "\n".join(["WEBVTT\n", *blocks])


def cues(segments: list[dict[str, Any]]) -> list[Cue]:
    """The segments (``start``, ``end``, ``text`` and optionally ``words``) cut into cues by the
    rules in the module doc."""
    out: list[Cue] = []
    for segment in segments:
        groups: list[list[Word]] = []
        for word in _words(segment):
            if not groups or _breaks_before(groups[-1], word):
                groups.append([])
            groups[-1].append(word)
        limits = [group[0].start for group in groups[1:]] + [float(segment["end"])] * bool(groups)
        for group, limit in zip(groups, limits, strict=True):
            start, end = group[0].start, max(group[-1].end, group[0].start)
            end = max(end, min(start + MIN_SECONDS, limit))
            out.append(Cue(start, end, tuple(wrap("".join(w.text for w in group)) or [])))
    return out


def wrap(text: str) -> list[str] | None:
    """``text`` in at most :data:`MAX_LINES` balanced lines of at most :data:`MAX_LINE` characters,
    broken at spaces (text without spaces between characters); None when it does not fit."""
    text = " ".join(text.split()) if " " in text.strip() else text.strip()
    if len(text) <= MAX_LINE:
        return [text] if text else []
    if len(text) > MAX_LINE * MAX_LINES + 1:
        return None
    spaces = [i for i, char in enumerate(text) if char == " "]
    cuts = [(i, i + 1) for i in spaces] or [(i, i) for i in range(1, len(text))]
    best = None
    for end, start in cuts:
        first, second = text[:end], text[start:]
        if len(first) <= MAX_LINE and len(second) <= MAX_LINE:
            # Balanced lines, a little better after a comma or other punctuation.
            score = abs(len(first) - len(second)) - (10 if first[-1:] in ",;:–—" else 0)
            if best is None or score < best[0]:
                best = (score, [first, second])
    return best[1] if best else None


def _breaks_before(current: list[Word], word: Word) -> bool:
    last = current[-1].text.rstrip().rstrip(_CLOSING)
    if last.endswith(SENTENCE_ENDS) or word.start - current[-1].end >= PAUSE_SECONDS:
        return True
    return wrap("".join(w.text for w in [*current, word])) is None


def _words(segment: dict[str, Any]) -> list[Word]:
    """A segment's words with times: its own word timestamps, or its time shared by length."""
    given = segment.get("words")
    if given:
        words = [Word(float(w["start"]), float(w["end"]), w["word"]) for w in given]
    else:
        pieces = re.findall(r"\s*\S+", segment["text"])
        words = _spread(float(segment["start"]), float(segment["end"]), pieces)
    out: list[Word] = []
    for word in words:  # a word longer than a line (text without spaces): cut into lines' worth
        if len(word.text.strip()) <= MAX_LINE:
            out.append(word)
            continue
        text = word.text.strip()
        chunks = [text[i : i + MAX_LINE] for i in range(0, len(text), MAX_LINE)]
        out += _spread(word.start, word.end, chunks)
    return [w for w in out if w.text.strip()]


def _spread(start: float, end: float, pieces: list[str]) -> list[Word]:
    """``pieces`` of text sharing the time from ``start`` to ``end`` by their length."""
    total = sum(len(p.strip()) for p in pieces) or 1
    out, at = [], start
    for piece in pieces:
        step = (end - start) * len(piece.strip()) / total
        out.append(Word(round(at, 3), round(at + step, 3), piece))
        at += step
    return out


def _vtt_text(line: str) -> str:
    return line.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
