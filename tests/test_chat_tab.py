"""The Chat tab and a prompt over a file in the Batch tab, in a real browser, driven as a person does:
type, press Send (or Ctrl+Enter), read the streamed answer, Stop, Regenerate, Clear; upload a CSV,
choose Prompt, write a prompt with a {column}, run, read the table, download the answers."""

from __future__ import annotations

import pandas as pd
import pytest

from tests.support import tiny_chat
from tests.support.pages import choose, message, new_page, panel, run_and_wait, runs_done

pytestmark = pytest.mark.browser


@pytest.fixture
def page(browser, app_server):
    context, page = new_page(browser, 1280, 1000, accept_downloads=True)
    page.goto(app_server.url)
    page.get_by_role("tab", name="Chat", exact=True).wait_for(timeout=60_000)
    yield page
    context.close()


def said(page, who: str) -> list[str]:
    """The conversation's messages of ``who`` ("user" or "bot"), as shown."""
    return [text.strip() for text in page.locator(f"#chat-history [data-testid='{who}']").all_inner_texts()]


def greedy(tab) -> None:
    """Options: temperature 0 (the same answer every time)."""
    tab.get_by_role("button", name="Options").click()
    temperature = tab.get_by_role("spinbutton", name="number input for Temperature")
    temperature.fill("0")
    temperature.press("Enter")


def test_send_read_the_answer_follow_up_with_ctrl_enter_regenerate_and_clear(page, tmp_path):
    tab = panel(page, "chat")
    greedy(tab)
    box = tab.get_by_role("textbox", name="Message")
    box.fill(tiny_chat.HELLO)
    run_and_wait(page, "chat")
    assert said(page, "user") == [tiny_chat.HELLO]
    assert said(page, "bot") == [tiny_chat.HELLO_ANSWER]
    assert box.input_value() == "", "the box is emptied for the next message"

    box.fill(tiny_chat.NAME)
    box.focus()
    run_and_wait(page, "chat", key="Control+Enter")
    assert said(page, "bot") == [tiny_chat.HELLO_ANSWER, tiny_chat.NAME_ANSWER]

    before = runs_done(page, "chat")
    tab.get_by_role("button", name="Regenerate", exact=True).click()
    page.wait_for_function(
        "n => Number(document.querySelector('#message-chat [data-runs]')?.dataset.runs || 0) > n",
        arg=before,
        timeout=60_000,
    )
    page.locator("#run-chat").wait_for(state="visible", timeout=60_000)
    assert said(page, "user") == [tiny_chat.HELLO, tiny_chat.NAME], "the last question is asked again, once"
    assert said(page, "bot") == [tiny_chat.HELLO_ANSWER, tiny_chat.NAME_ANSWER]
    page.screenshot(path=str(tmp_path / "chat.png"))

    page.locator("#clear-chat").click()
    page.wait_for_function("() => !document.querySelector('#chat-history [data-testid=\"user\"]')")
    assert said(page, "bot") == [] and message(page, "chat") == ""
    assert page.console_errors == []


def test_a_system_prompt_changes_the_answer(page):
    tab = panel(page, "chat")
    greedy(tab)
    tab.get_by_role("textbox", name="System prompt").fill(tiny_chat.PIP_SYSTEM)
    tab.get_by_role("textbox", name="Message").fill(tiny_chat.NAME)
    run_and_wait(page, "chat")
    assert said(page, "bot") == [tiny_chat.PIP_ANSWER]


def test_refusals_are_shown_in_words_and_the_message_is_given_back(page):
    tab = panel(page, "chat")
    tab.get_by_role("button", name="Regenerate", exact=True).click()
    page.get_by_text("There is nothing to regenerate yet").wait_for(timeout=20_000)
    long = "word " * 3000
    tab.get_by_role("textbox", name="Message").fill(long)
    run_and_wait(page, "chat")
    assert "The message is too long" in message(page, "chat")
    assert page.locator("#message-chat [role=alert]").count() == 1
    assert said(page, "user") == [], "a refused question is not left in the conversation"
    assert tab.get_by_role("textbox", name="Message").input_value().strip() == long.strip(), (
        "the text is given back to fix"
    )
    tab.get_by_role("textbox", name="Message").fill(tiny_chat.HELLO)
    run_and_wait(page, "chat")
    assert message(page, "chat") == "" and len(said(page, "bot")) == 1


