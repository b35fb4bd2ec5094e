"""Every task tab driven in a real browser as a person does: type or upload, choose a model from
the list, press Run (or Ctrl+Enter), read the answer; errors stay in words; Stop ends a generation."""

from __future__ import annotations

import re

import pytest

from tests.support.pages import (
    choose_model,
    message,
    open_app,
    output_text,
    panel,
    run_and_wait,
    start_writing,
)

pytestmark = pytest.mark.browser

ARTICLE = (
    "The town council met on Monday and agreed a new budget for schools and roads. "
    "Teachers welcomed the plan, while some shop owners asked for more parking. "
) * 4


@pytest.fixture
def page(browser, app_server):
    context, page = open_app(browser, app_server.url)
    yield page
    context.close()


def test_sentiment_with_a_chosen_model_shows_every_class(page):
    tab = panel(page, "sentiment")
    tab.get_by_label("Text").first.fill("I love this product!")
    choose_model(page, tab, re.compile(r"^BERT multilingual \(1-5 stars\) — "))
    run_and_wait(page, "sentiment")
    label = tab.locator("[data-testid='label-output-value']").first
    assert "star" in label.text_content()
    assert tab.locator("[data-testid='label-output-value']").count() >= 1
    assert "1-5 stars" in page.locator("#status-line").text_content()
    # The list now says the model is on disk.
    assert "BERT multilingual (1-5 stars) — ready" in tab.get_by_label("Model").first.input_value()
    assert message(page, "sentiment") == ""
    assert page.console_errors == []


def test_generate_continues_the_prompt(page):
    tab = panel(page, "generate")
    tab.get_by_label("Prompt").fill("Once upon a time")
    run_and_wait(page, "generate")
    assert output_text(tab, "Generated text").startswith("Once upon a time")


def test_entities_are_highlighted_in_the_text_as_typed(page):
    tab = panel(page, "ner")
    tab.get_by_label("Text").first.fill("My name is   Clara and I live in\n\nBerkeley, California.")
    run_and_wait(page, "ner")
    typed = "My name is   Clara and I live in\n\nBerkeley, California."
    clara = tab.get_by_role("grid").first.get_by_role("row").filter(has_text="Clara").inner_text().split()
    assert clara[:2] == ["Clara", "PER"]
    assert typed[int(clara[3]) : int(clara[4])] == "Clara"  # offsets into the text as typed
    highlighted = tab.locator("div.block").filter(has_text="Entities in the text").first.inner_text()
    assert "Clara PER" in highlighted and "Berkeley LOC" in highlighted


def test_classify_an_uploaded_image_and_a_text(page, tmp_path):
    from PIL import Image

    picture = tmp_path / "sea.png"
    Image.new("RGB", (64, 48), (20, 60, 200)).save(picture)
    tab = panel(page, "classify")
    tab.get_by_label("Image", exact=True).first.check()  # the "Input type" radio
    tab.locator("input[type=file]").set_input_files(str(picture))
    tab.locator("img").first.wait_for(timeout=20_000)  # the upload shows the picture
    run_and_wait(page, "classify")
    assert tab.locator("[data-testid='label-output-value']").first.text_content().strip()
    assert message(page, "classify") == ""
    tab.get_by_label("Text", exact=True).first.check()
    tab.get_by_role("textbox", name="Text").fill("What a wonderful, sunny day!")
    run_and_wait(page, "classify")
    assert tab.locator("[data-testid='label-output-value']").first.text_content().strip() in {
        "POSITIVE",
        "NEGATIVE",
    }


def test_an_image_too_large_to_decode_is_refused_in_words_before_it_is_decoded(page, tmp_path):
    from PIL import Image

    thin = tmp_path / "thin.png"  # 75 KB, 39 megapixels, one pixel wide
    Image.new("1", (1, 39_000_000)).save(thin)
    tab = panel(page, "classify")
    tab.get_by_label("Image", exact=True).first.check()
    tab.locator("input[type=file]").set_input_files(str(thin))
    page.wait_for_timeout(1_000)
    run_and_wait(page, "classify", timeout=20_000)
    assert "too large to decode safely" in message(page, "classify")
    assert "16,384 pixels a side" in message(page, "classify")


