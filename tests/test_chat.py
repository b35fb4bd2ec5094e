"""The chat core and the prompt task: pure rules first (placeholders, JSON in answers, history,
what fits the context, option limits), then the tiny instruct model through the real runtime."""

from __future__ import annotations

import pytest

from desktop.errors import ModelError, UserError
from desktop.tasks import TASKS, chat, prompt
from tests.support import tiny_chat

CHAT, PROMPT = TASKS["chat"], TASKS["prompt"]
GREEDY = {"max_new_tokens": 64, "temperature": 0.0, "top_p": 0.95, "seed": -1}


def ask(runtime, message, history=(), system="", **options):
    settings = {**GREEDY, **options}
    args = [settings[name] for name in ("max_new_tokens", "temperature", "top_p", "seed")]
    return CHAT.predict(runtime, message, list(history), None, system, *args)


# --- placeholders --------------------------------------------------------------------------------


def test_placeholders_are_filled_from_the_row_and_double_braces_stay_braces():
    row = {"Review": "It broke.", "id": "7"}
    template = 'Review {review} (#{ id }): answer as {{"ok": true}}'
    assert prompt.placeholders(template) == ["review", "id"]
    assert prompt.fill(template, row) == 'Review It broke. (#7): answer as {"ok": true}'


@pytest.mark.parametrize("template", ["Name it: {review", "Name it: review}", "Name it: {}"])
def test_a_lone_brace_or_an_empty_placeholder_is_refused_in_words(template):
    with pytest.raises(UserError, match=r"\{\{ or \}\}|write a column's name"):
        prompt.placeholders(template)


def test_a_placeholder_naming_a_missing_column_is_refused_listing_the_columns():
    with pytest.raises(UserError) as refused:
        prompt.check_columns("Name the product: {reviews} {stars}", ["id", "review", "stars"])
    assert str(refused.value) == (
        "The prompt names {reviews}, but the file has no such column. Its columns are: id, review, stars."
    )


def test_the_prompt_options_are_checked_before_any_model():
    with pytest.raises(UserError, match="Write the prompt"):
        PROMPT.check_options({"prompt": "  "})
    with pytest.raises(UserError, match="names no column"):
        PROMPT.check_options({"prompt": "Say hello"})
    with pytest.raises(UserError, match="writes its own 'note' column"):
        PROMPT.check_options({"prompt": "{text}", "json_fields": "product, note"})
    with pytest.raises(UserError, match="named twice"):
        PROMPT.check_options({"prompt": "{text}", "json_fields": "product, Product"})
    assert PROMPT.result_columns(PROMPT.check_options({"prompt": "{text}", "json_fields": "a,\n b"})) == (
        "answer",
        "a",
        "b",
    )


# --- JSON in answers ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "answer",
    [
        '{"product": "blender", "complaint": null}',
        'Sure!\n```json\n{"product": "blender", "complaint": null}\n```\nAnything else?',
        'The JSON is {"product": "blender", "complaint": null} as asked.',
        '```\n{"Product": "blender", "COMPLAINT": null}\n```',
    ],
)
def test_a_json_object_is_found_plain_fenced_or_in_prose(answer):
    values, notes = prompt.read_answer(answer, ["product", "complaint"])
    assert values == {"product": "blender", "complaint": None} and notes == []


def test_an_answer_without_a_json_object_keeps_its_fields_empty_with_a_note():
    assert prompt.extract_json('["a list", "not an object"]') is None
    values, notes = prompt.read_answer("Sorry, I cannot tell {exactly}.", ["product"])
    assert values == {"product": None} and notes == [prompt.NOT_JSON_NOTE]
    values, notes = prompt.read_answer('{"product": ["a", "b"]}', ["product", "complaint"])
    assert values == {"product": '["a", "b"]', "complaint": None}
    assert notes == ['The answer\'s JSON has no "complaint".']


# --- history and context ---------------------------------------------------------------------------


