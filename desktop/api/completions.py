"""``/v1/chat/completions`` and ``/v1/completions``: OpenAI's request shape in, the engine's answer out,
whole or as server-sent events (as the ``openai`` client reads them).

The parameters are checked by the tasks' own options under the names the request used
(``max_tokens`` 5000 is refused as "max_tokens must be at most 1024"); what Pipedesk does not do
(tools, several answers, log probabilities, penalties) is refused in words, never ignored. The work
is :mod:`desktop.tasks.completions` on the engine, like any tab's. Runs on the server's event loop;
the engine on worker threads.
"""

from __future__ import annotations

import time
import uuid
from typing import Any

from desktop.api.work import ApiError, Worker, endpoint, error_event, event, json_response, read_json
from desktop.errors import UserError
from desktop.tasks import completions
from desktop.tasks.spec import Result, TaskSpec

NO_TOOLS = "Pipedesk's models do not call tools: send the request without tools or functions."
NO_PENALTIES = "Pipedesk does not apply presence or frequency penalties: leave them at 0."
NOT_TAKEN = {
    "tools": NO_TOOLS,
    "functions": NO_TOOLS,
    "tool_choice": NO_TOOLS,
    "function_call": NO_TOOLS,
    "logprobs": "Pipedesk does not give log probabilities: leave logprobs out.",
    "top_logprobs": "Pipedesk does not give log probabilities: leave top_logprobs out.",
    "n": "Pipedesk writes one answer per request: n must be 1.",
    "best_of": "Pipedesk writes one answer per prompt: best_of must be 1.",
    "presence_penalty": NO_PENALTIES,
    "frequency_penalty": NO_PENALTIES,
    "logit_bias": "Pipedesk does not take a logit_bias.",
    "suffix": "Pipedesk does not write text between a prompt and a suffix: leave suffix out.",
    "audio": "Pipedesk's chat answers in text only.",
}


def asks_nothing(name: str, value: Any) -> bool:
    """True when a parameter of :data:`NOT_TAKEN` has a value that asks for nothing (clients send
    such defaults): none, false, 0, an empty list; ``n`` 1; ``tool_choice`` "none" or "auto"."""
    if value is None or value is False:
        return True
    if isinstance(value, bool):
        return False
    if name in ("n", "best_of"):
        return value == 1
    if name in ("tool_choice", "function_call"):
        return value in ("none", "auto")
    return value in (0, "", [], {})


def refuse_unsupported(body: dict[str, Any]) -> None:
    """UserError for a parameter asking for something Pipedesk does not do."""
    for name, words in NOT_TAKEN.items():
        if not asks_nothing(name, body.get(name)):
            raise UserError(words)
    if body.get("modalities") not in (None, ["text"]):
        raise UserError('Pipedesk\'s chat answers in text only: modalities must be ["text"].')


def generation(body: dict[str, Any], spec: TaskSpec) -> dict[str, Any]:
    """The generation options of a request, checked by ``spec``'s options under the request's names."""
    refuse_unsupported(body)
    options = {option.name: option for option in spec.options}
    length = "max_completion_tokens" if body.get("max_completion_tokens") is not None else "max_tokens"
    return {
        "max_new_tokens": options["max_new_tokens"].check(body.get(length), length),
        "temperature": options["temperature"].check(body.get("temperature"), "temperature"),
        "top_p": options["top_p"].check(body.get("top_p"), "top_p"),
        "seed": options["seed"].check(body.get("seed"), "seed"),
        "stop": completions.check_stop(body.get("stop")),
    }


def json_asked(response_format: Any) -> bool:
    """True for ``{"type": "json_object"}``; False for none or ``{"type": "text"}``; else UserError."""
    if response_format is None:
        return False
    kind = response_format.get("type") if isinstance(response_format, dict) else None
    if kind in ("text", "json_object"):
        return kind == "json_object"
    raise UserError(
        'response_format takes {"type": "json_object"} (an answer that is one JSON object) or '
        '{"type": "text"}; Pipedesk does not follow a JSON schema.'
    )


def flag(body: dict[str, Any], name: str) -> bool:
    value = body.get(name)
    if value not in (None, True, False):
        raise UserError(f"{name} must be true or false, not {value!r}.")
    return bool(value)


