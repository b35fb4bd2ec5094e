"""Completions as other programs ask for them: a chat's messages, or plain prompts.

The Local API's ``/v1/chat/completions`` and ``/v1/completions`` (:mod:`desktop.api`) run these two
tasks through the engine like any tab: the chat core of :mod:`desktop.tasks.chat` (messages -> the
model's chat template -> Generate's one generation loop) and Generate's own prompt handling. The
rules that are new here: which messages make a conversation, stop sequences (generation ends at the
first one written, which is cut from the answer, also while it streams), why an answer ended (its
end, or ``max_tokens``), and JSON-object answers. Pure helpers first; no torch or gradio at import.
Runs on the engine's callers' threads.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from desktop.errors import UserError
from desktop.files import OWNER, Limits
from desktop.tasks import chat, generate
from desktop.tasks.prompt import extract_json
from desktop.tasks.spec import ModelView, Option, Piece, Prepared, Result, Stop
from desktop.tasks.text import check_text

MAX_STOPS, MAX_STOP_CHARS = 4, 200
#: Prompts in one /v1/completions request (each is a row of one batch).
MAX_PROMPTS = 64
SYSTEM_ROLES = ("system", "developer")
NO_JSON_ASKED = (
    "A JSON answer was asked for (response_format json_object), but no message asks the model for "
    "JSON: say so in a message (e.g. 'Answer in JSON.')."
)


class NoJsonAnswer(UserError):
    """The model's answer holds no JSON object though one was asked for (the request was fine: HTTP 422)."""

    http_status = 422


def _never_shown(name: str, default: Any, help: str, kind: type) -> Option:
    """An option of the API only (no control in the page)."""
    return Option(name, default, help, kind, ("api", name))


STOP = _never_shown(
    "stop", (), "Up to 4 texts: generation ends where one is written (it is left out).", tuple
)
JSON_OBJECT = _never_shown("json", False, "Answer with a JSON object (response_format json_object).", bool)
ECHO = _never_shown("echo", False, "Return the prompt before the completion.", bool)


# --- pure: stop sequences, messages, JSON ------------------------------------------------------


def check_stop(value: Any, name: str = "stop") -> tuple[str, ...]:
    """Stop sequences: a text or a list of up to :data:`MAX_STOPS` texts (none: an empty tuple)."""
    if value is None or value == "" or value == [] or value == ():
        return ()
    stops = [value] if isinstance(value, str) else value
    if not isinstance(stops, (list, tuple)) or not all(isinstance(one, str) for one in stops):
        raise UserError(f"{name} must be a text or a list of texts.")
    if len(stops) > MAX_STOPS:
        raise UserError(f"{name} holds {len(stops)} texts; at most {MAX_STOPS} are taken.")
    if any(not one for one in stops):
        raise UserError(f"{name} holds an empty text: each stop sequence needs at least one character.")
    if any(len(one) > MAX_STOP_CHARS for one in stops):
        raise UserError(f"A stop sequence can be at most {MAX_STOP_CHARS} characters long.")
    return tuple(dict.fromkeys(stops))


def cut_at_stop(text: str, stops: Sequence[str]) -> tuple[str, bool]:
    """``text`` up to the first stop sequence in it, and whether one was found."""
    found = [at for at in (text.find(one) for one in stops) if at >= 0]
    return (text[: min(found)], True) if found else (text, False)


def shown_so_far(text: str, stops: Sequence[str]) -> str:
    """What of a text still being written can be shown: up to the first stop sequence, without an end
    that may be the start of one. Grows monotonically as ``text`` does (a prefix of the next one)."""
    cut, stopped = cut_at_stop(text, stops)
    if stopped:
        return cut
    held = max((k for one in stops for k in range(1, len(one)) if text.endswith(one[:k])), default=0)
    return text[: len(text) - held]


def finish_reason(tokens: int, max_new_tokens: int, stopped: bool) -> str:
    """OpenAI's ``finish_reason``: "length" when the answer ran out of tokens, else "stop"."""
    return "length" if tokens >= max_new_tokens and not stopped else "stop"


