"""The Local API with the real clients: the official ``openai`` package and the ``mcp`` SDK's client.

Against the app on 127.0.0.1 as the window and ``pipedesk serve`` serve it: the Local API off by
default, then on with its key (each test has its own settings, so its own switch and key). The
answers are the tiny models' known ones (tests/support: the tiny instruct model's trained answers,
the tiny Whisper's "a tone", the tiny sentence embedder that sentence-transformers reads too).
Visitors (LAN, ``pipedesk serve``, the gate) are in tests/test_local_api_doors.py.
"""

from __future__ import annotations

import base64
import json

import httpx
import openai
import pytest

from desktop.api import keys
from desktop.tasks import TASKS
from tests.support.api_clients import mcp, openai_client, tool_call
from tests.support.tiny_api import MINILM, TOPICS
from tests.support.tiny_chat import FIELDS, HELLO, HELLO_ANSWER, PIP_ANSWER, PIP_SYSTEM, PROMPT, REVIEWS
from tests.support.tiny_media import tone, wav_bytes, write_wav

QWEN = "Qwen/Qwen2.5-0.5B-Instruct"
GPT2 = "openai-community/gpt2"
SST2 = "distilbert/distilbert-base-uncased-finetuned-sst-2-english"


@pytest.fixture
def key(app_server) -> str:
    """The Local API switched on (in this test's own settings): its key."""
    return keys.turn_on(None)


@pytest.fixture
def api(app_server, key):
    return openai_client(app_server.url, key)


def ask(api, content: str, **options):
    options.setdefault("model", QWEN)
    return api.chat.completions.create(messages=[{"role": "user", "content": content}], **options)


# --- the switch and the key ----------------------------------------------------------------


def test_the_local_api_is_off_until_switched_on_and_then_needs_its_key(app_server):
    with pytest.raises(openai.PermissionDeniedError, match="The Local API is off"):
        openai_client(app_server.url, "anything").models.list()
    key = keys.turn_on(None)
    assert key.startswith("pd-") and len(key) > 40
    assert isinstance(openai_client(app_server.url, key).models.list().data, list)
    with pytest.raises(openai.AuthenticationError, match="Wrong API key"):
        openai_client(app_server.url, key + "x").models.list()
    with httpx.Client(timeout=30) as http:
        plain = http.get(app_server.url + "v1/models")
        assert plain.status_code == 401 and plain.json()["error"]["code"] == "invalid_api_key"
        foreign = http.get(
            app_server.url + "v1/models",
            headers={"Authorization": f"Bearer {key}", "Origin": "http://evil.example"},
        )
        assert foreign.status_code == 403 and "other web pages" in foreign.json()["error"]["message"]
    renewed = keys.renew()
    with pytest.raises(openai.AuthenticationError):
        openai_client(app_server.url, key).models.list()
    assert isinstance(openai_client(app_server.url, renewed).models.list().data, list)
    keys.turn_off()
    with pytest.raises(openai.PermissionDeniedError):
        openai_client(app_server.url, renewed).models.list()


def test_the_key_is_kept_where_only_its_owner_can_read_it(app_server):
    from desktop import settings

    key = keys.turn_on(8123)
    saved = settings.settings_file()
    assert saved.stat().st_mode & 0o077 == 0, oct(saved.stat().st_mode)
    assert settings.load().api_key == key and settings.load().api_port == 8123
    keys.turn_off()
    assert keys.turn_on(None) == key and settings.load().api_port == 8123  # the same key and address


# --- chat ------------------------------------------------------------------------------------


def test_chat_answers_whole_and_streamed_alike(api):
    whole = ask(api, HELLO, temperature=0)
    assert whole.choices[0].message.content == HELLO_ANSWER
    assert whole.choices[0].finish_reason == "stop" and whole.model == QWEN
    assert whole.usage.prompt_tokens > 5 and 0 < whole.usage.completion_tokens < 30
    pieces = list(ask(api, HELLO, temperature=0, stream=True, stream_options={"include_usage": True}))
    deltas = [c.choices[0].delta.content or "" for c in pieces if c.choices]
    assert "".join(deltas) == HELLO_ANSWER and len([d for d in deltas if d]) > 3  # token by token
    assert pieces[-1].usage.completion_tokens == whole.usage.completion_tokens
    assert [c.choices[0].finish_reason for c in pieces if c.choices][-1] == "stop"
    # The system prompt and the conversation reach the model through its chat template.
    system = [{"role": "system", "content": PIP_SYSTEM}, {"role": "user", "content": "What is your name?"}]
    named = api.chat.completions.create(model=QWEN, messages=system, temperature=0)
    assert named.choices[0].message.content == PIP_ANSWER


