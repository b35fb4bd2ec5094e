"""The UI in a real browser: headless Debian Chromium driven by Playwright."""

from __future__ import annotations

from urllib.parse import urlsplit

import pytest

from desktop.tasks import TASKS
from tests.support.pages import new_page

pytestmark = pytest.mark.browser


@pytest.fixture
def page(browser, app_server):
    context, page = new_page(browser)
    hosts: set[str] = set()
    page.on("request", lambda request: hosts.add(urlsplit(request.url).hostname or ""))
    page.goto(app_server.url)
    page.get_by_role("tab", name="Sentiment", exact=True).wait_for(timeout=60_000)
    page.hosts = hosts  # type: ignore[attr-defined]
    yield page
    context.close()


def test_sentiment_tab_types_submits_and_shows_the_label(page, tmp_path):
    panel = page.locator("#run-sentiment").locator("xpath=ancestor::div[contains(@class,'tabitem')]").first
    panel.get_by_label("Text").first.fill("I love this product!")
    page.locator("#run-sentiment").click()
    label = panel.locator("[data-testid='label-output-value']").first
    label.wait_for(timeout=60_000)
    page.wait_for_function(
        "() => document.querySelector(\"[data-testid='label-output-value']\")?.textContent.includes('POSITIVE')",
        timeout=60_000,
    )
    assert "POSITIVE" in label.text_content()
    assert (
        "latency" in page.locator("#status-line").text_content()
        or "last run" in page.locator("#status-line").text_content()
    )
    page.screenshot(path=str(tmp_path / "sentiment.png"))
    assert page.console_errors == []


def test_every_tab_loads_without_browser_errors_or_internet(page):
    for spec in TASKS.values():
        if spec.ui == "files":  # no tab of its own: it runs in the Batch tab
            continue
        page.get_by_role("tab", name=spec.title, exact=True).click()
        page.locator(f"#run-{spec.id}").wait_for(state="visible", timeout=20_000)
    assert page.console_errors == []
    # fonts, scripts and styles all come from the app itself: it works with no internet
    assert page.hosts == {"127.0.0.1"}


def test_a_bad_input_shows_its_message_in_the_page(page):
    page.locator("#run-sentiment").click()  # empty text box
    page.get_by_text("The text is empty").first.wait_for(timeout=30_000)
    assert page.console_errors == []


def test_a_narrow_window_shows_every_tab_and_no_developer_settings(browser, app_server, tmp_path):
    """At 800 px every tab is in view at a glance (none behind a '...' menu), and Gradio's footer
    offers no Settings panel meant for developers (PWA installs, screen recording)."""
    context, page = new_page(browser, 800, 700)
    try:
        page.goto(app_server.url)
        page.get_by_role("tab", name="Sentiment", exact=True).wait_for(timeout=60_000)
        page.wait_for_timeout(500)  # Gradio measures the tab row once the page is laid out
        shown = [name.strip() for name in page.get_by_role("tab").all_text_contents()]
        wanted = [spec.title for spec in TASKS.values() if spec.ui != "files"] + [
            "Batch",
            "Models",
            "Sharing",
            "Settings",
        ]
        assert shown == wanted
        for name in wanted:
            assert page.get_by_role("tab", name=name, exact=True).is_visible(), name
        assert (
            page.get_by_role("button", name="More tabs").count() == 0
            or not page.get_by_role("button", name="More tabs").is_visible()
        )
        footer = " ".join(page.locator("footer").inner_text().split())
        assert "Settings" not in footer and footer == "Use via API"  # no dangling "·"
        page.screenshot(path=str(tmp_path / "narrow.png"), full_page=True)
    finally:
        context.close()
