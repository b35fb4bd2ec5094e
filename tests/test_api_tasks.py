"""The tasks behind the Local API, without a server: the OpenAI-shaped rules of desktop/tasks/completions.py
(messages, stop sequences, JSON answers) and the Embeddings task (sentence-embedding models in the
store and the engine), on the tiny real models."""

from __future__ import annotations

import json
import shutil

import pytest

from desktop.errors import ModelError, UserError
from desktop.models.compat import check_fits, read_pooling
from desktop.tasks import TASKS, completions, embed
from tests.support import cli_env, run_cli
from tests.support.tiny_api import BGE, MINILM, TOPICS

# --- messages, stop sequences, JSON ----------------------------------------------------------------


def test_messages_become_the_chat_cores_conversation():
    messages = [
        {"role": "system", "content": "Be brief."},
        {"role": "developer", "content": [{"type": "text", "text": "Answer in French."}]},
        {"role": "user", "content": "Hi"},
        {"role": "assistant", "content": "Bonjour"},
        {"role": "user", "content": "  Name?  "},
    ]
    assert completions.check_messages(messages) == [
        {"role": "system", "content": "Be brief.\n\nAnswer in French."},
        {"role": "user", "content": "Hi"},
        {"role": "assistant", "content": "Bonjour"},
        {"role": "user", "content": "Name?"},
    ]
    refused = [
        ([], "messages must be a list"),
        ([{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Yes"}], "must be the user's"),
        ([{"role": "user", "content": "Hi"}, {"role": "system", "content": "x"}, {"role": "user", "content": "a"}],
         "may only come first"),
        ([{"role": "tool", "content": "42"}, {"role": "user", "content": "Hi"}], "do not call tools"),
        ([{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "x"}}]}], "other than text"),
        (["Hi"], 'needs a "role"'),
    ]  # fmt: skip
    for given, words in refused:
        with pytest.raises(UserError, match=words):
            completions.check_messages(given)


def test_stop_sequences_are_checked_and_cut_the_text_where_the_first_one_starts():
    assert completions.check_stop(None) == () and completions.check_stop("\n") == ("\n",)
    assert completions.check_stop(["a", "b", "a"]) == ("a", "b")
    for bad, words in (
        (["a"] * 5, "at most 4"),
        ([""], "empty text"),
        ([1], "a text or a list"),
        ("x" * 201, "200"),
    ):
        with pytest.raises(UserError, match=words):
            completions.check_stop(bad)
    assert completions.cut_at_stop("one two. three", ("two", ".")) == ("one ", True)
    assert completions.cut_at_stop("one", ("two",)) == ("one", False)


def test_a_streamed_text_shows_only_what_cannot_turn_into_a_stop_sequence():
    text, stops = "Hello <end> and more", ("<end>",)
    shown = [completions.shown_so_far(text[:n], stops) for n in range(len(text) + 1)]
    assert shown[len("Hello <en")] == "Hello "  # "<en" may become "<end>": held back
    assert shown[-1] == "Hello "  # and the stop sequence, once written, ends it
    for before, after in zip(shown, shown[1:], strict=False):
        assert after.startswith(before), "what was shown is never taken back"
    assert completions.shown_so_far("Hello <b", stops) == "Hello <b"  # "<b" starts no stop sequence


def test_why_an_answer_ended():
    assert completions.finish_reason(tokens=10, max_new_tokens=10, stopped=False) == "length"
    assert completions.finish_reason(tokens=10, max_new_tokens=10, stopped=True) == "stop"
    assert completions.finish_reason(tokens=3, max_new_tokens=10, stopped=False) == "stop"


def test_a_json_answer_is_the_object_found_or_a_refusal_in_words():
    fenced = 'Sure:\n```json\n{"a": [1, 2]}\n```'
    assert json.loads(completions.json_object_text(fenced, "M")) == {"a": [1, 2]}
    with pytest.raises(completions.NoJsonAnswer, match="M did not answer with a JSON object"):
        completions.json_object_text("No idea.", "M")
    with pytest.raises(UserError, match="no message asks the model for JSON"):
        completions.check_json_asked([{"role": "user", "content": "Hi"}])
    completions.check_json_asked([{"role": "user", "content": "Reply in JSON please"}])


# --- Embeddings: the store, the engine ------------------------------------------------------------


def test_texts_to_embed_are_checked_in_words():
    assert embed.check_texts("  hi ") == ["hi"] and embed.check_texts(["a", "b"]) == ["a", "b"]
    for bad, words in (
        ([], "Give a text"),
        (None, "Give a text"),
        (["ok", " "], "Text 2 of 2: The text is empty"),
    ):
        with pytest.raises(UserError, match=words):
            embed.check_texts(bad)
    with pytest.raises(UserError, match="at most 2,048"):
        embed.check_texts(["x"] * 2049)


def test_only_sentence_transformers_folders_fit_and_their_recipe_is_read(tiny_models, tmp_path):
    assert (
        read_pooling(tiny_models[MINILM], "m").mode == "mean"
        and read_pooling(tiny_models[BGE], "m").mode == "cls"
    )
    assert (
        read_pooling(tiny_models[MINILM], "m").normalize
        and read_pooling(tiny_models[MINILM], "m").max_length == 48
    )
    check_fits("sentence-embedding", tiny_models[MINILM], "MiniLM")
    with pytest.raises(ModelError, match="has no sentence-transformers pooling"):
        check_fits("sentence-embedding", tiny_models["openai-community/gpt2"], "GPT-2")
    dense = shutil.copytree(tiny_models[MINILM], tmp_path / "dense")
    modules = json.loads((dense / "modules.json").read_text())
    modules.append({"idx": 3, "name": "3", "path": "3_Dense", "type": "sentence_transformers.models.Dense"})
    (dense / "modules.json").write_text(json.dumps(modules))
    with pytest.raises(ModelError, match="adds a Dense step after pooling"):
        check_fits("sentence-embedding", dense, "LaBSE-like")
    pooling = json.loads((dense / "1_Pooling" / "config.json").read_text())
    (dense / "modules.json").write_text(json.dumps(modules[:3]))
    (dense / "1_Pooling" / "config.json").write_text(json.dumps({**pooling, "pooling_mode_max_tokens": True}))
    with pytest.raises(ModelError, match="one at a time"):
        check_fits("sentence-embedding", dense, "two poolings")


def test_the_texts_of_one_request_run_as_one_batch_and_agree_with_sentence_transformers(runtime, tiny_models):
    import numpy as np
    from sentence_transformers import SentenceTransformer

    texts = [text for topic in TOPICS for text in topic]
    spec = TASKS["embed"]
    spec.predict(runtime, "warm up", BGE)
    before = runtime.batcher.batches
    result = spec.predict(runtime, texts, BGE)
    assert runtime.batcher.batches == before + 1  # nine texts, one padded batch
    reference = SentenceTransformer(str(tiny_models[BGE]), device="cpu").encode(texts)
    assert np.allclose(np.array(result.data["embeddings"]), reference, atol=1e-5)
    assert result.data["dimensions"] == 32 and result.data["tokens"] > len(texts)
    long = spec.predict(runtime, "hello " * 80, BGE)
    assert long.notes and "reads at most 48" in long.notes[0]


def test_pipedesk_run_embed_prints_the_vector(hub, pipedesk_home):
    done = run_cli("run", "embed", "a parcel arrived late", "--json", env=cli_env(pipedesk_home, hub))
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout)
    assert out["task"] == "embed" and len(out["result"]["embeddings"]) == 1
    assert len(out["result"]["embeddings"][0]) == out["result"]["dimensions"] == 32
