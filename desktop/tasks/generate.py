"""Text generation: continue a prompt (streamed token by token in the UI).

Greedy when the temperature is 0; a seed makes sampling repeatable. A prompt longer than the
model takes keeps its end (that is what gets continued), with a note.
"""

from __future__ import annotations

from typing import Any

from desktop.errors import UserError
from desktop.files import OWNER, Limits
from desktop.hf import transformers_api
from desktop.models.ref import ModelRef
from desktop.tasks.sentiment import padded
from desktop.tasks.spec import ModelView, Option, Piece, Prepared, Result, Stop, TaskSpec, slider
from desktop.tasks.text import TextLimits, check_text

LIMITS = TextLimits(min_chars=3, max_chars=10_000)

OPTIONS = (
    Option("max_new_tokens", 50, "How many tokens to add.", int, slider("Max new tokens"), 1, 1024),
    Option(
        "temperature",
        0.7,
        "0 = always the most likely word.",
        float,
        slider("Temperature", 0.05, "0 = always the most likely word"),
        0.0,
        5.0,
    ),
    Option("top_p", 0.95, "Nucleus sampling.", float, slider("Top-p", 0.01), 0.01, 1.0),
    Option(
        "seed",
        -1,
        "Random seed; -1 for a new one each time.",
        int,
        ("number", "Seed", "-1 = different every time"),
        -1,
        2**31 - 1,
    ),
)


def generation_kwargs(max_new_tokens: int, temperature: float, top_p: float) -> dict[str, Any]:
    """What ``generate`` gets: greedy at temperature 0, sampling otherwise."""
    if temperature <= 0:
        return {"max_new_tokens": max_new_tokens, "do_sample": False}
    return {"max_new_tokens": max_new_tokens, "do_sample": True, "temperature": temperature, "top_p": top_p}


def stop_when(stop: Stop) -> Any:
    """A ``StoppingCriteriaList`` that ends ``generate`` once ``stop()`` is true (checked after every
    new token, on the generating thread); None when there is nothing to check."""
    if stop is None:
        return None
    import torch

    tf = transformers_api("StoppingCriteria", "StoppingCriteriaList")

    class _Stop(tf.StoppingCriteria):
        def __call__(self, input_ids: Any, scores: Any, **kwargs: Any) -> Any:
            return torch.full((input_ids.shape[0],), bool(stop()), dtype=torch.bool, device=input_ids.device)

    return tf.StoppingCriteriaList([_Stop()])


def generate_forward(
    model: ModelView,
    pieces: list[Piece],
    options: dict[str, Any],
    stop: Stop,
    streamer: Any = None,
    lengths: list[int] | None = None,
    **extra: Any,
) -> list[str]:
    """The new text for each piece: one padded batch (padded on the left, so every row continues from
    its own last token, with its attention mask) through ``generate`` with the KV cache; each row
    stops at an end token (``extra`` may name more of them), the batch when every row has stopped,
    when ``max_new_tokens`` are written or when ``stop()`` turns true. Options: ``max_new_tokens``,
    ``temperature`` (0: greedy), ``top_p``, ``seed`` (-1: none). ``lengths``, when given, gets each
    row's count of new tokens (up to its end token). The one generation loop of the app (Generate,
    Chat, prompts over files and the Local API's completions)."""
    if options["seed"] >= 0:
        transformers_api("set_seed").set_seed(options["seed"])
    inputs = padded(model, [p.ids for p in pieces], left=True)
    out = model.model.generate(
        **inputs,
        pad_token_id=model.pad_id(),
        stopping_criteria=stop_when(stop),
        streamer=streamer,
        **generation_kwargs(options["max_new_tokens"], options["temperature"], options["top_p"]),
        **extra,
    )
    new = out[:, inputs["input_ids"].shape[1] :]
    if lengths is not None:
        configured = getattr(getattr(model.model, "generation_config", None), "eos_token_id", None)
        ends = {model.pad_id(), *_ids(extra.get("eos_token_id")), *_ids(configured)}
        lengths.extend(new_token_count(row, ends) for row in new.tolist())
    return model.decode(new)


def _ids(value: Any) -> list[int]:
    return [int(one) for one in (value if isinstance(value, (list, tuple)) else [value]) if one is not None]


def new_token_count(row: list[int], ends: set[int]) -> int:
    """Tokens a row generated before its end (an end token, or the padding after a stop)."""
    return next((i for i, token in enumerate(row) if token in ends), len(row))


class Generate(TaskSpec):
    id = "generate"
    title = "Generate"
    description = "Continues your text. Temperature 0 gives the same answer every time; a seed makes sampling repeatable."
    kind = "text-generation"
    default_model = ModelRef("openai-community/gpt2", "607a30d", "GPT-2 (English)", 548)
    alternatives = (ModelRef("distilbert/distilgpt2", "main", "DistilGPT-2 (English, smaller)", 353),)
    inputs = ("prompt",)
    options = OPTIONS
    streams = True
    examples = (
        ["Once upon a time, in a small village by the sea,"],
        ["The three most important things about offline software are"],
    )
    file_input = "prompt"
    columns = ("generated_text",)

    def validate(self, inputs: dict[str, Any], limits: Limits = OWNER) -> dict[str, Any]:
        return {"prompt": check_text(inputs.get("prompt"), LIMITS, "prompt")}

    def preprocess(self, model: ModelView, inputs: dict[str, Any], options: dict[str, Any]) -> Prepared:
        room = model.max_tokens - options["max_new_tokens"]
        if room < 1:
            raise UserError(
                f"{model.display} handles at most {model.max_tokens} tokens in all: "
                f"ask for fewer than {model.max_tokens} new tokens."
            )
        prompt = inputs["prompt"]
        ids = list(model.encode([prompt], truncation=False)["input_ids"][0])
        prepared = Prepared([Piece(0, 0, ids=ids)], context={"prompt": prompt})
        if len(ids) > room:
            prepared.pieces[0].ids = ids[-room:]
            prepared.notes.append(
                f"The prompt was too long for {model.display}: only its last {room} tokens were used."
            )
        return prepared

    def forward(
        self, model: ModelView, pieces: list[Piece], options: dict[str, Any], stop: Stop, streamer: Any = None
    ) -> list[str]:
        return generate_forward(model, pieces, options, stop, streamer)

    def postprocess(
        self, model: ModelView, prepared: Prepared, outputs: list[Any], options: dict[str, Any]
    ) -> Result:
        return self.partial(model, prepared, outputs[0])

    def partial(self, model: ModelView, prepared: Prepared, text: str) -> Result:
        full = prepared.context["prompt"] + text
        return Result(data={"text": full}, outputs=(full,), text=full)

    def row_values(self, result: Result) -> dict[str, Any]:
        return {"generated_text": result.data["text"]}

    def extra_cost(self, options: dict[str, Any]) -> int:
        return int(options["max_new_tokens"])

    def batch_limits(self, device: str, model: ModelView) -> tuple[int, int]:
        return (2048, 16) if device == "cpu" else (65536, 256)


SPEC = Generate()
