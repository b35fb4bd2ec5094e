"""Chat: an instruct model answers a conversation through its own chat template (streamed in the UI).

The chat core is shared by the Chat tab, ``/chat``, ``pipedesk run chat`` and prompts over files
(:mod:`desktop.tasks.prompt`), and is meant for an OpenAI-compatible endpoint too: messages
(role + content, the last one the user's) -> the model's chat template -> token ids
(:func:`prepare_many`), then Generate's one generation loop (:func:`chat_forward`). Pure functions
first (history clean-up, what fits the context), then the task. No torch or gradio at import.

Context policy: the system prompt, the new message and room for ``max_new_tokens`` always stay;
older turns that do not fit the model's context are left out, oldest first, with a note (they stay
in the history the person sees); a message that cannot fit even alone is refused in words, never cut.
Runs on whichever thread calls the engine (Gradio's workers, the CLI's main thread).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from desktop.errors import UserError
from desktop.files import OWNER, Limits
from desktop.models.ref import ModelRef
from desktop.tasks.generate import OPTIONS as GENERATE_OPTIONS
from desktop.tasks.generate import generate_forward
from desktop.tasks.spec import ModelView, Option, Piece, Prepared, Result, Stop, TaskSpec, slider, textbox
from desktop.tasks.text import TextLimits, check_text

LIMITS = TextLimits(min_chars=1, max_chars=20_000)
SYSTEM_MAX_CHARS = 20_000
MAX_HISTORY = 1_000  # messages: what is left out of a longer one is found turn by turn
ROLES = ("user", "assistant")

#: The instruct models offered, smallest download first; the default is benchmarks/README.md's choice.
QWEN_05B = ModelRef("Qwen/Qwen2.5-0.5B-Instruct", "main", "Qwen2.5 0.5B Instruct (multilingual)", 990)
SMOL_360M = ModelRef(
    "HuggingFaceTB/SmolLM2-360M-Instruct", "main", "SmolLM2 360M Instruct (English, fastest)", 725
)
QWEN_15B = ModelRef("Qwen/Qwen2.5-1.5B-Instruct", "main", "Qwen2.5 1.5B Instruct (better, slower)", 3090)

#: The generation limits every instruct task shares: the page's controls span exactly these ranges.
MAX_NEW_TOKENS, MAX_TEMPERATURE, MIN_TOP_P = 1024, 2.0, 0.05
SEED = next(option for option in GENERATE_OPTIONS if option.name == "seed")  # Generate's, as it is


def system_option() -> Option:
    """The system prompt (who the assistant is, how it answers); empty: none."""
    return Option(
        "system",
        "",
        "A system prompt: who the assistant is and how it answers (empty: none).",
        str,
        textbox("System prompt", "Who the assistant is and how it answers (optional)", lines=2),
    )


def generation_options(max_new_tokens: int, temperature: float) -> tuple[Option, ...]:
    """max_new_tokens, temperature, top_p and seed with these defaults and the shared limits; the
    sliders span the limits, so the page, the API and the CLI accept and refuse the same values."""
    return (
        Option(
            "max_new_tokens",
            max_new_tokens,
            "The longest answer, in tokens.",
            int,
            slider("Max new tokens"),
            1,
            MAX_NEW_TOKENS,
        ),
        Option(
            "temperature",
            temperature,
            "0 = always the most likely word (the same answer every time).",
            float,
            slider("Temperature", 0.05, "0 = the same answer every time"),
            0.0,
            MAX_TEMPERATURE,
        ),
        Option(
            "top_p",
            0.95,
            "Nucleus sampling.",
            float,
            slider("Top-p", 0.05),
            MIN_TOP_P,
            1.0,
        ),
        SEED,
    )


# --- pure: history, conversation, what fits ----------------------------------------------------


def text_of(content: Any) -> str:
    """A message's text: a string, a list of parts (``{"type": "text", "text": ...}``, as the Chat
    tab's history and OpenAI's API send them) or ``{"text": ...}``; other parts (files) are refused."""
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, dict) and isinstance(content.get("text"), str):
        return content["text"]
    if isinstance(content, list):
        return "".join(text_of(part) for part in content)
    raise UserError("A message in the history holds something other than text: only text can be sent.")


def clean_history(history: Any) -> list[dict[str, str]]:
    """The earlier turns as ``[{"role": "user"|"assistant", "content": str}, ...]``.

    Takes messages (``role`` + ``content``) or ``[user, assistant]`` pairs; empty messages are
    dropped; anything else is refused in words.
    """
    if history is None or history == "":
        return []
    if not isinstance(history, list):
        raise UserError('The history must be a list of messages such as {"role": "user", "content": "Hi"}.')
    if len(history) > MAX_HISTORY:
        raise UserError(
            f"The history holds {len(history):,} messages; a conversation may hold {MAX_HISTORY:,}. "
            "Start a new one (Clear)."
        )
    messages: list[dict[str, str]] = []
    for item in history:
        if isinstance(item, (list, tuple)) and len(item) == 2:
            pairs = [("user", item[0]), ("assistant", item[1])]
        elif isinstance(item, dict) and "role" in item:
            pairs = [(item["role"], item.get("content"))]
        else:
            raise UserError('Each message of the history needs a "role" (user or assistant) and a "content".')
        for role, content in pairs:
            if role == "system":
                raise UserError(
                    "The history holds a system message: give the system prompt as the system option."
                )
            if role not in ROLES:
                raise UserError(f"A message of the history has the role {role!r}: use 'user' or 'assistant'.")
            text = text_of(content)
            if text.strip():
                messages.append({"role": role, "content": text})
    return messages


def conversation(system: str, history: list[dict[str, str]], message: str) -> list[dict[str, str]]:
    """What the chat template reads: the system prompt (if any), the earlier turns, the new message."""
    head = [{"role": "system", "content": system}] if system.strip() else []
    return [*head, *history, {"role": "user", "content": message}]


def fit_messages(
    messages: list[dict[str, str]], count: Callable[[list[dict[str, str]]], int], room: int, why: str = ""
) -> tuple[list[dict[str, str]], int]:
    """``messages`` without their oldest turns until ``count`` (tokens) of them is at most ``room``:
    (what is kept, how many messages were left out). The system prompt and the last message always
    stay; if they alone do not fit, UserError (``why`` says where the limit comes from)."""
    head = messages[:1] if messages and messages[0]["role"] == "system" else []
    body, last = messages[len(head) : -1], messages[-1]
    dropped = 0
    while True:
        kept = [*head, *body, last]
        tokens = count(kept)
        if tokens <= room:
            return kept, dropped
        if not body:
            raise UserError(
                f"The message is too long: with the system prompt it takes {tokens:,} tokens, and "
                f"{room:,} fit{why}. Shorten it (or the system prompt), or ask for fewer new tokens."
            )
        cut = 1  # the oldest message, and the answers that follow it, up to the next question
        while cut < len(body) and body[cut]["role"] != "user":
            cut += 1
        body, dropped = body[cut:], dropped + cut


def left_out_note(dropped: int, display: str) -> str:
    """The note when the oldest turns did not fit the model's context."""
    what = "message was" if dropped == 1 else f"{dropped} messages were"
    return (
        f"The conversation is longer than {display} reads at once: its oldest {what} left out of "
        "what the model saw (the history keeps them)."
    )


