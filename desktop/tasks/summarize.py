"""Summarization with DistilBART-CNN; texts longer than the model reads are summarized in parts,
each part getting its share of the requested length, so the whole stays within it."""

from __future__ import annotations

import itertools
from typing import Any

from desktop.errors import UserError
from desktop.files import OWNER, Limits
from desktop.models.ref import ModelRef
from desktop.tasks.spec import ModelView, Option, Piece, Prepared, Result, Stop, TaskSpec, slider
from desktop.tasks.text import TextLimits, check_text
from desktop.tasks.translate import chunk_pieces, seq2seq_forward, seq2seq_limits

LIMITS = TextLimits(min_chars=20, max_chars=100_000)
BEAMS = 2

OPTIONS = (
    Option(
        "min_length",
        30,
        "Shortest summary, in tokens.",
        int,
        slider("Min length (tokens)"),
        1,
        1000,
    ),
    Option(
        "max_length",
        130,
        "Longest summary, in tokens.",
        int,
        slider("Max length (tokens)"),
        2,
        2000,
    ),
)


def shares(min_length: int, max_length: int, parts: int) -> tuple[int, int]:
    """(min, max) new tokens for each of ``parts`` parts of a text."""
    share_max = max(8, max_length // parts)
    share_min = min(share_max - 1, max(1, min_length // parts))
    return share_min, share_max


class Summarize(TaskSpec):
    id = "summarize"
    title = "Summarize"
    description = (
        "Shortens a long text. Texts longer than the model reads at once are summarized part by part."
    )
    kind = "seq2seq"
    default_model = ModelRef("sshleifer/distilbart-cnn-12-6", "a4f8f3e", "DistilBART (CNN news)", 1220)
    alternatives = (ModelRef("facebook/bart-large-cnn", "main", "BART large (CNN news)", 1630),)
    options = OPTIONS
    examples = (
        [
            "The tower is 324 metres (1,063 ft) tall, about the same height as an 81-storey building, "
            "and the tallest structure in Paris. Its base is square, measuring 125 metres (410 ft) on each side. "
            "During its construction, the Eiffel Tower surpassed the Washington Monument to become the tallest "
            "man-made structure in the world, a title it held for 41 years until the Chrysler Building in New "
            "York City was finished in 1930."
        ],
    )
    columns = ("summary",)

    def check_options(self, options: dict[str, Any]) -> dict[str, Any]:
        checked = super().check_options(options)
        if checked["min_length"] > checked["max_length"]:
            raise UserError(
                f"Min length ({checked['min_length']}) must not be more than max length ({checked['max_length']})."
            )
        return checked

    def validate(self, inputs: dict[str, Any], limits: Limits = OWNER) -> dict[str, Any]:
        return {"text": check_text(inputs.get("text"), LIMITS)}

    def preprocess(self, model: ModelView, inputs: dict[str, Any], options: dict[str, Any]) -> Prepared:
        pieces = chunk_pieces(model, inputs["text"], model.max_tokens)
        share = shares(options["min_length"], options["max_length"], len(pieces))
        for piece in pieces:
            piece.group = share  # parts of texts split differently get different lengths
        return Prepared(pieces)

    def forward(
        self, model: ModelView, pieces: list[Piece], options: dict[str, Any], stop: Stop
    ) -> list[Any]:
        outputs: dict[int, str] = {}
        order = sorted(range(len(pieces)), key=lambda i: pieces[i].group)
        for (low, high), same in itertools.groupby(order, key=lambda i: pieces[i].group):
            chosen = list(same)
            texts = seq2seq_forward(
                model,
                [pieces[i] for i in chosen],
                stop,
                min_new_tokens=low,
                max_new_tokens=high,
                num_beams=BEAMS,
                no_repeat_ngram_size=3,
            )
            outputs.update(zip(chosen, texts, strict=True))
        return [outputs[i] for i in range(len(pieces))]

    def postprocess(
        self, model: ModelView, prepared: Prepared, outputs: list[Any], options: dict[str, Any]
    ) -> Result:
        summary = " ".join(part for part in outputs if part)
        parts = len(prepared.pieces)
        notes = (
            [
                f"The text was longer than {model.display} reads at once, so it was summarized in {parts} parts."
            ]
            if parts > 1
            else []
        )
        return Result(
            data={"summary": summary, "chunks": parts}, outputs=(summary,), text=summary, notes=notes
        )

    def extra_cost(self, options: dict[str, Any]) -> int:
        return int(options["max_length"]) * BEAMS

    def batch_limits(self, device: str, model: ModelView) -> tuple[int, int]:
        return seq2seq_limits(device)


SPEC = Summarize()