def test_stop_sequences_end_the_answer_and_are_left_out(api):
    whole = ask(api, HELLO, temperature=0, stop=[" on your"])
    assert (
        whole.choices[0].message.content == "I answer questions" and whole.choices[0].finish_reason == "stop"
    )
    streamed = "".join(
        chunk.choices[0].delta.content or ""
        for chunk in ask(api, HELLO, temperature=0, stop=" on your", stream=True)
        if chunk.choices
    )
    assert streamed == "I answer questions"
    short = ask(api, HELLO, temperature=0, max_tokens=2)
    assert short.choices[0].finish_reason == "length" and short.usage.completion_tokens == 2


def test_a_json_object_answer_is_the_object_alone(api):
    from desktop.tasks.prompt import user_message

    def review(number: int) -> str:
        return user_message(PROMPT, {"id": "1", "review": REVIEWS[number][0]}, FIELDS)

    fmt = {"type": "json_object"}
    plain = ask(api, review(0), temperature=0, response_format=fmt).choices[0].message.content
    assert json.loads(plain) == {"product": "blender", "complaint": "broke after two days"}
    fenced = ask(api, review(1), temperature=0, response_format=fmt, stream=True)
    text = "".join(chunk.choices[0].delta.content or "" for chunk in fenced if chunk.choices)
    assert json.loads(text) == {"product": "kettle", "complaint": "leaks water"}  # no fence, no prose
    with pytest.raises(openai.UnprocessableEntityError, match="did not answer with a JSON object"):
        ask(api, review(2), temperature=0, response_format=fmt)
    with pytest.raises(openai.BadRequestError, match="no message asks the model for JSON"):
        ask(api, HELLO, response_format=fmt)


def test_chat_refusals_are_the_apps_sentences(api):
    cases = [
        ({"max_tokens": 5000}, r"max_tokens must be at most 1024 \(got 5000\)"),
        ({"temperature": 3}, "temperature must be at most 2"),
        ({"n": 2}, "n must be 1"),
        ({"tools": [{"type": "function", "function": {"name": "f", "parameters": {}}}]}, "do not call tools"),
        (
            {"response_format": {"type": "json_schema", "json_schema": {"name": "x"}}},
            "does not follow a JSON schema",
        ),
        ({"model": GPT2}, r"has no chat template.*/v1/completions"),
        ({"model": MINILM}, "does not fit chat"),
        ({"model": "nobody/nothing-here"}, "No model called 'nobody/nothing-here'"),
    ]
    for options, words in cases:
        with pytest.raises(openai.BadRequestError, match=words):
            ask(api, HELLO, **options)
    with pytest.raises(openai.BadRequestError, match="The last message must be the user's"):
        api.chat.completions.create(model=QWEN, messages=[{"role": "assistant", "content": "Hi"}])
    with pytest.raises(openai.BadRequestError, match="The message is empty"):
        ask(api, "   ")
    assert ask(api, HELLO, temperature=0).choices[0].message.content == HELLO_ANSWER  # still working


# --- completions, embeddings, transcriptions -------------------------------------------------------


def test_completions_continue_each_prompt_as_the_generate_tab_does(api, runtime):
    prompts = ["Once upon a time", "The service was"]
    answer = api.completions.create(model=GPT2, prompt=prompts, max_tokens=6, temperature=0)
    generate = TASKS["generate"]
    for prompt, choice in zip(prompts, answer.choices, strict=True):
        assert prompt + choice.text == generate.predict(runtime, prompt, GPT2, 6, 0.0).data["text"]
        assert choice.finish_reason == "length"
    assert answer.usage.completion_tokens == 12
    echoed = api.completions.create(model=GPT2, prompt=prompts[0], max_tokens=6, temperature=0, echo=True)
    assert echoed.choices[0].text == prompts[0] + answer.choices[0].text
    streamed = api.completions.create(model=GPT2, prompt=prompts[0], max_tokens=6, temperature=0, stream=True)
    assert "".join(chunk.choices[0].text for chunk in streamed) == answer.choices[0].text
    with pytest.raises(openai.BadRequestError, match="does not take token ids"):
        api.completions.create(model=GPT2, prompt=[[1, 2, 3]])


