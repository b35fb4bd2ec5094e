"""Pure text checks and clean-up shared by the text tasks (no model needed)."""

from __future__ import annotations

import re
from dataclasses import dataclass

from desktop.errors import UserError

_WHITESPACE = re.compile(r"\s+")


@dataclass(frozen=True)
class TextLimits:
    """How much text a task accepts before any model sees it."""

    min_chars: int = 3
    max_chars: int = 20_000


def check_text(text: object, limits: TextLimits, what: str = "text") -> str:
    """Return ``text`` stripped, or raise UserError with a sentence a person understands."""
    if text is None or (isinstance(text, str) and not text.strip()):
        raise UserError(f"The {what} is empty: please enter some {what}.")
    if not isinstance(text, str):
        raise UserError(f"The {what} must be a string, not {type(text).__name__}.")
    stripped = text.strip()
    if len(stripped) < limits.min_chars:
        raise UserError(f"The {what} is too short: please enter at least {limits.min_chars} characters.")
    if len(stripped) > limits.max_chars:
        raise UserError(
            f"The {what} is too long: {len(stripped):,} characters, the limit is "
            f"{limits.max_chars:,}. Split it, or analyse it as a file in the Batch tab."
        )
    return stripped


def clean_whitespace(text: str) -> tuple[str, list[int]]:
    """Collapse runs of whitespace to one space and strip the ends (the tutorial's NER clean-up).

    Returns the cleaned text and, for each of its characters, the index of the
    same character in ``text``, so offsets found in the cleaned text can be
    mapped back to what the user typed.
    """
    cleaned: list[str] = []
    index: list[int] = []
    pending_space = -1
    for i, ch in enumerate(text):
        if ch.isspace():
            if cleaned and pending_space < 0:
                pending_space = i
            continue
        if pending_space >= 0:
            cleaned.append(" ")
            index.append(pending_space)
            pending_space = -1
        cleaned.append(ch)
        index.append(i)
    return "".join(cleaned), index


def map_span(index: list[int], start: int, end: int) -> tuple[int, int]:
    """Map a [start, end) span in cleaned text back to the original text."""
    if not index or end <= start:
        return start, end
    start = min(max(start, 0), len(index) - 1)
    end = min(max(end, 1), len(index))
    return index[start], index[end - 1] + 1


_SENTENCE_END = re.compile(r"(?<=[.!?。！？])\s+|\n{2,}")


def split_sentences(text: str) -> list[str]:
    """Split text into sentences (and paragraphs), keeping every non-blank piece."""
    return [part.strip() for part in _SENTENCE_END.split(text) if part and part.strip()]


def pack_chunks(pieces: list[str], size: callable, budget: int) -> list[str]:
    """Group consecutive pieces into chunks whose ``size`` stays within ``budget``.

    A single piece over budget is split on whitespace so nothing is silently
    dropped; the model runner then truncates only what no split can avoid.
    """
    chunks: list[str] = []
    current: list[str] = []
    for piece in pieces:
        if size(piece) > budget:
            if current:
                chunks.append(" ".join(current))
                current = []
            chunks.extend(_split_long(piece, size, budget))
            continue
        candidate = " ".join([*current, piece])
        if current and size(candidate) > budget:
            chunks.append(" ".join(current))
            current = [piece]
        else:
            current.append(piece)
    if current:
        chunks.append(" ".join(current))
    return chunks


def _split_long(piece: str, size: callable, budget: int) -> list[str]:
    words = piece.split()
    out: list[str] = []
    current: list[str] = []
    for word in words:
        candidate = " ".join([*current, word])
        if current and size(candidate) > budget:
            out.append(" ".join(current))
            current = [word]
        else:
            current.append(word)
    if current:
        out.append(" ".join(current))
    return out