def answer_text(generated: str) -> str:
    """The answer as shown and saved: the generated text without surrounding blank space."""
    return generated.strip()


# --- the chat core, with a model ------------------------------------------------------------------


def room_for_prompt(model: ModelView, options: dict[str, Any]) -> int:
    """Tokens left for the conversation once ``max_new_tokens`` are kept for the answer."""
    room = model.max_tokens - options["max_new_tokens"]
    if room < 1:
        raise UserError(
            f"{model.display} handles at most {model.max_tokens} tokens in all: "
            f"ask for fewer than {model.max_tokens} new tokens."
        )
    return room


def _render(model: ModelView, messages: list[dict[str, str]]) -> str:
    try:
        return model.chat_text(messages)
    except Exception as exc:  # jinja's TemplateError (e.g. "roles must alternate"), or no template
        if isinstance(exc, ValueError) or type(exc).__name__.endswith("TemplateError"):
            raise UserError(f"{model.display}'s chat template refused this conversation: {exc}") from None
        raise


def _ids(model: ModelView, texts: list[str]) -> list[list[int]]:
    return [list(row) for row in model.encode(texts, add_special_tokens=False, truncation=False)["input_ids"]]


def prepare_many(
    model: ModelView, conversations: Sequence[list[dict[str, str]]], options: dict[str, Any]
) -> list[Prepared | UserError]:
    """The chat core: each conversation (messages, the last one the user's) through the model's chat
    template into token ids that fit its context (see the module doc), one tokenizer call for all
    that fit at once. ``Prepared.context["messages"]`` holds what the model reads."""
    room = room_for_prompt(model, options)
    why = (
        f" ({model.display} reads {model.max_tokens:,} tokens in all, {options['max_new_tokens']:,} "
        "of them kept for the answer)"
    )
    out: list[Prepared | UserError] = []
    texts: list[str | UserError] = []
    for messages in conversations:
        try:
            texts.append(_render(model, messages))
        except UserError as exc:
            texts.append(exc)
    ready = [text for text in texts if isinstance(text, str)]
    encoded = iter(_ids(model, ready) if ready else [])
    for messages, text in zip(conversations, texts, strict=True):
        if isinstance(text, UserError):
            out.append(text)
            continue
        ids = next(encoded)
        try:
            if len(ids) > room:
                kept, dropped = fit_messages(
                    messages, lambda m: len(_ids(model, [_render(model, m)])[0]), room, why
                )
                ids = _ids(model, [_render(model, kept)])[0]
                prepared = Prepared([Piece(0, 0, ids=ids)], {"messages": kept})
                prepared.notes.append(left_out_note(dropped, model.display))
            else:
                prepared = Prepared([Piece(0, 0, ids=ids)], {"messages": messages})
        except UserError as exc:
            out.append(exc)
            continue
        out.append(prepared)
    return out


