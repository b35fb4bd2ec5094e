"""Translation with Helsinki-NLP's opus-mt models; long texts are translated part by part.

transformers 5 has no translation or summarization pipeline: ``seq2seq_forward`` does their job
(AutoModelForSeq2SeqLM + generate on padded batches), shared with summarization.
"""

from __future__ import annotations

from typing import Any

from desktop.errors import Stopped
from desktop.files import OWNER, Limits
from desktop.models.ref import ModelRef
from desktop.tasks.generate import stop_when
from desktop.tasks.sentiment import padded
from desktop.tasks.spec import ModelView, Piece, Prepared, Result, Stop, TaskSpec
from desktop.tasks.text import TextLimits, check_text, pack_chunks, split_sentences

LIMITS = TextLimits(min_chars=2, max_chars=50_000)
PAIRS = (
    ("en", "fr", "English → French"),
    ("en", "de", "English → German"),
    ("en", "es", "English → Spanish"),
    ("fr", "en", "French → English"),
    ("de", "en", "German → English"),
    ("es", "en", "Spanish → English"),
)
MODELS = tuple(ModelRef(f"Helsinki-NLP/opus-mt-{src}-{dst}", "main", label, 300) for src, dst, label in PAIRS)


def chunk_pieces(model: ModelView, text: str, budget: int) -> list[Piece]:
    """``text`` split at sentence ends into chunks of at most ``budget`` tokens, as token ids."""
    chunks = pack_chunks(split_sentences(text), model.count_tokens, budget) or [text]
    ids = model.encode(chunks, add_special_tokens=True, truncation=True, max_length=model.max_tokens)[
        "input_ids"
    ]
    return [
        Piece(0, part, ids=list(row), text=chunk)
        for part, (chunk, row) in enumerate(zip(chunks, ids, strict=True))
    ]


def seq2seq_forward(model: ModelView, pieces: list[Piece], stop: Stop, **kwargs: Any) -> list[str]:
    """One output text per piece; raises Stopped when ``stop()`` turned true (nothing is kept)."""
    inputs = padded(model, [p.ids for p in pieces])
    out = model.model.generate(**inputs, stopping_criteria=stop_when(stop), **kwargs)
    if stop is not None and stop():
        raise Stopped
    return [text.strip() for text in model.decode(out)]


def seq2seq_limits(device: str) -> tuple[int, int]:
    return (4096, 16) if device == "cpu" else (65536, 256)


class Translate(TaskSpec):
    id = "translate"
    title = "Translate"
    description = "Translates between language pairs. Long texts are split at sentence ends, never cut."
    kind = "seq2seq"
    default_model = MODELS[0]
    alternatives = MODELS[1:]
    examples = (["Hello, how are you today? The weather is lovely."],)
    columns = ("translation",)

    def validate(self, inputs: dict[str, Any], limits: Limits = OWNER) -> dict[str, Any]:
        return {"text": check_text(inputs.get("text"), LIMITS)}

    def preprocess(self, model: ModelView, inputs: dict[str, Any], options: dict[str, Any]) -> Prepared:
        return Prepared(chunk_pieces(model, inputs["text"], max(8, model.max_tokens - 2)))

    def forward(
        self, model: ModelView, pieces: list[Piece], options: dict[str, Any], stop: Stop
    ) -> list[Any]:
        return seq2seq_forward(
            model, pieces, stop, num_beams=1, max_new_tokens=min(512, 2 * model.max_tokens)
        )

    def postprocess(
        self, model: ModelView, prepared: Prepared, outputs: list[Any], options: dict[str, Any]
    ) -> Result:
        translation = " ".join(part for part in outputs if part)
        parts = len(prepared.pieces)
        notes = [f"The text was translated in {parts} parts."] if parts > 1 else []
        return Result(
            data={"translation": translation, "chunks": parts},
            outputs=(translation,),
            text=translation,
            notes=notes,
        )

    def extra_cost(self, options: dict[str, Any]) -> int:
        return 512

    def batch_limits(self, device: str, model: ModelView) -> tuple[int, int]:
        return seq2seq_limits(device)


SPEC = Translate()
