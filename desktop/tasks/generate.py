"""Text generation: continue a prompt, streamed token by token in the UI.

Greedy when the temperature is 0; a seed makes sampling reproducible.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator

from desktop.errors import UserError
from desktop.tasks.spec import ModelRef, Option, Result, TaskSpec, slider
from desktop.tasks.text import TextLimits, check_text

LIMITS = TextLimits(min_chars=3, max_chars=10_000)


def _seed():
    import gradio as gr

    return gr.Number(value=-1, precision=0, label="Seed", info="-1 = different every time", render=False)


OPTIONS = (
    Option(
        "max_new_tokens",
        50,
        "How many tokens to add.",
        int,
        slider("Max new tokens", 1, 512, 50, 1),
        1,
        1024,
    ),
    Option(
        "temperature",
        0.7,
        "0 = always the most likely word.",
        float,
        slider("Temperature", 0.0, 2.0, 0.7, 0.05, "0 = always the most likely word"),
        0.0,
        5.0,
    ),
    Option("top_p", 0.95, "Nucleus sampling.", float, slider("Top-p", 0.05, 1.0, 0.95, 0.05), 0.01, 1.0),
    Option("seed", -1, "Random seed; -1 for a new one each time.", int, _seed, -1, 2**31 - 1),
)


def generation_kwargs(max_new_tokens: int, temperature: float, top_p: float) -> dict:
    """What ``generate`` gets: greedy at temperature 0, sampling otherwise."""
    if temperature <= 0:
        return {"max_new_tokens": max_new_tokens, "do_sample": False}
    return {
        "max_new_tokens": max_new_tokens,
        "do_sample": True,
        "temperature": temperature,
        "top_p": top_p,
    }


def stream(
    runtime,
    prompt: str,
    model: str | None = None,
    max_new_tokens: int = 50,
    temperature: float = 0.7,
    top_p: float = 0.95,
    seed: int = -1,
    *,
    progress=None,
    stop=None,
) -> Iterator[Result]:
    """Yield the growing text as tokens come (the UI), ending with the full result.

    Generation runs on a helper thread inside ``runtime.infer``; it ends early (and frees the
    device) when ``stop()`` becomes true or when the caller stops iterating (an abandoned stream).
    """
    from transformers import TextIteratorStreamer, set_seed

    from desktop.seq2seq import stop_when

    prompt = check_text(prompt, LIMITS, "prompt")
    max_new_tokens, temperature, top_p, seed = (
        opt.check(v) for opt, v in zip(OPTIONS, (max_new_tokens, temperature, top_p, seed), strict=False)
    )
    loaded = runtime.load(SPEC, model, progress=progress)
    pipe = loaded.obj
    tokenizer, lm = pipe.tokenizer, pipe.model
    room = loaded.max_tokens - max_new_tokens
    if room < 1:
        raise UserError(
            f"{loaded.display} handles at most {loaded.max_tokens} tokens in all: "
            f"ask for fewer than {loaded.max_tokens} new tokens."
        )
    ids = tokenizer(prompt, return_tensors="pt")["input_ids"]
    notes = []
    if ids.shape[1] > room:
        ids = ids[:, -room:]  # keep the end of the prompt: that is what gets continued
        notes.append(f"The prompt was too long for {loaded.display}: only its last {room} tokens were used.")
    ids = ids.to(lm.device)
    streamer = TextIteratorStreamer(tokenizer, skip_prompt=True, skip_special_tokens=True)
    kwargs = generation_kwargs(max_new_tokens, temperature, top_p)
    errors: list[BaseException] = []
    halt = threading.Event()

    def halted() -> bool:
        return halt.is_set() or bool(stop and stop())

    def work(model_obj):
        if seed >= 0:
            set_seed(seed)
        try:
            model_obj.model.generate(
                input_ids=ids,
                attention_mask=ids.new_ones(ids.shape),
                streamer=streamer,
                pad_token_id=tokenizer.pad_token_id or tokenizer.eos_token_id,
                stopping_criteria=stop_when(halted),
                **kwargs,
            )
        except BaseException as exc:  # surfaced to the caller below
            errors.append(exc)
            streamer.end()

    thread = threading.Thread(target=runtime.infer, args=(loaded, work), daemon=True)
    thread.start()
    text = prompt
    try:
        for piece in streamer:
            text += piece
            yield Result(data={"text": text}, outputs=(text,), text=text, notes=[], model=loaded.display)
    finally:  # also when the consumer goes away: generation stops at the next token
        halt.set()
        thread.join()
    if errors:
        raise errors[0]
    if stop and stop():
        notes.append("Stopped: the text so far is kept.")
    yield Result(data={"text": text}, outputs=(text,), text=text, notes=notes, model=loaded.display)


def predict(
    runtime,
    prompt,
    model=None,
    max_new_tokens=50,
    temperature=0.7,
    top_p=0.95,
    seed=-1,
    *,
    progress=None,
    stop=None,
) -> Result:
    """The finished text (the API and CLI): the last of what ``stream`` yields."""
    *_, last = stream(
        runtime, prompt, model, max_new_tokens, temperature, top_p, seed, progress=progress, stop=stop
    )
    return last


def _inputs():
    import gradio as gr

    return [gr.Textbox(label="Prompt", lines=4, placeholder="Once upon a time…", render=False)]


def _outputs():
    import gradio as gr

    return [gr.Textbox(label="Generated text", lines=8, buttons=["copy"], render=False)]


SPEC = TaskSpec(
    id="generate",
    title="Generate",
    description="Continues your text. Temperature 0 gives the same answer every time; a seed makes sampling repeatable.",
    kind="text-generation",
    default_model=ModelRef("openai-community/gpt2", "607a30d", "GPT-2 (English)", 548),
    alternatives=(ModelRef("distilbert/distilgpt2", "main", "DistilGPT-2 (English, smaller)", 353),),
    inputs=_inputs,
    outputs=_outputs,
    predict=predict,
    stream=stream,
    options=OPTIONS,
    examples=(
        ["Once upon a time, in a small village by the sea,"],
        ["The three most important things about offline software are"],
    ),
)
