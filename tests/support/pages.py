"""Driving the app's page as a person does (Playwright): open it, pick from a list, run a tab, read it.

Shared by the browser tests (``test_task_tabs``, ``test_batch_tab``, ``test_browser``) and by
``test_window``, which drives the window's own QtWebEngine page with the same helpers. Playwright's
sync API: everything runs on the test's thread.
"""

from __future__ import annotations

import re

from desktop.tasks import TASKS


def new_page(browser, width: int = 1280, height: int = 900, **options):
    """A fresh browser context and page; the page's console errors collect in ``page.console_errors``.

    ``options`` go to ``browser.new_context`` (``accept_downloads=True``...). Returns (context, page);
    the caller opens the address and closes the context.
    """
    context = browser.new_context(viewport={"width": width, "height": height}, **options)
    page = context.new_page()
    errors: list[str] = []
    page.on("console", lambda msg: errors.append(msg.text) if msg.type == "error" else None)
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.console_errors = errors  # type: ignore[attr-defined]
    return context, page


def open_app(browser, url: str, width: int = 1280, height: int = 900):
    """:func:`new_page` on the app at ``url``, once its tabs are there. Returns (context, page)."""
    context, page = new_page(browser, width, height)
    page.goto(url)
    page.get_by_role("tab", name="Sentiment", exact=True).wait_for(timeout=60_000)
    return context, page


def choose(page, opener, option: str | re.Pattern[str]) -> None:
    """Open a dropdown by clicking ``opener`` and click one of its options, as a person does."""
    opener.click()
    page.get_by_role("option", name=option).click()


def panel(page, task: str):
    """The tab panel of ``task``, after clicking its tab."""
    page.get_by_role("tab", name=TASKS[task].title, exact=True).click()
    page.locator(f"#run-{task}").wait_for(state="visible", timeout=20_000)
    return page.locator(f"#run-{task}").locator("xpath=ancestor::div[contains(@class,'tabitem')]").first


def run_sentiment(page, text: str) -> None:
    """As a person: open the Sentiment tab, type ``text``, press Run, wait until the answer shows."""
    tab = panel(page, "sentiment")
    tab.get_by_label("Text").first.fill(text)
    page.locator("#run-sentiment").click()
    page.wait_for_function(
        "() => document.querySelector(\"[data-testid='label-output-value']\")?.textContent.trim()",
        timeout=60_000,
    )


def choose_model(page, tab, option: str | re.Pattern[str]) -> None:
    """Pick ``option`` in the Model list of the tab panel ``tab``."""
    choose(page, tab.get_by_label("Model").first, option)


def runs_done(page, task: str) -> int:
    """How many runs of ``task`` the page has finished (the message box counts them)."""
    marks = page.locator(f"#message-{task} [data-runs]")
    return int(marks.first.get_attribute("data-runs")) if marks.count() else 0


def run_and_wait(page, task: str, timeout: float = 120_000, key: str | None = None) -> None:
    """Press Run (or ``key`` in the focused box) and wait until that run has finished."""
    before = runs_done(page, task)
    if key:
        page.keyboard.press(key)
    else:
        page.locator(f"#run-{task}").click()
    page.wait_for_function(
        "([task, n]) => Number(document.querySelector(`#message-${task} [data-runs]`)?.dataset.runs || 0) > n",
        arg=[task, before],
        timeout=timeout,
    )
    page.locator(f"#run-{task}").wait_for(state="visible", timeout=timeout)


def output_text(tab, label: str) -> str:
    """The text of the output box titled ``label`` (output boxes are read-only: found by their title)."""
    return tab.locator("div.block").filter(has_text=label).locator("textarea").last.input_value()


def message(page, task: str) -> str:
    """The words in ``task``'s message box (errors and notes)."""
    return page.locator(f"#message-{task}").inner_text().strip()


def start_writing(page, tab, prompt: str, model: str, max_new_tokens: int) -> None:
    """As a person in the Generate tab: type the prompt and a model (a Hub id or a folder), set Max new
    tokens under Options, press Run, and wait until the text so far is on the page."""
    tab.get_by_label("Prompt").fill(prompt)
    tab.get_by_label("Model").first.fill(model)
    tab.get_by_label("Model").first.press("Enter")
    tab.get_by_role("button", name="Options").click()
    tokens = tab.get_by_role("spinbutton", name="number input for Max new tokens")
    tokens.fill(str(max_new_tokens))
    tokens.press("Enter")
    page.locator("#run-generate").click()
    page.locator("#stop-generate").wait_for(state="visible", timeout=20_000)
    page.wait_for_function(
        f"() => [...document.querySelectorAll('textarea')].some(t => t.value.length > {len(prompt) + 20})",
        timeout=120_000,
    )
