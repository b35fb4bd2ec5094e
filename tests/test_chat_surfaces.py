"""Chat and prompts from outside: ``/chat`` and ``/prompt`` through the real server and gradio_client,
``pipedesk run chat`` and ``pipedesk batch prompt`` as real subprocesses, on the tiny instruct model."""

from __future__ import annotations

import json

import pandas as pd
import pytest
from gradio_client.exceptions import AppError

from tests.support import cli_env, run_cli, tiny_chat

QWEN = tiny_chat.CHAT_IDS[0]
GREEDY = (64, 0, 0.95, -1)  # max_new_tokens, temperature, top_p, seed


def test_chat_and_prompt_apis_have_their_parameters_in_order(client):
    info = client.view_api(print_info=False, return_format="dict")["named_endpoints"]
    params = {name: [p["parameter_name"] for p in spec["parameters"]] for name, spec in info.items()}
    generation = ["max_new_tokens", "temperature", "top_p", "seed"]
    assert params["/chat"] == ["message", "history", "model", "system", *generation]
    assert params["/prompt"] == ["row", "model", "prompt", "system", "json_fields", *generation]


def test_chat_answers_returns_the_new_history_and_takes_it_back(client):
    answer, history = client.predict(tiny_chat.HELLO, [], QWEN, "", *GREEDY, api_name="/chat")
    assert answer == tiny_chat.HELLO_ANSWER
    assert history == [
        {"role": "user", "content": tiny_chat.HELLO},
        {"role": "assistant", "content": tiny_chat.HELLO_ANSWER},
    ]
    answer, history = client.predict(tiny_chat.NAME, history, "", "", *GREEDY, api_name="/chat")
    assert answer == tiny_chat.NAME_ANSWER and len(history) == 4 and history[2]["content"] == tiny_chat.NAME


def test_chat_streams_its_answer_over_the_api(client):
    job = client.submit(tiny_chat.HELLO, [], QWEN, "", *GREEDY, api_name="/chat")
    final = job.result(timeout=120)
    partials = [answer for answer, _history in job.outputs()]
    assert final[0] == tiny_chat.HELLO_ANSWER
    assert len(partials) > 2 and partials[-1] == final[0]
    assert all(final[0].startswith(part) for part in partials)


def test_out_of_range_options_are_refused_with_the_words_the_cli_uses(client, hub, pipedesk_home):
    with pytest.raises(AppError, match=r"temperature must be at most 2 \(got 3\)\."):
        client.predict(tiny_chat.HELLO, [], QWEN, "", 64, 3, 0.95, -1, api_name="/chat")
    with pytest.raises(AppError, match=r"max_new_tokens must be at most 1024 \(got 5000\)\."):
        client.predict(tiny_chat.HELLO, [], QWEN, "", 5000, 0, 0.95, -1, api_name="/chat")
    cli = run_cli("run", "chat", tiny_chat.HELLO, "--temperature", "3", env=cli_env(pipedesk_home, hub))
    assert cli.returncode == 2
    assert cli.stderr.strip() == "pipedesk: error: --temperature must be at most 2 (got 3)."
    with pytest.raises(AppError, match="history must be a list of messages"):
        client.predict(tiny_chat.HELLO, "not a list", QWEN, "", *GREEDY, api_name="/chat")


def test_prompt_api_answers_one_row_with_its_fields(client):
    row = {"id": "1", "review": tiny_chat.REVIEWS[0][0]}
    answer, fields = client.predict(
        row, QWEN, tiny_chat.PROMPT, "", "product, complaint", *GREEDY, api_name="/prompt"
    )
    assert json.loads(answer) == fields == {"product": "blender", "complaint": "broke after two days"}
    with pytest.raises(
        AppError, match=r"names \{reviews\}, but the row has no such column. Its columns are: id, review"
    ):
        client.predict(row, QWEN, "Name it: {reviews}", "", "", *GREEDY, api_name="/prompt")


def test_run_chat_prints_the_answer_takes_a_system_prompt_and_json(hub, pipedesk_home):
    env = cli_env(pipedesk_home, hub)
    plain = run_cli("run", "chat", tiny_chat.HELLO, "--temperature", "0", env=env)
    assert plain.returncode == 0, plain.stderr
    assert plain.stdout.strip() == tiny_chat.HELLO_ANSWER
    named = run_cli(
        "run",
        "chat",
        tiny_chat.NAME,
        "--system",
        tiny_chat.PIP_SYSTEM,
        "--temperature",
        "0",
        "--json",
        env=env,
    )
    assert named.returncode == 0, named.stderr
    payload = json.loads(named.stdout)
    assert payload["task"] == "chat" and payload["notes"] == []
    assert payload["result"]["answer"] == tiny_chat.PIP_ANSWER
    assert payload["result"]["history"][-1] == {"role": "assistant", "content": tiny_chat.PIP_ANSWER}


def test_batch_prompt_writes_an_answer_column_and_one_column_per_json_field(hub, pipedesk_home, tmp_path):
    source, target = tmp_path / "reviews.csv", tmp_path / "answers.csv"
    reviews = [review for review, _product, _json in tiny_chat.REVIEWS]
    pd.DataFrame({"id": [1, 2, 3, 4], "review": [*reviews, ""]}).to_csv(source, index=False)
    command = ["batch", "prompt", "-i", str(source), "-o", str(target), "--prompt", tiny_chat.PROMPT]
    out = run_cli(
        *command,
        "--json-fields",
        "product,complaint",
        "--max-new-tokens",
        "48",
        env=cli_env(pipedesk_home, hub),
    )
    assert out.returncode == 0, out.stderr
    assert "4 rows written" in out.stderr and "(1 refused, 1 with notes)" in out.stderr
    frame = pd.read_csv(target, dtype=str, keep_default_na=False, encoding="utf-8-sig")
    assert list(frame.columns) == ["id", "review", "answer", "product", "complaint", "note"]
    assert list(frame["product"]) == ["blender", "kettle", "", ""]
    assert list(frame["complaint"]) == ["broke after two days", "leaks water", "", ""]
    assert (
        frame["answer"][2] == "Sorry, I cannot tell." and "No JSON object in the answer" in frame["note"][2]
    )
    assert "is empty in this row" in frame["note"][3]
    again = run_cli(
        *command,
        "--json-fields",
        "product,complaint",
        "--max-new-tokens",
        "48",
        env=cli_env(pipedesk_home, hub),
    )
    assert again.returncode == 0 and pd.read_csv(target, dtype=str, keep_default_na=False).equals(frame), (
        "greedy by default: a rerun gives the same file"
    )


def test_batch_prompt_refuses_a_missing_column_before_the_run_and_writes_nothing(
    hub, pipedesk_home, tmp_path
):
    source, target = tmp_path / "reviews.csv", tmp_path / "answers.csv"
    pd.DataFrame({"id": [1], "review": ["It broke."], "stars": [1]}).to_csv(source, index=False)
    out = run_cli(
        "batch", "prompt", "-i", str(source), "-o", str(target), "--prompt", "Name it: {reviews}",
        env=cli_env(pipedesk_home, hub),
    )  # fmt: skip
    assert out.returncode == 2
    assert out.stderr.strip() == (
        "pipedesk: error: The prompt names {reviews}, but the file has no such column. "
        "Its columns are: id, review, stars."
    )
    assert not target.exists() and not list(tmp_path.glob("*.partial.jsonl"))
    chat = run_cli("batch", "chat", "-i", str(source), "-o", str(target), env=cli_env(pipedesk_home, hub))
    assert chat.returncode == 2 and "invalid choice" in chat.stderr
