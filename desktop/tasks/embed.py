"""Embeddings: texts as vectors, with a sentence-embedding model, the way sentence-transformers does.

Each text is read up to what the model reads (the rest is cut, with a note, as Sentiment does);
padded batches go through the encoder; its token vectors are pooled as the model folder says
(mean, CLS, max or mean-sqrt-len: ``1_Pooling/config.json``) and scaled to length 1 when its
``modules.json`` has a Normalize step, as ``SentenceTransformer.encode`` does. One request may hold
many texts: each is one piece, so the engine batches them, by length (and merges them with other
requests).
No tab of its own: the Local API's ``/v1/embeddings``, the ``/embed`` endpoint, ``pipedesk run embed``.
"""

from __future__ import annotations

from typing import Any

from desktop.errors import UserError
from desktop.files import OWNER, Limits
from desktop.models.ref import ModelRef
from desktop.tasks.sentiment import classifier_limits, padded, text_pieces
from desktop.tasks.spec import ModelView, Piece, Prepared, Result, Stop, TaskSpec
from desktop.tasks.text import TextLimits, check_text

LIMITS = TextLimits(min_chars=1, max_chars=20_000)
#: Texts in one request (what OpenAI's embeddings endpoint takes).
MAX_TEXTS = 2048
MINILM = ModelRef("sentence-transformers/all-MiniLM-L6-v2", "main", "all-MiniLM-L6-v2 (English, fast)", 91)
MULTILINGUAL = ModelRef(
    "sentence-transformers/paraphrase-multilingual-MiniLM-L12-v2",
    "main",
    "paraphrase-multilingual-MiniLM-L12-v2 (50+ languages)",
    471,
)
BGE_SMALL = ModelRef("BAAI/bge-small-en-v1.5", "main", "BGE small v1.5 (English, better)", 134)


def check_texts(value: Any) -> list[str]:
    """A text or a list of texts to embed, each stripped; UserError (naming which) otherwise."""
    texts = [value] if isinstance(value, str) else value
    if not isinstance(texts, list) or not texts:
        raise UserError("Give a text, or a list of texts, to embed.")
    if len(texts) > MAX_TEXTS:
        raise UserError(
            f"{len(texts):,} texts were given; at most {MAX_TEXTS:,} are embedded in one request."
        )
    if len(texts) == 1:
        return [check_text(texts[0], LIMITS)]
    checked = []
    for number, text in enumerate(texts, start=1):
        try:
            checked.append(check_text(text, LIMITS))
        except UserError as exc:
            raise UserError(f"Text {number} of {len(texts)}: {exc}") from None
    return checked


def pool(hidden: Any, mask: Any, mode: str, normalize: bool) -> Any:
    """One vector per row of token vectors ``hidden`` (batch x tokens x width, ``mask`` marking real
    tokens), as sentence-transformers' Pooling and Normalize modules compute it."""
    import torch

    if mode == "cls":
        vectors = hidden[:, 0]
    elif mode == "max":
        vectors = (
            hidden.masked_fill(~mask.bool().unsqueeze(-1), torch.finfo(hidden.dtype).min).max(dim=1).values
        )
    else:
        weights = mask.unsqueeze(-1).to(hidden.dtype)
        sums, counts = (hidden * weights).sum(dim=1), weights.sum(dim=1).clamp(min=1e-9)
        vectors = sums / (counts.sqrt() if mode == "mean_sqrt_len" else counts)
    return torch.nn.functional.normalize(vectors, p=2, dim=1) if normalize else vectors


class Embed(TaskSpec):
    id = "embed"
    title = "Embeddings"
    description = (
        "Turns texts into vectors (for search, clustering, finding similar texts): one per text, "
        "the same for the same text."
    )
    kind = "sentence-embedding"
    default_model = MINILM
    alternatives = (MULTILINGUAL, BGE_SMALL)
    inputs = ("text",)
    ui = "files"  # no tab: the API and the command line
    file_input = None
    examples = (["Pipedesk runs models on your own computer."],)
    columns = ("embedding",)

    def validate(self, inputs: dict[str, Any], limits: Limits = OWNER) -> dict[str, Any]:
        return {"text": check_texts(inputs.get("text"))}

    def preprocess(self, model: ModelView, inputs: dict[str, Any], options: dict[str, Any]) -> Prepared:
        texts = inputs["text"]
        each = text_pieces(model, texts)
        pieces = [Piece(0, part, ids=one.pieces[0].ids) for part, one in enumerate(each)]
        pieces.sort(key=lambda piece: piece.length)  # batches of like lengths: little padding
        notes = [
            note if len(texts) == 1 else f"Text {number}: {note}"
            for number, one in enumerate(each, start=1)
            for note in one.notes
        ]
        return Prepared(pieces, notes=notes)

    def forward(
        self, model: ModelView, pieces: list[Piece], options: dict[str, Any], stop: Stop
    ) -> list[Any]:
        inputs = padded(model, [p.ids for p in pieces])
        if "token_type_ids" in getattr(model.tokenizer, "model_input_names", ()):
            inputs["token_type_ids"] = inputs["input_ids"].new_zeros(inputs["input_ids"].shape)
        hidden = model.model(**inputs).last_hidden_state.float()
        pooling = model.pooling
        return pool(hidden, inputs["attention_mask"], pooling.mode, pooling.normalize).tolist()

    def postprocess(
        self, model: ModelView, prepared: Prepared, outputs: list[Any], options: dict[str, Any]
    ) -> Result:
        tokens = sum(len(piece.ids) for piece in prepared.pieces)
        by_text = dict(zip((piece.part for piece in prepared.pieces), outputs, strict=True))
        outputs = [by_text[number] for number in range(len(outputs))]  # in the order they were given
        data = {"embeddings": outputs, "dimensions": len(outputs[0]), "tokens": tokens}
        first = ", ".join(f"{value:.4f}" for value in outputs[0][:4])
        many = f"{len(outputs)} vectors" if len(outputs) > 1 else "1 vector"
        return Result(data=data, outputs=(data,), text=f"{many} of {len(outputs[0])} numbers: [{first}, …]")

    def batch_limits(self, device: str, model: ModelView) -> tuple[int, int]:
        return classifier_limits(device, model)


SPEC = Embed()
