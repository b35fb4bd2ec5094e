"""The Settings tab in a real browser: each setting changes as a person changes it, is saved, says when it
takes effect, and is back after a reload; LAN visitors have no Settings tab and no handler of it."""

from __future__ import annotations

import pytest

from desktop import settings
from desktop.engine.start import local_door
from tests.support import ARTIFACTS
from tests.support.pages import open_app

pytestmark = pytest.mark.browser


@pytest.fixture
def page(browser, app_server):
    context, page = open_app(browser, app_server.url)
    yield page
    context.close()


def _settings(page):
    page.get_by_role("tab", name="Settings", exact=True).click()
    return page.locator("#settings-theme").locator("xpath=ancestor::div[contains(@class,'tabitem')]").first


def _dark(page) -> bool:
    return page.evaluate("() => document.body.classList.contains('dark')")


def test_theme_applies_at_once_and_is_kept_after_a_reload(page, tmp_path):
    tab = _settings(page)
    tab.get_by_label("Dark").check()
    page.wait_for_function("() => document.body.classList.contains('dark')", timeout=10_000)
    page.screenshot(path=str(tmp_path / "settings-dark.png"))
    page.wait_for_timeout(500)  # the save follows the page's change
    assert settings.load().theme == "dark"
    page.reload()
    page.get_by_role("tab", name="Sentiment", exact=True).wait_for(timeout=60_000)
    page.wait_for_function("() => document.body.classList.contains('dark')", timeout=20_000)
    tab = _settings(page)
    tab.get_by_label("Light").check()
    page.wait_for_function("() => !document.body.classList.contains('dark')", timeout=10_000)
    page.wait_for_timeout(500)
    assert settings.load().theme == "light" and not _dark(page)
    assert page.console_errors == []


def test_device_fast_cpu_offline_models_folder_and_local_api_each_say_when_they_apply(
    page, runtime, tmp_path
):
    tab = _settings(page)
    info = page.locator("#settings-device-info")
    info.get_by_text("Found:").wait_for(timeout=60_000)  # what this computer has, and why
    assert "a CPU with" in info.inner_text() and "Models run on" in info.inner_text()
    tab.get_by_label("Device").click()
    page.get_by_role("option", name="CPU", exact=True).click()
    page.locator("#settings-message").get_by_text("next time Pipedesk starts").wait_for(timeout=20_000)
    assert settings.load().device == "cpu"

    tab.get_by_label("Fast CPU mode").check()
    page.locator("#settings-message").get_by_text("Fast CPU mode is on").wait_for(timeout=10_000)
    assert settings.load().fast_cpu
    tab.get_by_label("Offline mode: never use the network").check()
    page.locator("#settings-message").get_by_text("Offline mode is on").wait_for(timeout=10_000)
    assert settings.load().offline
    assert tab.get_by_label("Models folder").input_value() == str(runtime.store.root)
    assert "The Local API (other programs using Pipedesk's models) is off" in tab.inner_text()
    page.screenshot(path=str(tmp_path / "settings.png"), full_page=True)

    # The Batch tab's Fast CPU box starts from the setting (it shows on the CPU).
    page.get_by_role("tab", name="Batch", exact=True).click()
    batch = page.locator("#batch-run").locator("xpath=ancestor::div[contains(@class,'tabitem')]").first
    batch.get_by_label("Fast CPU mode").wait_for(timeout=30_000)
    assert batch.get_by_label("Fast CPU mode").is_checked()
    # The Local API's switch is in one place: the Settings tab opens it.
    tab = _settings(page)
    tab.get_by_role("button", name="Open Sharing").click()
    page.get_by_label("Let other programs use Pipedesk (Local API)").wait_for(timeout=10_000)
    # Back in Settings after a reload: the saved values are shown.
    page.reload()
    page.get_by_role("tab", name="Sentiment", exact=True).wait_for(timeout=60_000)
    tab = _settings(page)
    page.wait_for_function(
        "() => document.querySelector('#settings-offline input')?.checked === true", timeout=20_000
    )
    assert tab.get_by_label("Fast CPU mode").is_checked()
    assert page.console_errors == []


def test_lan_visitors_have_no_settings_tab_and_no_handler_of_it(browser, runtime):
    from desktop import server
    from desktop.ui import settings_tab
    from desktop.ui.app import build_app

    blocks = build_app(local_door(runtime).visitors(), local=False)
    handlers = [fn.fn for fn in blocks.fns.values() if fn.fn is not None]
    assert not any(getattr(fn, "__module__", "") == settings_tab.__name__ for fn in handlers)
    running = server.start(blocks)
    context, page = open_app(browser, running.url)
    try:
        names = [name.strip() for name in page.get_by_role("tab").all_text_contents()]
        assert "Settings" not in names and "Sharing" not in names and "Models" not in names
    finally:
        context.close()
        running.stop()


def test_memory_is_freed_when_asked_and_the_idle_time_is_a_setting(page, runtime, tmp_path):
    from desktop.tasks import TASKS

    sst2 = "distilbert/distilbert-base-uncased-finetuned-sst-2-english"
    TASKS["sentiment"].predict(runtime, "I love this product!", sst2)  # a model in memory
    tab = _settings(page)
    tab.get_by_label("Free memory when idle").click()
    page.get_by_role("option", name="After 5 minutes").click()
    page.locator("#settings-message").get_by_text("leave memory after 5 minutes unused").wait_for(
        timeout=10_000
    )
    assert settings.load().unload_after_min == 5
    page.get_by_role("tab", name="Models", exact=True).click()
    page.get_by_role("button", name="Free memory").click()
    page.locator("#models-result").get_by_text("unloaded: their memory is back").wait_for(timeout=20_000)
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "models-free-memory.png"))  # kept to be looked at
    assert runtime.loaded_models() == []
    page.get_by_role("button", name="Free memory").click()
    page.locator("#models-result").get_by_text("No model is in memory.").wait_for(timeout=20_000)
    assert page.console_errors == []