def test_embeddings_of_a_list_are_sentence_transformers_vectors(api, tiny_models):
    import numpy as np
    from sentence_transformers import SentenceTransformer

    texts = [text for topic in TOPICS for text in topic]
    packed = api.embeddings.create(model=MINILM, input=texts)  # the client asks for base64 by default
    plain = api.embeddings.create(model=MINILM, input=texts, encoding_format="float")
    ours = np.array([item.embedding for item in packed.data])
    assert ours.shape == (9, 32) and [item.index for item in packed.data] == list(range(9))
    assert np.allclose(ours, np.array([item.embedding for item in plain.data]), atol=1e-6)
    reference = SentenceTransformer(str(tiny_models[MINILM]), device="cpu").encode(texts)
    assert np.allclose(ours, reference, atol=1e-5)
    assert np.allclose(np.linalg.norm(ours, axis=1), 1.0, atol=1e-5)  # normalised, as the model says
    similar = ours @ ours.T
    for row in range(9):  # each text is nearest the other texts about the same thing
        best = sorted(range(9), key=lambda other: -similar[row, other])[1:3]
        assert {other // 3 for other in best} == {row // 3}
    assert packed.usage.prompt_tokens > 9
    one = api.embeddings.create(model=MINILM, input=texts[0], encoding_format="float")
    assert np.allclose(one.data[0].embedding, ours[0], atol=1e-5)
    with pytest.raises(openai.BadRequestError, match="dimensions must be 32"):
        api.embeddings.create(model=MINILM, input="hello", dimensions=8)
    with pytest.raises(openai.BadRequestError, match="does not fit sentence embeddings"):
        api.embeddings.create(model=SST2, input="hello")


def test_a_transcription_in_each_response_format(api, tmp_path):
    recording = write_wav(tmp_path / "memo.wav", tone(2.0))

    def transcribe(shape: str, **options):
        with recording.open("rb") as file:
            return api.audio.transcriptions.create(model="", file=file, response_format=shape, **options)

    assert transcribe("json").text == "a tone"
    assert transcribe("text") == "a tone\n"
    assert transcribe("srt") == "1\n00:00:00,000 --> 00:00:02,000\na tone\n"
    assert transcribe("vtt") == "WEBVTT\n\n00:00:00.000 --> 00:00:02.000\na tone\n"
    verbose = transcribe("verbose_json", language="en")
    assert verbose.language == "english" and verbose.duration == 2.0 and verbose.text == "a tone"
    assert [(s.start, s.end, s.text) for s in verbose.segments] == [(0.0, 2.0, "a tone")]
    assert not getattr(verbose, "words", None)  # words are timed when asked for
    timed = transcribe("verbose_json", timestamp_granularities=["word", "segment"])
    assert " ".join(w.word for w in timed.words) == "a tone"
    assert all(0.0 <= w.start <= w.end <= 2.0 for w in timed.words)
    with pytest.raises(openai.BadRequestError, match="needs response_format 'verbose_json'"):
        transcribe("json", timestamp_granularities=["word"])
    with pytest.raises(openai.BadRequestError, match="language must be one of"):
        transcribe("json", language="xx")
    with pytest.raises(openai.BadRequestError, match="not an audio file Pipedesk can read"):
        api.audio.transcriptions.create(model="", file=("notes.wav", b"just some text, not sound"))


def test_models_lists_what_is_installed_with_its_task(api):
    listed = {model.id: model for model in api.models.list().data}
    assert {QWEN, GPT2, MINILM} <= set(listed)  # installed by the tests above or the session's own
    assert listed[QWEN].task == "chat" and "/v1/chat/completions" in listed[QWEN].endpoints
    assert listed[MINILM].task == "embed" and listed[MINILM].endpoints == ["/v1/embeddings"]
    assert api.models.retrieve(QWEN).id == QWEN
    with pytest.raises(openai.NotFoundError, match="is installed here"):
        api.models.retrieve("nobody/nothing-here")


def test_bodies_that_are_not_what_the_api_takes_get_words(app_server, key):
    auth = {"Authorization": f"Bearer {key}"}
    with httpx.Client(timeout=30) as http:
        broken = http.post(app_server.url + "v1/chat/completions", content=b"{not json", headers=auth)
        assert broken.status_code == 400 and "not JSON" in broken.json()["error"]["message"]
        huge = http.post(app_server.url + "v1/embeddings", content=b" " * (5 << 20), headers=auth)
        assert huge.status_code == 413 and "at most 4 MB" in huge.json()["error"]["message"]
        missing = http.get(app_server.url + "v1/engines", headers=auth)
        assert missing.status_code == 404 and "/v1/chat/completions" in missing.json()["error"]["message"]


# --- MCP ---------------------------------------------------------------------------------------


def test_mcp_lists_every_task_as_a_tool_and_no_owner_control(app_server, key):
    async def listed(client):
        return (await client.list_tools()).tools

    tools = {tool.name: tool for tool in mcp(app_server.url, listed, key=key)}
    assert set(tools) == {spec.id for spec in TASKS.values() if spec.ui != "files"}
    assert {"sentiment", "ner", "classify", "translate", "summarize", "transcribe", "detect", "chat"} <= set(
        tools
    )
    schema = tools["chat"].input_schema
    assert schema["required"] == ["message"]
    assert schema["properties"]["max_new_tokens"] == {
        "type": "integer",
        "description": "The longest answer, in tokens.",
        "default": 256,
        "minimum": 1,
        "maximum": 1024,
    }
    assert tools["transcribe"].input_schema["properties"]["language"]["enum"][:2] == ["auto", "en"]
    assert tools["sentiment"].title == "Sentiment" and tools["sentiment"].annotations.read_only_hint


def test_mcp_tools_answer_as_the_tabs_do_and_refuse_in_their_words(app_server, key, runtime, tmp_path):
    result = tool_call(app_server.url, "sentiment", {"text": "I love this product!"}, key=key)
    expected = TASKS["sentiment"].predict(runtime, "I love this product!").data
    assert not result.is_error and result.structured_content["label"] == expected["label"] == "POSITIVE"
    assert result.structured_content["score"] == pytest.approx(expected["score"], abs=1e-4)
    audio = base64.b64encode(wav_bytes(tone(2.0))).decode()
    heard = tool_call(app_server.url, "transcribe", {"audio": audio, "timestamps": True}, key=key)
    assert heard.structured_content["segments"] == [{"start": 0.0, "end": 2.0, "text": "a tone"}]
    owned = write_wav(tmp_path / "on-this-computer.wav", tone(2.0))  # the owner's programs may name a file
    assert tool_call(app_server.url, "transcribe", {"audio": str(owned)}, key=key).structured_content[
        "text"
    ] == ("a tone")
    ticket = {
        "input_type": "Text",
        "text": "I was charged twice for my order.",
        "labels": "billing, shipping, broken product",
    }
    labelled = tool_call(app_server.url, "labels", ticket, key=key).structured_content["labels"]
    assert labelled[0]["label"] == "billing"  # the Labels tab's answer, from an agent
    short = tool_call(app_server.url, "sentiment", {"text": "I"}, key=key)
    assert (
        short.is_error
        and short.content[0].text == "The text is too short: please enter at least 3 characters."
    )
    stranger = tool_call(app_server.url, "sentiment", {"text": "Fine.", "mood": "x"}, key=key)
    assert stranger.is_error and "takes no 'mood'" in stranger.content[0].text
    from mcp import MCPError

    with pytest.raises(Exception) as refused:  # no key: the SDK's client gets no answer (a group)
        tool_call(app_server.url, "sentiment", {"text": "I love this product!"})
    assert refused.group_contains(MCPError)
    raw = httpx.post(
        app_server.url + "mcp", json={"jsonrpc": "2.0", "id": 1, "method": "tools/list"}, timeout=30
    )
    assert raw.status_code == 401 and "needs an API key" in raw.json()["error"]["message"]


# --- the Local API section of the Sharing tab, as a person uses it ------------------------------------


@pytest.mark.browser
def test_the_sharing_tab_switches_the_local_api_and_shows_its_address_key_and_snippets(browser, app_server):
    from tests.support import ARTIFACTS
    from tests.support.pages import new_page

    context, page = new_page(browser, height=1400)
    try:
        page.goto(app_server.url)
        page.get_by_role("tab", name="Sharing", exact=True).click(timeout=60_000)
        toggle = page.get_by_label("Let other programs use Pipedesk (Local API)")
        assert not toggle.is_checked() and "Not on." in page.locator("#api-state").inner_text()
        toggle.check()
        page.get_by_text("Programs on this computer that send the key").wait_for(timeout=30_000)
        url = page.locator("label", has_text="Base URL").get_by_role("textbox").input_value()
        key = page.locator("label", has_text="API key").get_by_role("textbox").input_value()
        assert url == f"http://127.0.0.1:{app_server.port}/v1" and key == keys.current_key()
        snippet = page.locator(".cm-content").first.inner_text()
        assert f'base_url="{url}"' in snippet and f'api_key="{key}"' in snippet
        config = page.locator(".cm-content").nth(1).inner_text()
        assert f'"url": "{url[: -len("/v1")]}/mcp"' in config and f"Bearer {key}" in config
        api = openai_client(url[: -len("/v1")], key)  # what the page shows, pasted into a program
        assert ask(api, HELLO, temperature=0).choices[0].message.content == HELLO_ANSWER
        ARTIFACTS.mkdir(exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / "local-api-on.png"), full_page=True)
        page.get_by_role("button", name="New key", exact=True).click()
        page.wait_for_function(
            "old => [...document.querySelectorAll('input, textarea')].every(e => e.value !== old)",
            arg=key,
            timeout=20_000,
        )
        with pytest.raises(openai.AuthenticationError):
            api.models.list()  # the old key stops working at once
        toggle.uncheck()
        page.get_by_text("Not on.").wait_for(timeout=30_000)
        assert not keys.is_on()
        assert page.console_errors == []
    finally:
        context.close()
