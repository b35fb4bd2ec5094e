"""The Models tab and first use of a task, in a real browser against the real app and a local Hub.

The app here has a runtime whose ModelStore follows the settings, so every test
starts with the empty PIPEDESK_HOME conftest gives it: the first use is really
a first use. Its Hub is throttled so the progress bar can be seen moving.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from desktop import settings
from desktop.engine.start import open_door
from desktop.models import ModelStore
from desktop.tasks import TASKS
from tests.support.hub_server import HubServer
from tests.support.tiny_models import GPT2, SST2, STARS

pytestmark = pytest.mark.browser

STARS_LABEL = "BERT multilingual (1-5 stars)"


@pytest.fixture(scope="module")
def slow_hub(tiny_models: dict[str, Path]) -> Iterator[HubServer]:
    with HubServer(tiny_models) as server, pytest.MonkeyPatch.context() as patch:
        patch.setenv("HF_ENDPOINT", server.url)
        server.throttle_bytes_per_s, server.chunk_size = 100_000, 16_384  # about 2 s a model
        yield server


@pytest.fixture(scope="module")
def models_app(slow_hub: HubServer):
    from desktop import server
    from desktop.ui.app import build_app

    running = server.start(build_app(open_door("cpu")))
    yield running
    running.stop()


@pytest.fixture
def page(browser, models_app):
    context = browser.new_context(viewport={"width": 1280, "height": 1000})
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.on("dialog", lambda dialog: dialog.accept())  # "Delete ...?" confirmations
    page.goto(models_app.url)
    page.get_by_role("tab", name="Models", exact=True).wait_for(timeout=60_000)
    page.page_errors = errors  # type: ignore[attr-defined]
    yield page
    context.close()


def _open_models_tab(page) -> None:
    page.get_by_role("tab", name="Models", exact=True).click()
    _row(page, SST2).wait_for(timeout=20_000)


def _row(page, model_id: str, timeout: float = 30_000):
    """The table row of ``model_id``, scrolled into view as a person would: the table draws only
    the rows in its viewport, and the list of models is longer than it. Scrolls down, then back up."""
    row = page.locator("#models-table .virtual-row", has_text=model_id).first
    deadline = time.monotonic() + timeout / 1000
    page.locator("#models-table").first.hover()
    steps = 0
    while not row.count():
        if time.monotonic() > deadline:
            raise AssertionError(f"no row for {model_id} in the models table")
        page.mouse.wheel(0, 250 if steps < 20 else -250)
        steps = (steps + 1) % 40
        page.wait_for_timeout(150)
    return row


def _choose(page, model_id: str) -> None:
    _row(page, model_id).locator("[role=gridcell]").first.click()
    page.wait_for_function(
        "(id) => document.querySelector('#models-choice input')?.value === id", arg=model_id, timeout=10_000
    )


def _wait_text(page, selector: str, pattern: str, timeout: float = 30_000) -> str:
    locator = page.locator(selector)
    locator.filter(has_text=re.compile(pattern)).first.wait_for(timeout=timeout)
    return locator.text_content() or ""


def test_first_use_of_a_task_shows_the_download_and_its_progress_then_the_result(page):
    page.get_by_label("Text").first.fill("I love this product!")
    page.locator("#run-sentiment").click()
    page.get_by_text("Downloading DistilBERT (SST-2, English): 4 files, 200 KB").first.wait_for(
        timeout=20_000
    )
    page.get_by_text(re.compile(r"KB of 200 KB · [\d.]+ KB/s")).first.wait_for(timeout=20_000)
    page.wait_for_function(
        "() => document.querySelector(\"[data-testid='label-output-value']\")?.textContent.includes('POSITIVE')",
        timeout=60_000,
    )
    assert ModelStore().status(TASKS["sentiment"].default_model) == "ready"
    assert page.page_errors == []


def test_the_manager_lists_downloads_with_progress_verifies_cancels_and_deletes(page, slow_hub):
    _open_models_tab(page)
    assert "not downloaded" in _row(page, STARS).text_content()
    assert "free on this disk" in page.locator("#models-summary").text_content()

    _choose(page, STARS)
    page.locator("#models-download").click()
    page.get_by_text(re.compile(r"Downloading BERT multilingual .* KB of \d+ KB")).first.wait_for(
        timeout=20_000
    )
    _wait_text(page, "#models-result", "is ready")
    assert re.search(r"ready\s+201 KB\s+Sentiment\s+just now", _row(page, STARS).text_content())

    page.locator("#models-verify").click()
    _wait_text(page, "#models-result", "every file is intact")

    page.locator("#models-delete").click()
    _wait_text(page, "#models-result", "Deleted")
    assert "not downloaded" in _row(page, STARS).text_content()
    assert not ModelStore().storage(TASKS["sentiment"].alternatives[0]).exists()

    gpt2 = TASKS["generate"].default_model.repo
    _choose(page, gpt2)
    page.locator("#models-download").click()
    page.get_by_text(re.compile(r"Downloading GPT-2 .* KB of")).first.wait_for(timeout=20_000)
    page.locator("#models-cancel").click()
    _wait_text(page, "#models-result", "was cancelled; nothing was kept")
    assert "not downloaded" in _row(page, gpt2).text_content()
    assert page.page_errors == []


def test_import_from_a_folder_checks_the_task_and_the_name_works_in_the_task_tab(page, tiny_models, slow_hub):
    _open_models_tab(page)
    slow_hub.add_repo("someone/tiny-sentiment", tiny_models[SST2])
    page.get_by_role("button", name=re.compile("^Add a Hub model")).click()
    page.locator("#models-hub-id input, #models-hub-id textarea").first.fill("someone/tiny-sentiment")
    page.locator("#models-hub-task input").fill("Sentiment")
    page.keyboard.press("Enter")
    page.locator("#models-add").click()
    _wait_text(page, "#models-result", "someone/tiny-sentiment is ready for Sentiment")
    assert re.search(
        r"ready\s+200 KB\s+Sentiment\s+.*added from the Hub", _row(page, "someone/tiny").text_content()
    )

    page.get_by_role("button", name=re.compile("^Import from folder")).click()
    page.locator("#models-import-path textarea, #models-import-path input").first.fill(str(tiny_models[GPT2]))
    page.locator("#models-import-task input").fill("Sentiment")
    page.keyboard.press("Enter")
    page.locator("#models-import-name input, #models-import-name textarea").first.fill("office")
    page.locator("#models-import").click()
    page.get_by_text("does not fit text classification").first.wait_for(timeout=20_000)

    page.locator("#models-import-path textarea, #models-import-path input").first.fill(str(tiny_models[SST2]))
    page.locator("#models-import").click()
    _wait_text(page, "#models-result", "Imported office")
    assert re.search(
        r"office\s+ready\s+200 KB\s+Sentiment\s+never\s+imported", _row(page, "office").text_content()
    )

    # Both new models are in the Sentiment tab's list at once: no page reload.
    page.get_by_role("tab", name="Sentiment", exact=True).click()
    model_box = page.locator("#run-sentiment").locator("xpath=ancestor::div[contains(@class,'tabitem')]")
    model_box.get_by_label("Model").first.click()
    page.get_by_role("option", name="someone/tiny-sentiment — ready").wait_for(timeout=10_000)
    page.get_by_role("option", name="office (imported) — ready").click()
    model_box.get_by_label("Text").first.fill("I love this product!")
    page.locator("#run-sentiment").click()
    page.wait_for_function(
        "() => document.querySelector(\"[data-testid='label-output-value']\")?.textContent.includes('POSITIVE')",
        timeout=60_000,
    )
    assert page.page_errors == []


def test_storage_moves_the_models_folder_and_offline_mode_refuses_downloads(page, tmp_path):
    ModelStore().ensure(TASKS["sentiment"].default_model)
    _open_models_tab(page)
    page.get_by_role("button", name=re.compile("^Storage")).click()
    # As a person does, wait until the box shows the current folder before typing another: the tab
    # fills it in when it opens, and typing earlier would be overwritten.
    box = page.locator("#models-dir input, #models-dir textarea").first
    page.wait_for_function("(box) => !!box.value", arg=box.element_handle(timeout=20_000), timeout=20_000)
    assert box.input_value() == str(ModelStore().root)
    new = tmp_path / "moved-models"
    box.fill(str(new))
    page.locator("#models-change-dir").click()
    _wait_text(page, "#models-result", "moved there")
    assert (
        settings.load().models_dir == new and ModelStore().status(TASKS["sentiment"].default_model) == "ready"
    )
    assert str(new) in page.locator("#models-summary").text_content()
    assert "ready" in _row(page, SST2).text_content()
    page.locator("#models-change-dir").click()  # the same folder again: said, not "moved"
    _wait_text(page, "#models-result", "already kept in")

    page.get_by_role("tab", name="Settings", exact=True).click()  # Offline mode lives in Settings
    page.get_by_label("Offline mode: never use the network").check()
    _wait_text(page, "#settings-message", "Offline mode is on")
    assert settings.load().offline
    _open_models_tab(page)
    _choose(page, STARS)
    page.locator("#models-download").click()
    page.get_by_text(f"{STARS_LABEL} is not downloaded yet and this computer is offline").first.wait_for(
        timeout=20_000
    )
    assert page.page_errors == []


def test_sizes_show_before_download_one_progress_bar_and_no_folder_in_the_words(page, tmp_path):
    _open_models_tab(page)
    assert page.locator("#models-choice input").input_value() == ""  # nothing preselected
    assert re.search(r"not downloaded\s+about 669 MB", _row(page, STARS).text_content())
    _choose(page, STARS)
    page.locator("#models-verify").click()  # words that must not stay under the next bar
    _wait_text(page, "#models-result", "download it first")
    page.locator("#models-download").click()
    page.get_by_text(re.compile(r"Downloading BERT multilingual .* KB of \d+ KB")).first.wait_for(
        timeout=20_000
    )
    tab = page.locator("#models-result").locator("xpath=ancestor::div[contains(@class,'tabitem')]").first
    assert tab.locator(".progress-text, .progress-level").filter(has_text=re.compile("KB")).count() <= 1
    assert "download it first" not in page.locator("#models-result").inner_text()
    page.screenshot(path=str(tmp_path / "models-download.png"))
    words = _wait_text(page, "#models-result", "is ready").strip()
    assert words.startswith(f"{STARS_LABEL} is ready (201 KB)")
    assert str(ModelStore().root) not in words and "snapshots" not in words
    assert page.locator("#models-choice input").input_value() == STARS  # still what was chosen


def test_offline_mode_hides_what_would_need_a_download_in_every_list(page, tmp_path):
    ModelStore().ensure(TASKS["sentiment"].default_model)
    page.get_by_role("tab", name="Settings", exact=True).click()
    page.get_by_label("Offline mode: never use the network").check()
    _wait_text(page, "#settings-message", "Offline mode is on")
    page.get_by_role("tab", name="Sentiment", exact=True).click()
    tab = page.locator("#run-sentiment").locator("xpath=ancestor::div[contains(@class,'tabitem')]").first
    tab.get_by_label("Model").first.click()
    page.get_by_role("option", name=re.compile("DistilBERT .* ready")).wait_for(timeout=10_000)
    shown = page.get_by_role("option").all_text_contents()
    page.screenshot(path=str(tmp_path / "offline-list.png"))
    assert not [name for name in shown if "download" in name], shown
