"""Named entities: cleaned input, grouped entities, highlighted text and a table.

The tutorial's clean-up (collapse whitespace) runs before the model; every
offset shown is mapped back into the text exactly as the user typed it.
"""

from __future__ import annotations

from typing import Any

from desktop.tasks.spec import ModelRef, Result, TaskSpec
from desktop.tasks.text import TextLimits, check_text, clean_whitespace, map_span

LIMITS = TextLimits(min_chars=3, max_chars=20_000)
COLUMNS = ["entity", "type", "score", "start", "end"]


def to_entities(original: str, index: list[int], groups: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Pipeline groups (offsets into cleaned text) → entities with offsets into ``original``."""
    entities = []
    for group in groups:
        start, end = map_span(index, int(group["start"]), int(group["end"]))
        entities.append(
            {
                "entity": original[start:end],
                "type": group["entity_group"],
                "score": round(float(group["score"]), 4),
                "start": start,
                "end": end,
            }
        )
    return sorted(entities, key=lambda e: (e["start"], e["end"]))


def highlighted(original: str, entities: list[dict[str, Any]]) -> dict[str, Any]:
    """The value gr.HighlightedText shows: the original text with entity spans."""
    return {
        "text": original,
        "entities": [{"entity": e["type"], "start": e["start"], "end": e["end"]} for e in entities],
    }


def predict(runtime, text: str, model: str | None = None, *, progress=None) -> Result:
    check_text(text, LIMITS)
    original = text
    cleaned, index = clean_whitespace(original)
    loaded = runtime.load(SPEC, model, progress=progress)
    stride = max(0, min(32, loaded.max_tokens // 4))
    groups = runtime.infer(
        loaded,
        lambda pipe: pipe(cleaned, aggregation_strategy="simple", stride=stride or None),
    )
    entities = to_entities(original, index, groups)
    table = [[e[c] for c in COLUMNS] for e in entities]
    summary = ", ".join(f"{e['entity']} ({e['type']})" for e in entities) or "No entities found."
    return Result(
        data={"entities": entities},
        outputs=(highlighted(original, entities), {"headers": COLUMNS, "data": table}),
        text=summary,
        model=loaded.display,
    )


def _inputs():
    import gradio as gr

    return [gr.Textbox(label="Text", lines=5, placeholder="Paste a paragraph…", render=False)]


def _outputs():
    import gradio as gr

    return [
        gr.HighlightedText(label="Entities in the text", combine_adjacent=False, render=False),
        gr.Dataframe(
            label="Entities",
            headers=COLUMNS,
            datatype=["str", "str", "number", "number", "number"],
            interactive=False,
            buttons=["copy"],
            render=False,
        ),
    ]


SPEC = TaskSpec(
    id="ner",
    title="Entities",
    description="Finds people, places, organisations and other names, grouped into whole entities.",
    kind="token-classification",
    default_model=ModelRef(
        "dbmdz/bert-large-cased-finetuned-conll03-english", "4c53496", "BERT large (CoNLL-03, English)", 1330
    ),
    alternatives=(),
    inputs=_inputs,
    outputs=_outputs,
    predict=predict,
    examples=(
        ["My name is Clara and I live in Berkeley, California."],
        [
            "Hugging Face Inc. is a company based in New York City.   Its headquarters are in DUMBO,\n\nBrooklyn."
        ],
    ),
)