def test_history_from_the_page_pairs_or_messages_becomes_plain_messages():
    page = [
        {"role": "user", "content": [{"type": "text", "text": "Hi"}], "metadata": None},
        {"role": "assistant", "content": [{"type": "text", "text": "Hello"}]},
    ]
    plain = [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello"}]
    assert chat.clean_history(page) == plain
    assert chat.clean_history([["Hi", "Hello"]]) == plain
    with pytest.raises(UserError, match="system option"):
        chat.clean_history([{"role": "system", "content": "Be brief."}])
    with pytest.raises(UserError, match="'robot'"):
        chat.clean_history([{"role": "robot", "content": "beep"}])
    assert chat.regenerate([*plain, {"role": "user", "content": "Again?"}]) == ("Again?", plain)
    assert chat.regenerate(plain) == ("Hi", [])
    with pytest.raises(UserError, match="nothing to regenerate"):
        chat.regenerate([])


def test_history_that_does_not_fit_is_dropped_from_the_oldest_turns_keeping_system_and_message():
    def words(messages):
        return sum(len(m["content"].split()) for m in messages)

    history = []
    for turn in range(4):
        history += [
            {"role": "user", "content": f"question {turn} " + "x " * 8},
            {"role": "assistant", "content": f"answer {turn} " + "y " * 8},
        ]
    messages = chat.conversation("be brief", history, "the new message")
    kept, dropped = chat.fit_messages(messages, words, room=50)
    assert dropped == 4 and kept[0]["content"] == "be brief" and kept[-1]["content"] == "the new message"
    assert kept[1]["content"].startswith("question 2") and len(kept) == 6
    assert chat.fit_messages(messages, words, room=1000) == (messages, 0)
    with pytest.raises(UserError, match=r"too long: with the system prompt it takes 5 tokens, and 4 fit"):
        chat.fit_messages(messages, words, room=4)


# --- limits: the same in the page, the API and the CLI ------------------------------------------------


SLIDERS = [
    (spec.id, option) for spec in TASKS.values() for option in spec.options if option.widget[0] == "slider"
]


@pytest.mark.parametrize(
    ("task", "option"), SLIDERS, ids=[f"{task}-{option.name}" for task, option in SLIDERS]
)
def test_every_slider_spans_exactly_the_range_the_cli_accepts(task, option):
    """The tab's slider (as the tab builds it) goes from the lowest value ``pipedesk run`` accepts to
    the highest, its steps reach both ends, and one step beyond either end is refused in words."""
    from desktop.cli import build_parser
    from desktop.ui.widgets import option_widget

    shown = option_widget(option)
    assert (shown.minimum, shown.maximum, shown.value) == (option.minimum, option.maximum, option.default)
    steps = (shown.maximum - shown.minimum) / shown.step
    assert steps == pytest.approx(round(steps))
    parser = build_parser()
    for end in (option.minimum, option.maximum):
        args = parser.parse_args(["run", task, "x", option.flag, f"{end:g}"])
        assert option.check(getattr(args, option.name), option.flag) == pytest.approx(end)
    for beyond in (option.minimum - shown.step, option.maximum + shown.step):
        args = parser.parse_args(["run", task, "x", option.flag, f"{beyond:g}"])
        with pytest.raises(UserError, match=f"^{option.flag} must be at"):
            option.check(getattr(args, option.name), option.flag)


def test_a_slider_that_would_not_reach_the_options_range_is_refused_where_it_is_defined():
    from desktop.tasks.spec import Option, slider

    with pytest.raises(ValueError, match="minimum and maximum"):
        Option("n", 1, "", int, slider("N"))
    with pytest.raises(ValueError, match="reach both ends"):
        Option("p", 0.95, "", float, slider("P", 0.05), 0.01, 1.0)


def test_out_of_range_values_are_refused_in_words_never_clamped():
    with pytest.raises(UserError, match=r"^temperature must be at most 2 \(got 3\)\.$"):
        CHAT.check_options({"temperature": 3})
    with pytest.raises(UserError, match=r"^--max-new-tokens must be at most 1024 \(got 5000\)\.$"):
        CHAT.options[1].check(5000, "--max-new-tokens")
    with pytest.raises(UserError, match="top_p must be at least 0.05"):
        PROMPT.check_options({"prompt": "{text}", "top_p": 0.01})


# --- through the runtime, on the tiny instruct model -----------------------------------------------------


def test_a_known_message_gets_its_known_answer_and_the_new_history(runtime):
    result = ask(runtime, tiny_chat.HELLO)
    assert result.text == tiny_chat.HELLO_ANSWER
    assert result.data["history"] == [
        {"role": "user", "content": tiny_chat.HELLO},
        {"role": "assistant", "content": tiny_chat.HELLO_ANSWER},
    ]
    assert ask(runtime, tiny_chat.NAME).text == tiny_chat.NAME_ANSWER
    assert ask(runtime, tiny_chat.NAME, system=tiny_chat.PIP_SYSTEM).text == tiny_chat.PIP_ANSWER


def test_tokens_stream_and_the_last_partial_is_the_answer(runtime):
    parts = list(CHAT.stream(runtime, tiny_chat.HELLO, [], None, "", 64, 0.0, 0.95, -1))
    assert len(parts) > 3, "the answer arrives token by token"
    assert [p.text for p in parts] == sorted((p.text for p in parts), key=len)
    assert parts[-1].text == tiny_chat.HELLO_ANSWER


def test_a_long_conversation_keeps_working_with_a_note_and_a_too_long_message_is_refused(runtime):
    history = [["Tell me everything. " * 40, "Here is a long answer. " * 40]] * 3
    result = ask(runtime, tiny_chat.HELLO, history, max_new_tokens=200)
    assert result.text == tiny_chat.HELLO_ANSWER
    assert "oldest 6 messages were left out" in result.notes[0]
    assert len(result.data["history"]) == 8, "the history the person sees keeps every turn"
    with pytest.raises(UserError, match="The message is too long") as refused:
        ask(runtime, "word " * 2000)
    assert "512 tokens in all, 64 of them kept for the answer" in str(refused.value)


def test_a_model_without_a_chat_template_is_refused_and_pointed_to_generate(runtime):
    with pytest.raises(ModelError) as refused:
        CHAT.predict(runtime, "Hello", [], "openai-community/gpt2")
    assert "has no chat template" in str(refused.value) and "Generate tab" in str(refused.value)


def test_a_task_that_reads_rows_gets_each_row_as_a_dict_and_the_others_one_column():
    from desktop.batch.rows import file_values
    from desktop.files.table import Table

    table = Table("r.csv", "csv", ["id", "review"], [["1", "It broke."], ["2"]])
    assert file_values(table, PROMPT, None) == [{"id": "1", "review": "It broke."}, {"id": "2", "review": ""}]
    assert file_values(table, TASKS["sentiment"], "review") == ["It broke.", ""]
    assert PROMPT.reads_rows and not TASKS["sentiment"].reads_rows
