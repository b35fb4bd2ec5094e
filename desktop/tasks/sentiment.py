"""Sentiment: a label with the confidence of every class, and a choice of model.

The text-classification steps here are shared with Classify's text side: the text is read up
to the model's limit (the rest is cut, with a note saying so), padded batches go through the
model, and each row's scores come back as ``{label: confidence}``, best first.
"""

from __future__ import annotations

from typing import Any

from desktop.files import OWNER, Limits
from desktop.models.ref import ModelRef
from desktop.tasks.spec import ModelView, Piece, Prepared, Result, Stop, TaskSpec
from desktop.tasks.text import TextLimits, check_text

LIMITS = TextLimits(min_chars=3, max_chars=20_000)
SST2 = ModelRef(
    "distilbert/distilbert-base-uncased-finetuned-sst-2-english",
    "714eb0f",
    "DistilBERT (SST-2, English)",
    268,
)
STARS = ModelRef(
    "nlptown/bert-base-multilingual-uncased-sentiment", "main", "BERT multilingual (1-5 stars)", 669
)


def truncated_note(count: int, limit: int, display: str) -> str:
    return (
        f"The text is {count:,} tokens long and {display} reads at most {limit:,}: "
        "only the beginning was analysed."
    )


def text_pieces(model: ModelView, texts: list[str]) -> list[Prepared]:
    """Each text as token ids, cut to what the model reads (with a note when something was cut);
    one tokenizer call for all of them."""
    limit = model.max_tokens
    rows = model.encode(texts, add_special_tokens=True, truncation=False)["input_ids"]
    long = [i for i, row in enumerate(rows) if len(row) > limit]
    cut = (
        model.encode([texts[i] for i in long], add_special_tokens=True, truncation=True, max_length=limit)[
            "input_ids"
        ]
        if long
        else []
    )
    prepared = [Prepared([Piece(0, 0, ids=list(row))]) for row in rows]
    for i, row in zip(long, cut, strict=True):
        prepared[i] = Prepared(
            [Piece(0, 0, ids=list(row))],
            notes=[truncated_note(len(rows[i]), limit, model.display)],
        )
    return prepared


def padded(model: ModelView, rows: list[list[int]], left: bool = False) -> dict[str, Any]:
    """Token id rows padded into ``input_ids`` + ``attention_mask`` on the model's device."""
    import torch

    pad = model.pad_id()
    width = max(len(r) for r in rows)
    ids = torch.full((len(rows), width), pad, dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    for i, row in enumerate(rows):
        span = slice(width - len(row), width) if left else slice(0, len(row))
        ids[i, span] = torch.tensor(row, dtype=torch.long)
        mask[i, span] = 1
    device = model.model.device
    return {"input_ids": ids.to(device), "attention_mask": mask.to(device)}


def classify_forward(model: ModelView, pieces: list[Piece]) -> list[dict[str, float]]:
    """Scores of every class for each piece, best first (what the pipeline's ``top_k=None`` gives)."""
    import inspect

    net = model.model
    config = net.config
    inputs = padded(
        model, [p.ids for p in pieces], left=getattr(model.tokenizer, "padding_side", "") == "left"
    )
    if "token_type_ids" in getattr(model.tokenizer, "model_input_names", ()):
        inputs["token_type_ids"] = inputs["input_ids"].new_zeros(inputs["input_ids"].shape)
    if "use_cache" in inspect.signature(net.forward).parameters:
        inputs["use_cache"] = False
    logits = net(**inputs).logits.float()
    if config.problem_type == "regression":
        scores = logits
    elif config.problem_type == "multi_label_classification" or config.num_labels == 1:
        scores = logits.sigmoid()
    else:
        scores = logits.softmax(dim=-1)
    labels = config.id2label
    out = []
    for row in scores.tolist():
        ranked = sorted(range(len(row)), key=lambda i: row[i], reverse=True)
        out.append({labels[i]: round(float(row[i]), 6) for i in ranked})
    return out


def label_result(confidences: dict[str, float], notes: list[str] | None = None) -> Result:
    best, score = next(iter(confidences.items()))
    return Result(
        data={"label": best, "score": score, "scores": confidences},
        outputs=(confidences,),
        text=f"{best} ({score:.1%})",
        notes=list(notes or []),
    )


def classifier_limits(device: str, model: ModelView) -> tuple[int, int]:
    """Measured on 2 cores: 1,024-token batches beat 8,192 by about 10% (activations stay in cache)."""
    if not model.can_pad():
        return (1 << 30, 1)  # no pad token: one row at a time
    if device == "cpu":
        return cpu_budget(512, 16)
    return (131072, 2048)


def cpu_budget(tokens_per_thread: int, rows_per_thread: int) -> tuple[int, int]:
    """(token budget, most rows) for a CPU batch, scaled by the threads torch uses."""
    import torch

    threads = max(2, torch.get_num_threads())
    return tokens_per_thread * threads, rows_per_thread * threads


class Sentiment(TaskSpec):
    id = "sentiment"
    title = "Sentiment"
    description = "Is a text positive or negative? Shows the confidence of every class."
    kind = "text-classification"
    default_model = SST2
    alternatives = (STARS,)
    examples = (
        ["I love this product! It works exactly as described."],
        ["The delivery was late and the box was damaged."],
        ["The film was long, but the ending made it worth it."],
    )
    columns = ("label", "score")
    chart_title = "label"

    def validate(self, inputs: dict[str, Any], limits: Limits = OWNER) -> dict[str, Any]:
        return {"text": check_text(inputs.get("text"), LIMITS)}

    def preprocess(self, model: ModelView, inputs: dict[str, Any], options: dict[str, Any]) -> Prepared:
        return text_pieces(model, [inputs["text"]])[0]

    def preprocess_many(
        self, model: ModelView, inputs: list[dict[str, Any]], options: dict[str, Any]
    ) -> list[Any]:
        return text_pieces(model, [one["text"] for one in inputs]) if inputs else []

    def forward(
        self, model: ModelView, pieces: list[Piece], options: dict[str, Any], stop: Stop
    ) -> list[Any]:
        return classify_forward(model, pieces)

    def postprocess(
        self, model: ModelView, prepared: Prepared, outputs: list[Any], options: dict[str, Any]
    ) -> Result:
        return label_result(outputs[0])

    def chart_values(self, values: dict[str, Any]) -> list[str]:
        return [values["label"]] if values.get("label") else []

    def batch_limits(self, device: str, model: ModelView) -> tuple[int, int]:
        return classifier_limits(device, model)


SPEC = Sentiment()
