"""The window's finish (issue #17, items 1, 2, 6 and 8) in a real browser: errors stay in every
tab's message box (no pop-up, no success words beside them), files the app does not read are refused
in the CLI's words with nothing stale left behind, one progress display per job, and the Models tab
says sizes before download and acts only on what the person chose."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from desktop.files.audio import not_audio
from desktop.files.images import not_an_image
from tests.support.pages import choose, message, open_app, panel, run_and_wait
from tests.support.tiny_models import SST2, WHISPER

pytestmark = pytest.mark.browser

#: Gradio's pop-ups (toasts): none of the app's words should live there.
TOASTS = ".toast-body"
LABEL = "[data-testid='label-output-value']"


@pytest.fixture
def page(browser, app_server):
    context, page = open_app(browser, app_server.url)
    yield page
    context.close()


def _alert(page, box: str, words: str) -> str:
    """Wait for the error ``words`` in the message box ``box``; its whole text."""
    page.locator(f"{box} [role=alert]").filter(has_text=words).first.wait_for(timeout=30_000)
    return page.locator(box).inner_text().strip()


def test_a_models_tab_error_stays_in_its_box_in_place_of_the_last_words(page, tmp_path):
    page.get_by_role("tab", name="Models", exact=True).click()
    page.locator("#models-table").wait_for(timeout=20_000)
    assert page.locator("#models-choice input").input_value() == ""  # nothing preselected
    page.locator("#models-verify").click()
    assert _alert(page, "#models-result", "Choose a model") == "Choose a model in the list first."

    choose(page, page.locator("#models-choice input"), SST2)
    page.locator("#models-verify").click()
    page.locator("#models-result [role=status]").first.wait_for(timeout=30_000)
    assert page.locator("#models-result [role=alert]").count() == 0  # the old error went

    page.get_by_role("button", name=re.compile("^Add a Hub model")).click()
    page.locator("#models-hub-id input, #models-hub-id textarea").first.fill("not a model id")
    page.locator("#models-add").click()
    words = _alert(page, "#models-result", "is not a Hub model id")
    assert (
        words == "'not a model id' is not a Hub model id: it looks like owner/name."
    )  # no success beside it
    page.wait_for_timeout(10_500)  # a pop-up would have gone by now: the box keeps the words
    assert page.locator("#models-result").inner_text().strip() == words
    assert page.locator("#models-choice input").input_value() == SST2  # the person's pick stays
    assert page.locator(TOASTS).count() == 0
    page.screenshot(path=str(tmp_path / "models-error.png"))


def test_a_batch_error_stays_in_its_box_until_the_next_action(page, tmp_path):
    page.get_by_role("tab", name="Batch", exact=True).click()
    bad = tmp_path / "broken.csv"
    bad.write_bytes(b'id,text\n1,"never closed\n2,more\n')
    page.locator("#batch-file input[type=file]").set_input_files(str(bad))
    assert "is never closed" in _alert(page, "#batch-message", "is never closed")
    page.locator("#batch-run").click()
    assert "Upload a file first" in _alert(page, "#batch-message", "Upload a file first")
    assert "is never closed" not in page.locator("#batch-message").inner_text()
    page.screenshot(path=str(tmp_path / "batch-error.png"), full_page=True)

    pdf = tmp_path / "report.pdf"
    pdf.write_bytes(b"%PDF-1.4\n%%EOF\n")
    page.locator("#batch-file input[type=file]").set_input_files(str(pdf))  # not Gradio's MIME list:
    assert _alert(page, "#batch-message", "report.pdf").startswith("report.pdf is none of these: hand in")

    good = tmp_path / "reviews.csv"
    good.write_text('text\nI love it\n"Awful, broken on arrival"\n', encoding="utf-8")
    page.locator("#batch-file input[type=file]").set_input_files(str(good))
    page.locator("#batch-info").filter(has_text="2 rows").wait_for(timeout=30_000)
    assert page.locator("#batch-message").inner_text().strip() == ""  # the next action cleared it
    assert page.locator(TOASTS).count() == 0


def test_a_text_file_in_transcribe_is_refused_in_the_cli_words(page, tmp_path):
    notes = tmp_path / "notes.txt"
    notes.write_text("not a recording\n", encoding="utf-8")
    tab = panel(page, "transcribe")
    tab.locator("input[type=file]").first.set_input_files(str(notes))
    assert _alert(page, "#message-transcribe", "notes.txt") == str(not_audio("notes.txt"))
    assert "audio/aac" not in page.locator("body").inner_text()  # not Gradio's list of MIME types
    run_and_wait(page, "transcribe")  # the message box empties, then says what is missing
    # Dropped on the box rather than picked: the same words.
    tab.locator(".pd-upload").first.evaluate(
        """(box) => {
          const files = new DataTransfer();
          files.items.add(new File(["not a recording"], "dropped.txt", {type: "text/plain"}));
          box.querySelector("button, div").dispatchEvent(
            new DragEvent("drop", {dataTransfer: files, bubbles: true, cancelable: true}));
        }"""
    )
    assert _alert(page, "#message-transcribe", "dropped.txt") == str(not_audio("dropped.txt"))
    assert page.locator(TOASTS).count() == 0
    page.screenshot(path=str(tmp_path / "transcribe-refused.png"))


def test_one_progress_display_and_one_error_mark_per_transcription(page, tmp_path):
    tab = panel(page, "transcribe")
    run_and_wait(page, "transcribe")  # no recording given
    assert "Please choose a recording" in message(page, "transcribe")
    marks = tab.locator(".error").filter(has_text=re.compile(r"^\s*Error\s*$"))
    assert marks.count() == 1  # not one per output (transcript, segments, files)
    page.screenshot(path=str(tmp_path / "transcribe-error.png"))


def test_a_pdf_in_classify_is_refused_the_photo_and_its_result_go(page, tmp_path):
    from PIL import Image

    photo = tmp_path / "sea.png"
    Image.new("RGB", (64, 48), (20, 60, 200)).save(photo)
    pdf = tmp_path / "report.pdf"
    pdf.write_bytes(b"%PDF-1.4\n1 0 obj << >> endobj\ntrailer << >>\n%%EOF\n")
    tab = panel(page, "classify")
    tab.get_by_label("Image", exact=True).first.check()
    tab.locator("input[type=file]").first.set_input_files(str(photo))
    tab.locator("img").first.wait_for(timeout=20_000)
    run_and_wait(page, "classify")
    assert tab.locator(LABEL).first.text_content().strip()

    tab.locator("input[type=file]").first.set_input_files(str(pdf))
    assert _alert(page, "#message-classify", "report.pdf") == str(not_an_image("report.pdf"))
    page.screenshot(path=str(tmp_path / "classify-refused.png"))
    assert tab.locator(f"{LABEL}:visible").count() == 0  # the photo's result went with it
    run_and_wait(page, "classify")  # the old photo is not classified silently
    assert "Please choose an image" in message(page, "classify")
    assert page.locator(TOASTS).count() == 0


def test_switching_classify_to_image_clears_the_text_result(page):
    tab = panel(page, "classify")
    tab.get_by_role("textbox", name="Text").fill("What a wonderful, sunny day!")
    run_and_wait(page, "classify")
    assert tab.locator(LABEL).first.text_content().strip()
    tab.get_by_label("Image", exact=True).first.check()
    page.wait_for_function(
        "() => ![...document.querySelectorAll(\"[data-testid='label-output-value']\")]"
        ".some((label) => label.offsetParent !== null && label.textContent.trim())",
        timeout=10_000,
    )


def test_import_hints_name_what_each_task_takes(tiny_models: dict[str, Path]):
    from desktop.cli.models import run_hint

    assert (
        run_hint("transcribe", "meeting", tiny_models[WHISPER])
        == "pipedesk run transcribe FILE --model 'meeting'"
    )
    assert (
        run_hint("sentiment", "office", tiny_models[SST2]) == "pipedesk run sentiment TEXT --model 'office'"
    )
    assert run_hint("classify", "office", tiny_models[SST2]) == "pipedesk run classify TEXT --model 'office'"


def test_a_refused_password_stays_in_words_in_the_sharing_tab(page, tmp_path):
    page.get_by_role("tab", name="Sharing", exact=True).click()
    page.get_by_role("button", name=re.compile("^Choose your own password")).click()
    page.get_by_label("New password").fill("abc")
    page.get_by_role("button", name="Use this password").click()
    state = page.locator("#lan-state")
    state.filter(has_text="at least").first.wait_for(timeout=20_000)
    page.wait_for_timeout(10_500)  # a pop-up would have gone by now
    assert "at least" in state.inner_text() and page.locator(TOASTS).count() == 0
    assert page.get_by_label("New password").input_value() == "abc"  # kept, to be corrected
    page.screenshot(path=str(tmp_path / "sharing-password.png"))
