"""Labels you choose (zero-shot): a text or a photo scored against labels a person types.

Texts go through an NLI model. Each label becomes a hypothesis ("This text is about billing.")
and the model reads every (text, hypothesis) pair: one text with K labels is K pieces, which the
engine batches with every other pair (length-sorted, token budget) and ``postprocess`` regroups.
One label applies (the default): a softmax of the entailment logits over the labels, so the
scores add up to 1. More than one can apply: each label on its own, a softmax of entailment
against contradiction (what transformers' zero-shot pipeline does; with a single label this is
the only meaningful score, so it is used then too).

Photos go through a CLIP-class model: one image embedding per photo, one text embedding per
label prompt ("a photo of a {}."), scores from their similarities (a softmax over the labels; a
SigLIP, trained with a sigmoid, scores each label on its own when more than one can apply).

The label list, the template and the maths are pure functions in :mod:`desktop.tasks.label_rules`;
torch is imported in ``forward``.
"""

from __future__ import annotations

from typing import Any

from desktop.errors import UserError
from desktop.files import OWNER, Limits
from desktop.files.images import open_photo
from desktop.models.compat import nli_label_ids
from desktop.models.ref import ModelRef
from desktop.tasks.classify import input_type
from desktop.tasks.label_rules import (
    MAX_LABELS,
    PHOTO_TEMPLATE,
    TEXT_TEMPLATE,
    check_template,
    fill,
    label_column,
    labels_result,
    parse_labels,
    photo_scores,
    text_scores,
)
from desktop.tasks.sentiment import LIMITS, classifier_limits, padded
from desktop.tasks.spec import ModelView, Option, Piece, Prepared, Result, Stop, TaskSpec, textbox
from desktop.tasks.text import check_text

TEXT_KIND, IMAGE_KIND = "zero-shot-classification", "zero-shot-image-classification"
AUTO = "auto"
AUTO_LABEL = "Automatic (mDeBERTa NLI for texts, CLIP for photos)"
NLI_MODEL = ModelRef(
    "MoritzLaurer/mDeBERTa-v3-base-mnli-xnli", "main", "mDeBERTa-v3 base NLI (multilingual)", 1_120
)
NLI_MODELS = (
    NLI_MODEL,
    ModelRef(
        "MoritzLaurer/multilingual-MiniLMv2-L6-mnli-xnli",
        "main",
        "MiniLM L6 NLI (multilingual, fastest)",
        430,
    ),
    ModelRef("facebook/bart-large-mnli", "main", "BART large MNLI (English, slowest)", 1_630),
)
PHOTO_MODEL = ModelRef("openai/clip-vit-base-patch32", "main", "CLIP ViT-B/32 (photos)", 605)
PHOTO_MODELS = (
    PHOTO_MODEL,
    ModelRef("google/siglip-base-patch16-224", "main", "SigLIP base (photos, slower)", 813),
)

OPTIONS = (
    Option(
        "labels",
        "",
        f"The labels to choose from, separated by commas or one per line (1 to {MAX_LABELS}).",
        str,
        textbox(
            "Labels",
            f"Separated by commas or one per line, up to {MAX_LABELS}",
            "billing, shipping, broken product",
            2,
        ),
        main=True,
    ),
    Option(
        "multi_label",
        False,
        "More than one label can apply: each is scored on its own (the scores do not add up to 100%).",
        bool,
        ("checkbox", "More than one can apply", "Each label is scored on its own"),
        main=True,
    ),
    Option(
        "template",
        TEXT_TEMPLATE,
        "How each label is put to the NLI model for a text; {} stands for the label.",
        str,
        textbox("Hypothesis template (texts)", "{} stands for the label; photos use “a photo of a {}.”"),
    ),
)


# --- the model steps -----------------------------------------------------------------------