def test_translate_with_another_language_pair_and_summarize(page):
    tab = panel(page, "translate")
    tab.get_by_label("Text").first.fill("Hello, how are you today?")
    choose_model(page, tab, re.compile(r"^English → German — "))
    run_and_wait(page, "translate")
    assert output_text(tab, "Translation").strip()
    tab = panel(page, "summarize")
    tab.get_by_label("Text").first.fill(ARTICLE)
    run_and_wait(page, "summarize")
    assert output_text(tab, "Summary").strip()


def test_an_error_stays_in_words_next_to_the_output_until_the_next_run(page):
    tab = panel(page, "sentiment")
    tab.get_by_label("Text").first.fill("ok")
    run_and_wait(page, "sentiment")
    assert "too short" in message(page, "sentiment")
    assert page.locator("#message-sentiment [role=alert]").count() == 1
    page.wait_for_timeout(3_000)  # pop-ups come and go; these words stay
    assert "too short" in message(page, "sentiment")
    tab.get_by_label("Text").first.fill("I love this product!")
    run_and_wait(page, "sentiment")
    assert message(page, "sentiment") == ""
    assert "POSITIVE" in tab.locator("[data-testid='label-output-value']").first.text_content()


def test_ctrl_enter_in_the_text_box_runs_the_tab(page):
    tab = panel(page, "sentiment")
    box = tab.get_by_label("Text").first
    box.fill("I love this product!")
    box.focus()
    run_and_wait(page, "sentiment", key="Control+Enter")
    assert "POSITIVE" in tab.locator("[data-testid='label-output-value']").first.text_content()


def endless_gpt2(tiny_models, folder):
    """A GPT-2 that keeps writing until told to stop: the tiny model's tokenizer and vocabulary, eight
    wider random layers (slow enough per token that a person can press Stop mid-way on any CPU)
    and no end-of-text token."""
    import shutil

    import torch
    from transformers import GPT2Config, GPT2LMHeadModel

    source = tiny_models["openai-community/gpt2"]
    config = GPT2Config.from_pretrained(source)
    config.update({"n_layer": 8, "n_embd": 512, "n_head": 8, "eos_token_id": None, "bos_token_id": None})
    torch.manual_seed(0)
    model = GPT2LMHeadModel(config)
    model.generation_config.eos_token_id = None
    model.save_pretrained(folder)
    for name in ("tokenizer.json", "tokenizer_config.json"):
        shutil.copy(source / name, folder / name)
    return folder


def test_stop_ends_a_generation_and_the_app_answers_at_once(page, tiny_models, tmp_path):
    model = endless_gpt2(tiny_models, tmp_path / "endless-gpt2")
    tab = panel(page, "generate")
    start_writing(page, tab, "Once upon a time", str(model), 500)
    page.locator("#stop-generate").click()
    page.locator("#run-generate").wait_for(state="visible", timeout=10_000)
    assert "Stopped" in message(page, "generate")
    stopped_at = len(output_text(tab, "Generated text"))
    # The device is free again: another tab answers at once, and the text did not go on growing.
    sentiment = panel(page, "sentiment")
    sentiment.get_by_label("Text").first.fill("I love this product!")
    run_and_wait(page, "sentiment", timeout=20_000)
    assert "POSITIVE" in sentiment.locator("[data-testid='label-output-value']").first.text_content()
    tab = panel(page, "generate")
    assert len(output_text(tab, "Generated text")) == stopped_at


def test_a_slider_takes_the_highest_value_the_cli_accepts(page, tmp_path):
    """Generate's Max new tokens goes to 1024 as ``pipedesk run generate --max-new-tokens`` does (the
    slider stopped at 512 before), and the typed value is the one the slider holds."""
    tab = panel(page, "generate")
    tab.get_by_role("button", name="Options").click()
    tokens = tab.get_by_role("spinbutton", name="number input for Max new tokens")
    bar = tab.get_by_role("slider", name="range slider for Max new tokens")
    assert (bar.get_attribute("min"), bar.get_attribute("max")) == ("1", "1024")
    for _attempt in range(3):  # typed, then Tab out of the box as a person does; typed again if lost
        tokens.fill("1024")
        tokens.press("Enter")
        tokens.press("Tab")
        try:
            page.wait_for_function(
                "() => document.querySelector(\"input[aria-label='range slider for Max new tokens']\").value === '1024'",
                timeout=20_000,
            )
            break
        except Exception:
            continue
    assert bar.input_value() == "1024"
    page.screenshot(path=str(tmp_path / "generate-options.png"))
    assert tokens.input_value() == "1024"
    assert page.console_errors == []
