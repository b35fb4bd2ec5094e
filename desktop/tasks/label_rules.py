"""The rules of Labels (zero-shot) that need no model: the label list a person types, the hypothesis
template, the scores from the model's logits, and how a result and a file row look.

Pure Python (no torch, no gradio); the task's steps are in :mod:`desktop.tasks.labels`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from desktop.errors import UserError
from desktop.tasks.spec import Result

MAX_LABELS = 50
MAX_LABEL_CHARS = 100
MAX_TEMPLATE_CHARS = 200
TEXT_TEMPLATE = "This text is about {}."
PHOTO_TEMPLATE = "a photo of a {}."
#: Result columns that a label's own column must not take (it is then called "NAME (score)").
TAKEN = {"label", "score", "note"}


@dataclass(frozen=True)
class LabelList:
    """The labels as checked: each once, in the order given, and what was said about the list."""

    names: tuple[str, ...]
    notes: tuple[str, ...] = ()


def parse_labels(value: Any) -> LabelList:
    """The labels in ``value`` (text separated by commas or new lines, or a list): blanks left out,
    letter case aside duplicates scored once, each with a note; UserError for none, more than
    ``MAX_LABELS`` or one too long."""
    if isinstance(value, LabelList):
        return value
    if value is None:
        value = ""
    if isinstance(value, (list, tuple)):
        value = "\n".join(str(item) for item in value)
    if not isinstance(value, str):
        raise UserError(f"The labels must be text, not {type(value).__name__}.")
    names: list[str] = []
    spellings: dict[str, list[str]] = {}
    blanks = 0
    for line in value.splitlines():
        entries = [" ".join(entry.split()) for entry in line.split(",")]
        while entries and not entries[-1]:  # a trailing comma separates; it adds no label
            entries.pop()
        blanks += sum(1 for entry in entries if not entry and any(entries))
        for name in filter(None, entries):
            if len(name) > MAX_LABEL_CHARS:
                raise UserError(
                    f"The label “{name[:40]}…” is {len(name):,} characters long; a label may have at "
                    f"most {MAX_LABEL_CHARS}."
                )
            key = name.casefold()
            if key not in spellings:
                names.append(name)
            spellings.setdefault(key, []).append(name)
    if not names:
        raise UserError(
            "Type the labels to choose from: at least one, separated by commas or one per line "
            "(for example: billing, shipping, broken product)."
        )
    if len(names) > MAX_LABELS:
        raise UserError(
            f"There are {len(names)} labels; at most {MAX_LABELS} can be scored at once. Remove some, "
            "or run the rest separately."
        )
    notes = [_repeated(given) for given in spellings.values() if len(given) > 1]
    if blanks:
        notes.append(
            f"{blanks} empty label{'s were' if blanks > 1 else ' was'} left out (commas with nothing between)."
        )
    return LabelList(tuple(names), tuple(notes))


def _repeated(given: list[str]) -> str:
    if len(set(given)) == 1:
        return f"“{given[0]}” was given {len(given)} times: it is scored once."
    shown = " and ".join(f"“{name}”" for name in dict.fromkeys(given))
    return f"{shown} are the same label (letter case aside): it is scored once, as “{given[0]}”."


def check_template(value: Any) -> str:
    """The hypothesis template, which must hold ``{}`` where the label goes."""
    template = str(value or "").strip() or TEXT_TEMPLATE
    if "{}" not in template:
        raise UserError(
            f"The hypothesis template must contain {{}} where the label goes, for example "
            f"“{TEXT_TEMPLATE}” (it is “{template[:80]}”)."
        )
    if len(template) > MAX_TEMPLATE_CHARS:
        raise UserError(
            f"The hypothesis template is {len(template):,} characters long; the limit is {MAX_TEMPLATE_CHARS}."
        )
    return template


def fill(template: str, label: str) -> str:
    """The template with the label in place of ``{}`` (other braces are kept as they are)."""
    return template.replace("{}", label)


def _sigmoid(x: float) -> float:
    if x >= 0:
        return 1.0 / (1.0 + math.exp(-x))
    e = math.exp(x)
    return e / (1.0 + e)


def softmax(logits: list[float]) -> list[float]:
    top = max(logits)
    exps = [math.exp(x - top) for x in logits]
    total = sum(exps)
    return [x / total for x in exps]


def text_scores(logits: list[tuple[float, float]], multi_label: bool) -> list[float]:
    """Scores from each label's (entailment, contradiction) logits: a softmax of the entailment
    logits over the labels, or with ``multi_label`` each label's entailment against contradiction."""
    if multi_label:
        return [_sigmoid(entail - contra) for entail, contra in logits]
    return softmax([entail for entail, _ in logits])


def photo_scores(logits: list[float], multi_label: bool, sigmoid: bool) -> list[float]:
    """Scores from a photo's similarity logits: a softmax over the labels, or each label's sigmoid
    for a model trained with one (SigLIP) when more than one can apply."""
    if multi_label and sigmoid:
        return [_sigmoid(x) for x in logits]
    return softmax(logits)


def label_column(name: str) -> str:
    """The file column that holds a label's score: the label itself, unless a result column has
    that name."""
    return f"{name} (score)" if name.casefold() in TAKEN else name


def labels_result(names: tuple[str, ...], scores: list[float]) -> Result:
    """Every label with its score, best first (ties in the order given)."""
    order = sorted(range(len(names)), key=lambda i: -scores[i])
    ranked = [{"label": names[i], "score": round(float(scores[i]), 6)} for i in order]
    return Result(
        data={"labels": ranked},
        outputs=({item["label"]: item["score"] for item in ranked},),
        text="\n".join(f"{item['label']} ({item['score']:.1%})" for item in ranked),
    )