def arguments(spec: TaskSpec, values: dict[str, Any]) -> list[Any]:
    """The engine's positional arguments for ``spec`` (inputs, model, options) from named values."""
    return [values.get(name) for name in spec.parameters]


def model_name(spec: TaskSpec, given: Any) -> str:
    """The model an answer names: the one asked for, or the task's default."""
    if isinstance(given, str) and given.strip():
        return given.strip()
    if given is not None and not isinstance(given, str):
        raise UserError("model must be a model's name (text).")
    return spec.default_model.repo


def usage(prompt: int, completion: int) -> dict[str, int]:
    return {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion}


class Completions:
    """The two endpoints for one server's door (the owner's, or visitors' with their limits)."""

    def __init__(self, door: Any, worker: Worker) -> None:
        self.door, self.worker = door, worker

    # --- /v1/chat/completions ------------------------------------------------------------------

    @endpoint
    async def chat(self, request: Any) -> Any:
        body = await read_json(request)
        spec = completions.CHAT
        options = {**generation(body, spec), "json": json_asked(body.get("response_format"))}
        model = model_name(spec, body.get("model"))
        args = arguments(spec, {"messages": body.get("messages"), "model": body.get("model"), **options})
        head = {"id": f"chatcmpl-{uuid.uuid4().hex[:24]}", "created": int(time.time()), "model": model}
        streamed = flag(body, "stream")
        if not streamed or options["json"]:  # a JSON answer is checked whole before it is sent
            result = await self.worker.run(self.door.predict, spec, *args)
            if not streamed:
                return json_response(chat_body(head, result))
            return _sse(_one_piece_chat(head, result, _include_usage(body)))
        first, rest = await self._started(spec, args)
        return _sse(_chat_events(head, first, rest, options["stop"], _include_usage(body)))

    # --- /v1/completions -----------------------------------------------------------------------

    @endpoint
    async def text(self, request: Any) -> Any:
        body = await read_json(request)
        spec = completions.TEXT
        options = {**generation(body, spec), "echo": flag(body, "echo")}
        prompts = body.get("prompt")
        if isinstance(prompts, list) and any(not isinstance(one, str) for one in prompts):
            raise UserError("prompt must be a text or a list of texts: Pipedesk does not take token ids.")
        args = arguments(spec, {"prompts": prompts, "model": body.get("model"), **options})
        head = {"id": f"cmpl-{uuid.uuid4().hex[:24]}", "created": int(time.time())}
        head["model"] = model_name(spec, body.get("model"))
        if not flag(body, "stream"):
            result = await self.worker.run(self.door.predict, spec, *args)
            return json_response(text_body(head, result))
        if isinstance(prompts, list) and len(prompts) != 1:
            raise UserError(
                "A streamed completion takes one prompt: send the others in requests of their own."
            )
        first, rest = await self._started(spec, args)
        echo = (prompts[0] if isinstance(prompts, list) else prompts or "") if options["echo"] else ""
        return _sse(_text_events(head, first, rest, options["stop"], echo, _include_usage(body)))

    async def _started(self, spec: TaskSpec, args: list[Any]) -> tuple[Result, Any]:
        """The engine's stream, with its first result already there: a refusal (a bad message, a
        model that does not fit) is then an HTTP error, not an event in a stream."""
        rest = self.worker.stream(lambda stopped: self.door.stream(spec, *args, stop=stopped))
        try:
            first = await anext(rest)
        except StopAsyncIteration:
            raise ApiError(500, "The model gave no answer.") from None
        return first, rest


def chat_body(head: dict[str, Any], result: Result) -> dict[str, Any]:
    data = result.data
    message = {"role": "assistant", "content": data["answer"], "refusal": None}
    body = {
        **head,
        "object": "chat.completion",
        "choices": [
            {"index": 0, "message": message, "logprobs": None, "finish_reason": data["finish_reason"]}
        ],
        "usage": usage(data["prompt_tokens"], data["completion_tokens"]),
        "system_fingerprint": None,
    }
    return {**body, "notes": result.notes} if result.notes else body