def check_messages(messages: Any) -> list[dict[str, str]]:
    """OpenAI's ``messages`` as the chat core's conversation: the system (or developer) messages that
    come first become the system prompt; the turns after them are checked as the Chat tab's history
    is; the last message must be the user's."""
    if not isinstance(messages, list) or not messages:
        raise UserError('messages must be a list of messages such as {"role": "user", "content": "Hi"}.')
    if not all(isinstance(one, dict) for one in messages):
        raise UserError('Each message needs a "role" (system, user or assistant) and a "content".')
    first = 0
    while first < len(messages) and messages[first].get("role") in SYSTEM_ROLES:
        first += 1
    system = "\n\n".join(chat.text_of(m.get("content")).strip() for m in messages[:first])
    turns = messages[first:]
    for message in turns:
        role = message.get("role")
        if role in SYSTEM_ROLES:
            raise UserError("A system message may only come first, before the conversation.")
        if role in ("tool", "function"):
            raise UserError(
                "Pipedesk's models do not call tools: send the conversation without tool messages."
            )
    if not turns or turns[-1].get("role") != "user":
        raise UserError("The last message must be the user's: it is what the model answers.")
    history = chat.clean_history(turns[:-1])
    message = check_text(chat.text_of(turns[-1].get("content")), chat.LIMITS, "message")
    return chat.conversation(chat.check_system({"system": system})["system"], history, message)


def check_json_asked(messages: list[dict[str, str]]) -> None:
    """A JSON-object answer must be asked for in words too (as OpenAI requires): a model is not forced."""
    if not any("json" in message["content"].lower() for message in messages):
        raise UserError(NO_JSON_ASKED)


def json_object_text(answer: str, display: str) -> str:
    """The JSON object in ``answer`` (alone, in a ```json fence or inside a sentence) as JSON text;
    UserError when the answer holds none."""
    import json

    found = extract_json(answer)
    if found is None:
        shown = answer if len(answer) <= 200 else answer[:200] + "…"
        raise NoJsonAnswer(
            f"{display} did not answer with a JSON object (it wrote: {shown!r}). Ask more plainly for "
            "JSON, or try another model."
        )
    return json.dumps(found, ensure_ascii=False)


def _stop_kwargs(model: ModelView, options: dict[str, Any]) -> dict[str, Any]:
    """``generate``'s arguments that end a row once it writes a stop sequence."""
    if not options.get("stop"):
        return {}
    return {"stop_strings": list(options["stop"]), "tokenizer": model.stream_tokenizer()}


def generated(
    loop: Any, model: ModelView, pieces: list[Piece], options: dict[str, Any], stop: Stop, streamer: Any
) -> list[dict[str, Any]]:
    """``loop`` (the chat core's or Generate's generation) on ``pieces``, ending rows at the stop
    sequences: each row's text and how many tokens it took."""
    lengths: list[int] = []
    texts = loop(model, pieces, options, stop, streamer, lengths=lengths, **_stop_kwargs(model, options))
    return [{"text": text, "tokens": count} for text, count in zip(texts, lengths, strict=True)]


def text_so_far(text: str) -> Result:
    """A streamed answer's partial result: the raw text written so far."""
    return Result(data={"text": text}, outputs=(text,), text=text)


# --- the tasks ---------------------------------------------------------------------------------