def pair_pieces(model: ModelView, texts: list[str], names: tuple[str, ...], template: str) -> list[Prepared]:
    """Each text paired with every label's hypothesis, as token ids (one tokenizer call for them all).
    A text too long to sit next to a hypothesis is cut, with a note."""
    hypotheses = [fill(template, name) for name in names]
    limit = model.max_tokens
    special = model.tokenizer.num_special_tokens_to_add(pair=True)
    own = model.encode(hypotheses, add_special_tokens=False)["input_ids"]
    room = limit - special - max(len(ids) for ids in own)
    if room < 1:
        raise UserError(
            f"The template with the longest label is too long for {model.display}, which reads at most "
            f"{limit} tokens: shorten the labels or the template."
        )
    lengths = [len(ids) for ids in model.encode(texts, add_special_tokens=False)["input_ids"]]
    pairs = model.encode(
        [text for text in texts for _ in names],
        text_pair=hypotheses * len(texts),
        truncation="only_first",
        max_length=limit,
        return_token_type_ids=True,
    )
    prepared = []
    for row, length in enumerate(lengths):
        span = range(row * len(names), (row + 1) * len(names))
        pieces = [
            Piece(0, part, ids=list(pairs["input_ids"][i]), types=list(pairs["token_type_ids"][i]))
            for part, i in enumerate(span)
        ]
        notes = []
        if length > room:
            notes.append(
                f"The text is {length:,} tokens long and {model.display} reads at most {room:,} of it next "
                "to a label: only the beginning was analysed."
            )
        prepared.append(Prepared(pieces, notes=notes))
    return prepared


def nli_forward(model: ModelView, pieces: list[Piece]) -> list[tuple[float, float]]:
    """(entailment, contradiction) logits of each (text, hypothesis) piece."""
    import inspect

    import torch

    net = model.model
    left = getattr(model.tokenizer, "padding_side", "") == "left"
    inputs = padded(model, [p.ids for p in pieces], left=left)
    # Token types only where the model has a second one (BERT; not XLM-R, DeBERTa-v3 or BART).
    if getattr(net.config, "type_vocab_size", 0) > 1 and any(piece.types for piece in pieces):
        types = torch.zeros_like(inputs["input_ids"])
        width = types.shape[1]
        for i, piece in enumerate(pieces):
            start = width - len(piece.types) if left else 0
            types[i, start : start + len(piece.types)] = torch.tensor(piece.types, dtype=torch.long)
        inputs["token_type_ids"] = types
    if "use_cache" in inspect.signature(net.forward).parameters:
        inputs["use_cache"] = False
    entail, contra = nli_label_ids(net.config.label2id, model.display)
    logits = net(**inputs).logits.float()
    return [(row[entail], row[contra]) for row in logits.tolist()]


def photo_forward(model: ModelView, pieces: list[Piece], names: tuple[str, ...]) -> list[list[float]]:
    """Each photo's similarity logits with every label's prompt (text embeddings once per batch)."""
    import torch

    net = model.model
    prompts = [fill(PHOTO_TEMPLATE, name) for name in names]
    if _sigmoid_trained(model):  # SigLIP's text tower was trained on prompts padded to 64 tokens
        tokens = model.encode(
            prompts, padding="max_length", max_length=64, truncation=True, return_tensors="pt"
        )
    else:
        tokens = model.encode(prompts, padding=True, truncation=True, return_tensors="pt")
    inputs = {k: v.to(net.device) for k, v in tokens.items() if k in ("input_ids", "attention_mask")}
    pixels = torch.stack([p.image for p in pieces]).to(net.device, dtype=net.dtype)
    return net(**inputs, pixel_values=pixels).logits_per_image.float().tolist()


def _sigmoid_trained(model: ModelView) -> bool:
    """True for image-text models trained with a sigmoid loss (SigLIP: they have a logit bias)."""
    return getattr(model.model, "logit_bias", None) is not None


