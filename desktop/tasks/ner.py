"""Named entities: cleaned input, grouped entities, highlighted text and a table.

The tutorial's clean-up (collapse whitespace) runs before the model; every
offset shown is mapped back into the text exactly as the user typed it.
"""

from __future__ import annotations

from typing import Any

from desktop.files import OWNER, Limits
from desktop.models.ref import ModelRef
from desktop.tasks.sentiment import cpu_budget
from desktop.tasks.spec import ModelView, Piece, Prepared, Result, Stop, TaskSpec
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


class Entities(TaskSpec):
    id = "ner"
    title = "Entities"
    description = "Finds people, places, organisations and other names, grouped into whole entities."
    kind = "token-classification"
    default_model = ModelRef(
        "dbmdz/bert-large-cased-finetuned-conll03-english", "4c53496", "BERT large (CoNLL-03, English)", 1330
    )
    examples = (
        ["My name is Clara and I live in Berkeley, California."],
        [
            "Hugging Face Inc. is a company based in New York City.   Its headquarters are in DUMBO,\n\nBrooklyn."
        ],
    )
    columns = ("entities", "entity_types")
    chart_title = "entity type"

    def validate(self, inputs: dict[str, Any], limits: Limits = OWNER) -> dict[str, Any]:
        check_text(inputs.get("text"), LIMITS)
        return {"text": inputs["text"]}  # offsets point into the text exactly as typed

    def preprocess(self, model: ModelView, inputs: dict[str, Any], options: dict[str, Any]) -> Prepared:
        return self.preprocess_many(model, [inputs], options)[0]

    def preprocess_many(
        self, model: ModelView, inputs: list[dict[str, Any]], options: dict[str, Any]
    ) -> list[Any]:
        # The tutorial's clean-up; long texts are read by the pipeline in overlapping windows (stride),
        # so nothing is cut: the token count only orders and sizes the batches.
        cleaned = [clean_whitespace(one["text"]) for one in inputs]
        rows = (
            model.encode([text for text, _ in cleaned], add_special_tokens=True, truncation=False)[
                "input_ids"
            ]
            if inputs
            else []
        )
        return [
            Prepared(
                [Piece(0, 0, ids=list(row), text=text)], context={"original": one["text"], "index": index}
            )
            for one, (text, index), row in zip(inputs, cleaned, rows, strict=True)
        ]

    def forward(
        self, model: ModelView, pieces: list[Piece], options: dict[str, Any], stop: Stop
    ) -> list[Any]:
        stride = max(0, min(32, model.max_tokens // 4)) or None
        texts = [p.text for p in pieces]
        return model.pipeline(texts, batch_size=len(texts), aggregation_strategy="simple", stride=stride)

    def postprocess(
        self, model: ModelView, prepared: Prepared, outputs: list[Any], options: dict[str, Any]
    ) -> Result:
        original = prepared.context["original"]
        entities = to_entities(original, prepared.context["index"], outputs[0])
        table = [[e[c] for c in COLUMNS] for e in entities]
        summary = ", ".join(f"{e['entity']} ({e['type']})" for e in entities) or "No entities found."
        types = ", ".join(sorted({e["type"] for e in entities}))
        return Result(
            data={"entities": entities, "entity_types": types},
            outputs=(highlighted(original, entities), {"headers": COLUMNS, "data": table}),
            text=summary,
        )

    def chart_values(self, values: dict[str, Any]) -> list[str]:
        return [e["type"] for e in values.get("entities") or []]

    def batch_limits(self, device: str, model: ModelView) -> tuple[int, int]:
        return cpu_budget(512, 16) if device == "cpu" else (65536, 512)


SPEC = Entities()
