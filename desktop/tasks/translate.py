"""Translation with Helsinki-NLP's opus-mt models, long texts translated chunk by chunk."""

from __future__ import annotations

from desktop.tasks.spec import ModelRef, Result, TaskSpec
from desktop.tasks.text import TextLimits, check_text

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


def predict(runtime, text: str, model: str | None = None, *, progress=None, stop=None) -> Result:
    text = check_text(text, LIMITS)
    loaded = runtime.load(SPEC, model, progress=progress)
    runner = loaded.obj
    chunks = runner.chunk(text, budget=max(8, runner.max_input_tokens - 2))
    parts = runtime.infer(
        loaded,
        lambda r: r.generate(chunks, stop=stop, num_beams=1, max_new_tokens=min(512, 2 * r.max_input_tokens)),
    )
    translation = " ".join(p for p in parts if p)
    notes = [f"The text was translated in {len(chunks)} parts."] if len(chunks) > 1 else []
    return Result(
        data={"translation": translation, "chunks": len(chunks)},
        outputs=(translation,),
        text=translation,
        notes=notes,
        model=loaded.display,
    )


def _inputs():
    import gradio as gr

    return [gr.Textbox(label="Text", lines=5, placeholder="Text to translate…", render=False)]


def _outputs():
    import gradio as gr

    return [gr.Textbox(label="Translation", lines=5, buttons=["copy"], render=False)]


SPEC = TaskSpec(
    id="translate",
    title="Translate",
    description="Translates between language pairs. Long texts are split at sentence ends, never cut.",
    kind="seq2seq",
    default_model=MODELS[0],
    alternatives=MODELS[1:],
    inputs=_inputs,
    outputs=_outputs,
    predict=predict,
    examples=(["Hello, how are you today? The weather is lovely."],),
)