class Labels(TaskSpec):
    """Texts through an NLI model, photos through a CLIP-class model, scored against your labels."""

    id = "labels"
    title = "Labels"
    description = (
        "Sort a text or a photo into labels you choose: type the labels, and every one gets a score. "
        "Tick “More than one can apply” to score each label on its own."
    )
    kind = TEXT_KIND
    default_model = ModelRef(AUTO, "main", AUTO_LABEL)
    alternatives = (*NLI_MODELS, *PHOTO_MODELS)
    inputs = ("input_type", "text", "image")
    options = OPTIONS
    examples = (
        [
            "Text",
            "My package never arrived and nobody answers my emails.",
            None,
            "billing, shipping, broken product",
        ],
    )
    columns = ("label", "score")
    chart_title = "label"
    folder_kind = "image"  # a folder of photos, one per row

    # --- which kind of model -------------------------------------------------------------

    def kind_for(self, inputs: dict[str, Any]) -> str:
        return IMAGE_KIND if input_type(inputs.get("input_type")) == "image" else TEXT_KIND

    def kinds(self) -> tuple[str, ...]:
        return (TEXT_KIND, IMAGE_KIND)

    def default_for(self, kind: str) -> ModelRef:
        return PHOTO_MODEL if kind == IMAGE_KIND else NLI_MODEL

    def is_automatic(self, model: str | None) -> bool:
        return (model or "").strip() in ("", AUTO, AUTO_LABEL)

    def cli_inputs(self, value: str) -> dict[str, Any]:
        return {"input_type": "Text", "text": value, "image": None}

    # --- the steps -------------------------------------------------------------------------

    def check_options(self, options: dict[str, Any]) -> dict[str, Any]:
        checked = {o.name: o.check(options.get(o.name)) for o in self.options if o.name != "labels"}
        checked["labels"] = parse_labels(options.get("labels"))
        checked["template"] = check_template(checked["template"])
        return checked

    def fit_options(self, model: ModelView, options: dict[str, Any]) -> list[str]:
        names, multi = options["labels"].names, options["multi_label"]
        notes = list(options["labels"].notes)
        if model.kind == TEXT_KIND:
            if len(names) == 1 and not multi:
                notes.append(
                    "With one label, its score says how well it applies on its own (as with “More than "
                    "one can apply”)."
                )
            return notes
        if options["template"] != TEXT_TEMPLATE:
            notes.append(f"The template is for texts: photos are compared with “{PHOTO_TEMPLATE}”.")
        if _sigmoid_trained(model):
            return notes
        if len(names) == 1:
            raise UserError(
                f"A photo needs at least two labels: {model.display} tells which label fits best, not "
                "whether one label fits on its own."
            )
        if multi:
            notes.append(
                f"{model.display} compares the labels with each other: its scores add up to 100% even when "
                "more than one can apply."
            )
        return notes

    def validate(self, inputs: dict[str, Any], limits: Limits = OWNER) -> dict[str, Any]:
        if input_type(inputs.get("input_type")) == "text":
            return {"input_type": "Text", "text": check_text(inputs.get("text"), LIMITS)}
        return {"input_type": "Image", "image": open_photo(inputs.get("image")).image}

    def file_inputs(self, text: str | None, holds: str = "text") -> dict[str, Any]:
        if holds == "image":  # a folder of photos: each row is a photo's path
            return {"input_type": "Image", "text": None, "image": text}
        return {"input_type": "Text", "text": text, "image": None}

    def preprocess(self, model: ModelView, inputs: dict[str, Any], options: dict[str, Any]) -> Prepared:
        (prepared,) = self.preprocess_many(model, [inputs], options)
        if isinstance(prepared, UserError):
            raise prepared
        return prepared

    def preprocess_many(
        self, model: ModelView, inputs: list[dict[str, Any]], options: dict[str, Any]
    ) -> list[Any]:
        if not inputs:
            return []
        names = options["labels"].names
        if model.kind == TEXT_KIND:
            return pair_pieces(model, [one["text"] for one in inputs], names, options["template"])
        pixels = model.pixels([one["image"] for one in inputs])
        return [Prepared([Piece(0, 0, image=row)]) for row in pixels]

    def forward(
        self, model: ModelView, pieces: list[Piece], options: dict[str, Any], stop: Stop
    ) -> list[Any]:
        if model.kind == TEXT_KIND:
            return nli_forward(model, pieces)
        return photo_forward(model, pieces, options["labels"].names)

    def postprocess(
        self, model: ModelView, prepared: Prepared, outputs: list[Any], options: dict[str, Any]
    ) -> Result:
        names, multi = options["labels"].names, options["multi_label"]
        if model.kind == TEXT_KIND:
            scores = text_scores(outputs, multi or len(names) == 1)
        else:
            scores = photo_scores(outputs[0], multi or len(names) == 1, _sigmoid_trained(model))
        return labels_result(names, scores)

    # --- file runs ---------------------------------------------------------------------------

    def result_columns(self, options: dict[str, Any]) -> tuple[str, ...]:
        return (*self.columns, *(label_column(name) for name in options["labels"].names))

    def pieces_per_input(self, options: dict[str, Any]) -> int:
        return len(options["labels"].names)

    def row_values(self, result: Result) -> dict[str, Any]:
        ranked = result.data["labels"]
        scores = {label_column(item["label"]): item["score"] for item in ranked}
        return {"label": ranked[0]["label"], "score": ranked[0]["score"], **scores}

    def chart_values(self, values: dict[str, Any]) -> list[str]:
        return [values["label"]] if values.get("label") else []

    def batch_limits(self, device: str, model: ModelView) -> tuple[int, int]:
        if model.kind == TEXT_KIND:
            return classifier_limits(device, model)
        return (1 << 30, 8) if device == "cpu" else (1 << 30, 64)


SPEC = Labels()