def text_body(head: dict[str, Any], result: Result) -> dict[str, Any]:
    choices = [
        {"index": i, "text": one["text"], "logprobs": None, "finish_reason": one["finish_reason"]}
        for i, one in enumerate(result.data["choices"])
    ]
    completion = sum(one["completion_tokens"] for one in result.data["choices"])
    body = {**head, "object": "text_completion", "choices": choices}
    body["usage"] = usage(result.data["prompt_tokens"], completion)
    return {**body, "notes": result.notes} if result.notes else body


def _include_usage(body: dict[str, Any]) -> bool:
    options = body.get("stream_options")
    return isinstance(options, dict) and bool(options.get("include_usage"))


def _sse(events: Any) -> Any:
    from starlette.responses import StreamingResponse

    return StreamingResponse(events, media_type="text/event-stream", headers={"Cache-Control": "no-cache"})


def _chat_chunk(head: dict[str, Any], delta: dict[str, Any], finish: str | None = None) -> bytes:
    choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}
    return event({**head, "object": "chat.completion.chunk", "choices": [choice]})


def _usage_chunk(head: dict[str, Any], obj: str, result: Result) -> bytes:
    data = result.data
    completion = data.get("completion_tokens", 0) or sum(
        c["completion_tokens"] for c in data.get("choices", [])
    )
    return event({**head, "object": obj, "choices": [], "usage": usage(data["prompt_tokens"], completion)})


async def _one_piece_chat(head: dict[str, Any], result: Result, with_usage: bool) -> Any:
    yield _chat_chunk(head, {"role": "assistant", "content": ""})
    yield _chat_chunk(head, {"content": result.data["answer"]})
    yield _chat_chunk(head, {}, result.data["finish_reason"])
    if with_usage:
        yield _usage_chunk(head, "chat.completion.chunk", result)
    yield event("[DONE]")


async def _events(
    head: dict[str, Any], first: Result, rest: Any, how: dict[str, Any], usage_object: str | None
) -> Any:
    """A stream's events: ``how["piece"](text)`` as the answer grows (``how["shown"](partial)``: what of
    a partial result can be sent; what was sent is never taken back), then the rest of the whole
    answer (``how["final"](result)``, None while it is partial), ``how["end"](result)``, the usage if
    asked for (as ``usage_object``) and ``[DONE]``. A failure midway is an error event, as OpenAI's."""
    sent, result = "", first
    try:
        while (whole := how["final"](result)) is None:
            now = how["shown"](result)
            if now.startswith(sent) and len(now) > len(sent):
                yield how["piece"](now[len(sent) :])
                sent = now
            result = await anext(rest)
    except Exception as exc:
        yield error_event(exc)
        return
    if whole.startswith(sent) and len(whole) > len(sent):
        yield how["piece"](whole[len(sent) :])
    yield how["end"](result)
    if usage_object:
        yield _usage_chunk(head, usage_object, result)
    yield event("[DONE]")


async def _chat_events(head: dict[str, Any], first: Result, rest: Any, stops: Any, with_usage: bool) -> Any:
    yield _chat_chunk(head, {"role": "assistant", "content": ""})
    how = {
        "shown": lambda partial: completions.shown_so_far(partial.data["text"], stops).strip(),
        "final": lambda result: result.data.get("answer"),
        "piece": lambda text: _chat_chunk(head, {"content": text}),
        "end": lambda result: _chat_chunk(head, {}, result.data["finish_reason"]),
    }
    async for item in _events(head, first, rest, how, "chat.completion.chunk" if with_usage else None):
        yield item


def _text_chunk(head: dict[str, Any], text: str, finish: str | None = None) -> bytes:
    choice = {"index": 0, "text": text, "logprobs": None, "finish_reason": finish}
    return event({**head, "object": "text_completion", "choices": [choice]})


async def _text_events(
    head: dict[str, Any], first: Result, rest: Any, stops: Any, echo: str, with_usage: bool
) -> Any:
    if echo:
        yield _text_chunk(head, echo)
    how = {
        "shown": lambda partial: completions.shown_so_far(partial.data["text"], stops),
        "final": lambda result: (
            result.data["choices"][0]["text"][len(echo) :] if "choices" in result.data else None
        ),
        "piece": lambda text: _text_chunk(head, text),
        "end": lambda result: _text_chunk(head, "", result.data["choices"][0]["finish_reason"]),
    }
    async for item in _events(head, first, rest, how, "text_completion" if with_usage else None):
        yield item
