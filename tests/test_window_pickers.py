"""The system's file dialogs in the real window (Qt under Xvfb): "Choose…" beside the boxes that take a
folder of this computer opens the dialog, a path typed there (xdotool) and Return fill the box (the
Batch tab reads the folder at once); a browser on the same kind of app has no such button."""

from __future__ import annotations

import re
import time
from pathlib import Path

import pytest

from tests.support import ARTIFACTS, cli_env, free_port
from tests.support.pages import open_app
from tests.support.window_driver import (
    answer_dialog,
    close_window,
    open_window,
    screenshot,
    window_page,
)


def choose(page, display: str, button: str, box: str, folder: Path, tries: int = 3) -> None:
    """Click Choose…, type ``folder`` in Qt's "Open folder" dialog and press Return, until the box
    shows it. Typing into the dialog under load is not always what lands there (a keystroke taken
    by the dialog's path completer once chose the parent folder), so a wrong pick is picked again,
    as a person would; the box must end up holding exactly the folder typed."""
    value = ""
    for _ in range(tries):
        page.locator(button).click()
        try:
            answer_dialog(display, "Open folder", folder, timeout=30)
        except AssertionError:  # the click opened no dialog (a loaded machine): click again
            continue
        try:
            page.wait_for_function(
                "([box, want]) => document.querySelector(`${box} textarea, ${box} input`)?.value === want",
                arg=[box, str(folder)],
                timeout=20_000,
            )
            return
        except Exception:
            value = page.locator(f"{box} textarea, {box} input").first.input_value()
    raise AssertionError(f"the box holds {value!r} after {tries} tries, not {str(folder)!r}")


@pytest.mark.window
def test_choose_opens_the_systems_folder_dialog_in_the_window(
    display, pipedesk_home, tmp_path, playwright_session
):
    from tests.test_one_pipeline import photo_folder

    holiday = photo_folder(tmp_path / "holiday")
    usb = tmp_path / "usb stick" / "my-model"
    usb.mkdir(parents=True)
    devtools_port = free_port()
    app, wid = open_window(cli_env(pipedesk_home, HF_HUB_OFFLINE="1"), display, devtools_port)
    try:
        page = window_page(playwright_session, devtools_port)
        # The engine imports torch once the page is up; typing into Qt's dialogs on two busy cores
        # loses keystrokes, and this test is about the dialogs: they are driven after it.
        log = pipedesk_home / "logs" / "pipedesk.log"
        deadline = time.monotonic() + 120
        while "Warmed up in" not in (log.read_text(encoding="utf-8") if log.exists() else ""):
            assert time.monotonic() < deadline, "the engine never warmed up"
            time.sleep(0.5)

        # Batch: the folder chosen in the dialog is in the box and read at once.
        page.get_by_role("tab", name="Batch", exact=True).click()
        choose(page, display, "#batch-folder-choose", "#batch-folder", holiday)
        page.locator("#batch-info").get_by_text("5 photos").wait_for(timeout=30_000)
        assert page.get_by_label("Or a folder on this computer").input_value() == str(holiday)
        page.wait_for_timeout(1_000)  # the preview of the photos draws
        shot = ARTIFACTS / "window-batch-folder-chosen.png"  # kept to be looked at
        shot.parent.mkdir(exist_ok=True)
        screenshot(display, shot)

        # Models: the folder to import, and the models folder, each from the dialog.
        page.get_by_role("tab", name="Models", exact=True).click()
        page.get_by_role("button", name=re.compile("^Import from folder")).click()
        choose(page, display, "#models-import-path-choose", "#models-import-path", usb)
        page.get_by_role("button", name=re.compile("^Storage")).click()
        # As a person does: the tab fills the box with the current folder when it opens; choose after.
        page.wait_for_function(
            "() => !!document.querySelector('#models-dir textarea, #models-dir input')?.value", timeout=20_000
        )
        choose(page, display, "#models-dir-choose", "#models-dir", tmp_path / "usb stick")
        close_window(display, wid)
        assert app.proc.wait(timeout=30) == 0, app.output
    finally:
        app.stop()


@pytest.mark.browser
def test_a_browser_keeps_the_typed_path_with_no_choose_button(browser, app_server):
    context, page = open_app(browser, app_server.url)
    try:
        page.get_by_role("tab", name="Batch", exact=True).click()
        page.get_by_label("Or a folder on this computer").wait_for(timeout=20_000)
        assert page.get_by_role("button", name="Read folder", exact=True).is_visible()
        assert page.get_by_role("button", name="Choose…").count() == 0
    finally:
        context.close()
