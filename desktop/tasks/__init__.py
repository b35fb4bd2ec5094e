"""The task registry: every task of the app, in the order the UI shows them.

Adding a task is adding one module with a ``SPEC`` and listing it here; the
UI, the CLI, the batch engine and the HTTP API are generated from this list.
"""

from __future__ import annotations

from desktop.errors import UserError
from desktop.models.ref import ModelRef
from desktop.tasks import (
    chat,
    classify,
    detect,
    embed,
    generate,
    labels,
    ner,
    prompt,
    sentiment,
    summarize,
    transcribe,
    translate,
)
from desktop.tasks.spec import Option, Result, TaskSpec

TASKS: dict[str, TaskSpec] = {
    spec.id: spec
    for spec in (
        sentiment.SPEC,
        generate.SPEC,
        chat.SPEC,
        ner.SPEC,
        classify.SPEC,
        labels.SPEC,
        translate.SPEC,
        summarize.SPEC,
        transcribe.SPEC,
        detect.SPEC,
        prompt.SPEC,
        embed.SPEC,
    )
}


def get(task_id: str) -> TaskSpec:
    """The task called ``task_id``; raises UserError listing the known ones."""
    try:
        return TASKS[task_id]
    except KeyError:
        raise UserError(f"Unknown task {task_id!r}: choose one of {', '.join(TASKS)}.") from None


def spec_of(spec_id: str) -> TaskSpec:
    """Any spec by id: the tasks above, and the Local API's own (``chat-completion``, ``completion``),
    which have no tab; an engine's requests name their spec this way."""
    from desktop.tasks import completions

    for spec in (completions.CHAT, completions.TEXT):
        if spec.id == spec_id:
            return spec
    return get(spec_id)


def known_models() -> dict[str, ModelRef]:
    """Every model a task names, by Hub id (for pinned revisions and labels)."""
    refs: dict[str, ModelRef] = {}
    for spec in TASKS.values():
        for ref in spec.models:
            if "/" in ref.repo:  # not a choice such as classify's "auto"
                refs.setdefault(ref.repo, ref)
    return refs


__all__ = ["TASKS", "ModelRef", "Option", "Result", "TaskSpec", "get", "known_models", "spec_of"]