class ChatCompletion(chat.InstructTask):
    """``/v1/chat/completions``: a conversation answered by an instruct model (the Chat tab's core)."""

    id = "chat-completion"
    title = "Chat completions"
    description = "The Local API's chat: messages in, the instruct model's answer out."
    inputs = ("messages",)
    options = (*chat.generation_options(256, 0.7), STOP, JSON_OBJECT)
    ui = "files"
    file_input = None

    def check_options(self, options: dict[str, Any]) -> dict[str, Any]:
        base = {o.name: o.check(options.get(o.name)) for o in self.options if o.name not in ("stop", "json")}
        return {**base, "stop": check_stop(options.get("stop")), "json": bool(options.get("json"))}

    def validate(self, inputs: dict[str, Any], limits: Limits = OWNER) -> dict[str, Any]:
        return {"messages": check_messages(inputs.get("messages"))}

    def preprocess(self, model: ModelView, inputs: dict[str, Any], options: dict[str, Any]) -> Prepared:
        if options["json"]:
            check_json_asked(inputs["messages"])
        prepared = chat.prepare_many(model, [inputs["messages"]], options)[0]
        if isinstance(prepared, UserError):
            raise prepared
        return prepared

    def forward(
        self, model: ModelView, pieces: list[Piece], options: dict[str, Any], stop: Stop, streamer: Any = None
    ) -> list[Any]:
        return generated(chat.chat_forward, model, pieces, options, stop, streamer)

    def postprocess(
        self, model: ModelView, prepared: Prepared, outputs: list[Any], options: dict[str, Any]
    ) -> Result:
        out = outputs[0]
        cut, stopped = cut_at_stop(out["text"], options["stop"])
        reason = finish_reason(out["tokens"], options["max_new_tokens"], stopped)
        answer = chat.answer_text(cut)
        if options["json"] and reason != "length":  # cut short, it is returned as it is (as OpenAI does)
            answer = json_object_text(answer, model.display)
        data = {
            "answer": answer,
            "finish_reason": reason,
            "prompt_tokens": len(prepared.pieces[0].ids),
            "completion_tokens": out["tokens"],
        }
        return Result(data=data, outputs=(answer,), text=answer)

    def partial(self, model: ModelView, prepared: Prepared, text: str) -> Result:
        return text_so_far(text)


class TextCompletion(generate.Generate):
    """``/v1/completions``: plain prompts continued by a text-generation model (the Generate tab's)."""

    id = "completion"
    title = "Completions"
    description = "The Local API's completions: prompts in, their continuations out."
    inputs = ("prompts",)
    options = (*generate.OPTIONS, STOP, ECHO)
    ui = "files"
    file_input = None

    def check_options(self, options: dict[str, Any]) -> dict[str, Any]:
        base = {o.name: o.check(options.get(o.name)) for o in self.options if o.name not in ("stop", "echo")}
        return {**base, "stop": check_stop(options.get("stop")), "echo": ECHO.check(options.get("echo"))}

    def validate(self, inputs: dict[str, Any], limits: Limits = OWNER) -> dict[str, Any]:
        prompts = inputs.get("prompts")
        prompts = [prompts] if isinstance(prompts, str) else prompts
        if not isinstance(prompts, list) or not prompts:
            raise UserError("prompt must be a text or a list of texts.")
        if len(prompts) > MAX_PROMPTS:
            raise UserError(f"{len(prompts)} prompts were given; at most {MAX_PROMPTS} run in one request.")
        return {"prompts": [generate.SPEC.validate({"prompt": one})["prompt"] for one in prompts]}

    def preprocess(self, model: ModelView, inputs: dict[str, Any], options: dict[str, Any]) -> Prepared:
        each = [generate.SPEC.preprocess(model, {"prompt": one}, options) for one in inputs["prompts"]]
        pieces = [Piece(0, part, ids=one.pieces[0].ids) for part, one in enumerate(each)]
        notes = [note for one in each for note in one.notes]
        return Prepared(pieces, context={"prompts": inputs["prompts"]}, notes=notes)

    def forward(
        self, model: ModelView, pieces: list[Piece], options: dict[str, Any], stop: Stop, streamer: Any = None
    ) -> list[Any]:
        return generated(generate.generate_forward, model, pieces, options, stop, streamer)

    def postprocess(
        self, model: ModelView, prepared: Prepared, outputs: list[Any], options: dict[str, Any]
    ) -> Result:
        choices = []
        for prompt, out in zip(prepared.context["prompts"], outputs, strict=True):
            cut, stopped = cut_at_stop(out["text"], options["stop"])
            choices.append(
                {
                    "text": (prompt if options["echo"] else "") + cut,
                    "finish_reason": finish_reason(out["tokens"], options["max_new_tokens"], stopped),
                    "completion_tokens": out["tokens"],
                }
            )
        data = {"choices": choices, "prompt_tokens": sum(len(p.ids) for p in prepared.pieces)}
        return Result(data=data, outputs=(choices[0]["text"],), text=choices[0]["text"])

    def partial(self, model: ModelView, prepared: Prepared, text: str) -> Result:
        return text_so_far(text)

    def row_values(self, result: Result) -> dict[str, Any]:
        return {"generated_text": result.text}


CHAT = ChatCompletion()
TEXT = TextCompletion()
