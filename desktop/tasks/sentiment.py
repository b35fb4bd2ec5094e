"""Sentiment: a label with the confidence of every class, and a choice of model."""

from __future__ import annotations

from typing import Any

from desktop.tasks.spec import ModelRef, Result, TaskSpec
from desktop.tasks.text import TextLimits, check_text

LIMITS = TextLimits(min_chars=3, max_chars=20_000)


def scores_to_label(scores: list[dict[str, Any]]) -> dict[str, float]:
    """Pipeline scores → ``{label: confidence}`` sorted best first (what gr.Label shows)."""
    ordered = sorted(scores, key=lambda s: s["score"], reverse=True)
    return {s["label"]: round(float(s["score"]), 6) for s in ordered}


def truncation_note(loaded, text: str) -> list[str]:
    """A warning when ``text`` is longer than the model takes (it is cut, not refused)."""
    limit = loaded.max_tokens
    count = loaded.count_tokens(text)
    if count <= limit:
        return []
    return [
        f"The text is {count:,} tokens long and {loaded.display} reads at most {limit:,}: "
        "only the beginning was analysed."
    ]


def classify_text(runtime, spec: TaskSpec, text: str, model: str | None, progress=None) -> Result:
    """Shared by sentiment and the text side of classification."""
    text = check_text(text, LIMITS)
    loaded = runtime.load(spec, model, kind="text-classification", progress=progress)
    limit = loaded.max_tokens

    def call(
        pipe,
    ):  # the tokenizer is used under the runtime's lock only (fast tokenizers are not thread-safe)
        return pipe(text, top_k=None, truncation=True, max_length=limit), truncation_note(loaded, text)

    scores, notes = runtime.infer(loaded, call)
    confidences = scores_to_label(scores)
    best, score = next(iter(confidences.items()))
    return Result(
        data={"label": best, "score": score, "scores": confidences},
        outputs=(confidences,),
        text=f"{best} ({score:.1%})",
        notes=notes,
        model=loaded.display,
    )


def predict(runtime, text: str, model: str | None = None, *, progress=None) -> Result:
    return classify_text(runtime, SPEC, text, model, progress)


def _inputs():
    import gradio as gr

    return [
        gr.Textbox(
            label="Text",
            lines=4,
            placeholder="Type or paste a review, a message, a sentence…",
            render=False,
        )
    ]


def _outputs():
    import gradio as gr

    return [gr.Label(label="Sentiment", num_top_classes=5, render=False)]


SPEC = TaskSpec(
    id="sentiment",
    title="Sentiment",
    description="Is a text positive or negative? Shows the confidence of every class.",
    kind="text-classification",
    default_model=ModelRef(
        "distilbert/distilbert-base-uncased-finetuned-sst-2-english",
        "714eb0f",
        "DistilBERT (SST-2, English)",
        268,
    ),
    alternatives=(
        ModelRef(
            "nlptown/bert-base-multilingual-uncased-sentiment",
            "main",
            "BERT multilingual (1-5 stars)",
            669,
        ),
    ),
    inputs=_inputs,
    outputs=_outputs,
    predict=predict,
    examples=(
        ["I love this product! It works exactly as described."],
        ["The delivery was late and the box was damaged."],
        ["The film was long, but the ending made it worth it."],
    ),
)
