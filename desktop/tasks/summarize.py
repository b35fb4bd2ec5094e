"""Summarization with DistilBART-CNN; texts longer than the model takes are summarized in parts."""

from __future__ import annotations

from desktop.errors import UserError
from desktop.tasks.spec import ModelRef, Option, Result, TaskSpec, slider
from desktop.tasks.text import TextLimits, check_text

LIMITS = TextLimits(min_chars=20, max_chars=100_000)


OPTIONS = (
    Option(
        "min_length",
        30,
        "Shortest summary, in tokens.",
        int,
        slider("Min length (tokens)", 1, 300, 30),
        1,
        1000,
    ),
    Option(
        "max_length",
        130,
        "Longest summary, in tokens.",
        int,
        slider("Max length (tokens)", 5, 600, 130),
        2,
        2000,
    ),
)


def predict(
    runtime,
    text: str,
    model: str | None = None,
    min_length: int = 30,
    max_length: int = 130,
    *,
    progress=None,
    stop=None,
) -> Result:
    text = check_text(text, LIMITS)
    min_length, max_length = OPTIONS[0].check(min_length), OPTIONS[1].check(max_length)
    if min_length > max_length:
        raise UserError(f"Min length ({min_length}) must not be more than max length ({max_length}).")
    loaded = runtime.load(SPEC, model, progress=progress)
    runner = loaded.obj
    chunks = runner.chunk(text)
    # Each part gets its share of the requested length, so the whole stays within it.
    share_max = max(8, max_length // len(chunks))
    share_min = min(share_max - 1, max(1, min_length // len(chunks)))
    parts = runtime.infer(
        loaded,
        lambda r: r.generate(
            chunks,
            stop=stop,
            min_new_tokens=share_min,
            max_new_tokens=share_max,
            num_beams=2,
            no_repeat_ngram_size=3,
        ),
    )
    summary = " ".join(p for p in parts if p)
    notes = (
        [
            f"The text was longer than {loaded.display} reads at once, so it was summarized in {len(chunks)} parts."
        ]
        if len(chunks) > 1
        else []
    )
    return Result(
        data={"summary": summary, "chunks": len(chunks)},
        outputs=(summary,),
        text=summary,
        notes=notes,
        model=loaded.display,
    )


def _inputs():
    import gradio as gr

    return [gr.Textbox(label="Text", lines=10, placeholder="Paste an article…", render=False)]


def _outputs():
    import gradio as gr

    return [gr.Textbox(label="Summary", lines=6, buttons=["copy"], render=False)]


SPEC = TaskSpec(
    id="summarize",
    title="Summarize",
    description="Shortens a long text. Texts longer than the model reads at once are summarized part by part.",
    kind="seq2seq",
    default_model=ModelRef("sshleifer/distilbart-cnn-12-6", "a4f8f3e", "DistilBART (CNN news)", 1220),
    alternatives=(ModelRef("facebook/bart-large-cnn", "main", "BART large (CNN news)", 1630),),
    inputs=_inputs,
    outputs=_outputs,
    predict=predict,
    options=OPTIONS,
    examples=(
        [
            "The tower is 324 metres (1,063 ft) tall, about the same height as an 81-storey building, "
            "and the tallest structure in Paris. Its base is square, measuring 125 metres (410 ft) on each side. "
            "During its construction, the Eiffel Tower surpassed the Washington Monument to become the tallest "
            "man-made structure in the world, a title it held for 41 years until the Chrysler Building in New "
            "York City was finished in 1930."
        ],
    ),
)