def test_stop_ends_an_answer_and_keeps_what_was_written(page, tiny_models, tmp_path):
    endless = tiny_chat.endless_chat(tiny_models[tiny_chat.CHAT_IDS[0]], tmp_path / "endless-chat")
    tab = panel(page, "chat")
    tab.get_by_label("Model").first.fill(str(endless))
    tab.get_by_label("Model").first.press("Enter")
    tab.get_by_role("textbox", name="Message").fill(tiny_chat.HELLO)
    page.locator("#run-chat").click()
    page.locator("#stop-chat").wait_for(state="visible", timeout=20_000)
    page.wait_for_function(
        "() => (document.querySelector('#chat-history [data-testid=\"bot\"]')?.innerText || '').length > 15",
        timeout=60_000,
    )
    page.locator("#stop-chat").click()
    page.locator("#run-chat").wait_for(state="visible", timeout=10_000)
    assert "Stopped" in message(page, "chat")
    kept = said(page, "bot")
    assert len(kept) == 1 and len(kept[0]) > 15
    page.wait_for_timeout(1_500)
    assert said(page, "bot") == kept, "nothing more is written after Stop"


def _batch(page, source) -> None:
    page.get_by_role("tab", name="Batch", exact=True).click()
    page.locator("#batch-file input[type=file]").set_input_files(str(source))
    page.wait_for_function(
        "() => /\\d+ rows/.test(document.querySelector('#batch-info').textContent)", timeout=30_000
    )
    choose(page, page.locator("#batch-task input"), "Prompt")
    page.locator("#batch-options-prompt").wait_for(state="visible", timeout=10_000)


def test_a_prompt_over_every_row_fills_json_columns_and_downloads(page, tmp_path):
    source = tmp_path / "reviews.csv"
    reviews = [review for review, _product, _json in tiny_chat.REVIEWS]
    pd.DataFrame({"id": [1, 2, 3], "review": reviews}).to_csv(source, index=False)
    _batch(page, source)
    assert not page.locator("#batch-column").is_visible(), "a prompt names its columns itself"
    options = page.locator("#batch-options-prompt")
    options.get_by_role("textbox", name="Prompt {column}").fill(tiny_chat.PROMPT)
    options.get_by_role("textbox", name="JSON fields").fill("product, complaint")
    page.locator("#batch-run").click()
    page.wait_for_function(
        "() => document.querySelector('#batch-progress').textContent.includes('finished')", timeout=120_000
    )
    table = page.locator("#batch-results").inner_text()
    assert "blender" in table and "kettle" in table and "No JSON object" in table
    page.screenshot(path=str(tmp_path / "batch-prompt.png"), full_page=True)
    with page.expect_download(timeout=30_000) as download:
        page.locator("#batch-download").click()
    saved = tmp_path / "answers.csv"
    download.value.save_as(saved)
    frame = pd.read_csv(saved, dtype=str, keep_default_na=False, encoding="utf-8-sig")
    assert list(frame.columns) == ["id", "review", "answer", "product", "complaint", "note"]
    assert list(frame["product"]) == ["blender", "kettle", ""]
    assert page.console_errors == []


def test_a_prompt_naming_a_missing_column_is_refused_before_the_run(page, tmp_path):
    source = tmp_path / "reviews.csv"
    pd.DataFrame({"id": [1], "review": ["It broke."]}).to_csv(source, index=False)
    _batch(page, source)
    page.locator("#batch-options-prompt").get_by_role("textbox", name="Prompt {column}").fill(
        "Name the product: {reviews}"
    )
    page.locator("#batch-run").click()
    page.get_by_text("Its columns are: id, review.").first.wait_for(timeout=30_000)
    assert "finished" not in page.locator("#batch-progress").text_content()