def end_ids(model: ModelView) -> list[int]:
    """The tokens that end an answer: the model's generation config's and its tokenizer's end token
    (instruct models often end a turn with a token of their chat template, e.g. ``<|im_end|>``)."""
    found: list[int] = []
    configured = getattr(getattr(model.model, "generation_config", None), "eos_token_id", None)
    for value in (configured, getattr(model.tokenizer, "eos_token_id", None)):
        for one in value if isinstance(value, (list, tuple)) else [value]:
            if one is not None and int(one) not in found:
                found.append(int(one))
    return found


def chat_forward(
    model: ModelView,
    pieces: list[Piece],
    options: dict[str, Any],
    stop: Stop,
    streamer: Any = None,
    **extra: Any,
) -> list[str]:
    """Generate's one loop, ending each answer at the model's end-of-turn tokens (``extra``: more of
    ``generate_forward``'s arguments)."""
    ends = end_ids(model)
    return generate_forward(
        model, pieces, options, stop, streamer, **({"eos_token_id": ends} if ends else {}), **extra
    )


def check_system(options: dict[str, Any]) -> dict[str, Any]:
    """``options`` with the system prompt stripped, or UserError when it is too long."""
    system = str(options.get("system") or "").strip()
    if len(system) > SYSTEM_MAX_CHARS:
        raise UserError(
            f"The system prompt is too long: {len(system):,} characters, the limit is {SYSTEM_MAX_CHARS:,}."
        )
    return {**options, "system": system}


class InstructTask(TaskSpec):
    """What the instruct tasks share: the models, the generation loop and its batch sizes."""

    kind = "chat"
    default_model = QWEN_05B
    alternatives = (SMOL_360M, QWEN_15B)
    streams = True

    def check_options(self, options: dict[str, Any]) -> dict[str, Any]:
        return check_system(super().check_options(options))

    def forward(
        self, model: ModelView, pieces: list[Piece], options: dict[str, Any], stop: Stop, streamer: Any = None
    ) -> list[str]:
        return chat_forward(model, pieces, options, stop, streamer)

    def extra_cost(self, options: dict[str, Any]) -> int:
        return int(options["max_new_tokens"])

    def batch_limits(self, device: str, model: ModelView) -> tuple[int, int]:
        return (4096, 16) if device == "cpu" else (65536, 256)


class Chat(InstructTask):
    id = "chat"
    title = "Chat"
    description = (
        "Talk with an instruct model that runs on this computer. It sees the whole conversation; "
        "temperature 0 gives the same answer every time."
    )
    inputs = ("message", "history")
    ui = "chat"
    options = (system_option(), *generation_options(256, 0.7))
    examples = (["Hello! What can you do?", []], ["Write a haiku about offline software.", []])
    file_input = None  # a prompt over every row of a file is the prompt task
    columns = ("answer",)

    def cli_inputs(self, value: str) -> dict[str, Any]:
        return {"message": value, "history": []}

    def validate(self, inputs: dict[str, Any], limits: Limits = OWNER) -> dict[str, Any]:
        return {
            "message": check_text(inputs.get("message"), LIMITS, "message"),
            "history": clean_history(inputs.get("history")),
        }

    def preprocess(self, model: ModelView, inputs: dict[str, Any], options: dict[str, Any]) -> Prepared:
        messages = conversation(options["system"], inputs["history"], inputs["message"])
        prepared = prepare_many(model, [messages], options)[0]
        if isinstance(prepared, UserError):
            raise prepared
        prepared.context.update(history=inputs["history"], message=inputs["message"])
        return prepared

    def postprocess(
        self, model: ModelView, prepared: Prepared, outputs: list[Any], options: dict[str, Any]
    ) -> Result:
        return self.partial(model, prepared, outputs[0])

    def partial(self, model: ModelView, prepared: Prepared, text: str) -> Result:
        answer = answer_text(text)
        history = [
            *prepared.context["history"],
            {"role": "user", "content": prepared.context["message"]},
            {"role": "assistant", "content": answer},
        ]
        return Result(data={"answer": answer, "history": history}, outputs=(answer, history), text=answer)


def regenerate(history: Any) -> tuple[str, list[dict[str, str]]]:
    """Regenerate: the last question of ``history`` and the turns before it (its answer goes)."""
    turns = clean_history(history)
    for index in range(len(turns) - 1, -1, -1):
        if turns[index]["role"] == "user":
            return turns[index]["content"], turns[:index]
    raise UserError("There is nothing to regenerate yet: send a message first.")


SPEC = Chat()
