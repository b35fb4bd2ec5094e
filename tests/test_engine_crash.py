"""A crash is a sentence, not an exit: the engine of a real ``pipedesk serve`` (its own process) is
killed while a request runs; the server stays up, the request ends with a sentence, the next one is
answered by the new engine. Traffic to 127.0.0.1 only; the local Hub serves the tiny models."""

from __future__ import annotations

import functools
import os
import signal
import sys
import time
from pathlib import Path

import pytest
from gradio_client import Client
from gradio_client.exceptions import AppError
from gradio_client.utils import Status

from tests.support import cli_env, cpu_seconds, engine_pid, free_port
from tests.support import wait_until as support_wait_until
from tests.test_deploy import SST2, Served

pytestmark = pytest.mark.slow

wait_for = functools.partial(support_wait_until, timeout=120.0)


def test_a_killed_engine_is_a_sentence_and_the_server_answers_the_next_request(hub, pipedesk_home):
    port = free_port()
    served = Served(
        [sys.executable, "-m", "desktop", "serve", "--port", str(port)], cli_env(pipedesk_home, hub)
    )
    try:
        wait_for(lambda: "Pipedesk is running at" in served.text or None)
        first = wait_for(lambda: engine_pid(served.proc.pid))
        client = Client(f"http://127.0.0.1:{port}/", verbose=False)
        hub.throttle_bytes_per_s = 20_000  # the model's download takes seconds: the request is in flight
        try:
            job = client.submit("I love this product!", SST2, api_name="/sentiment")
            wait_for(lambda: job.status().code in (Status.PROCESSING, Status.PROGRESS) or None)
            time.sleep(1.0)  # downloading, at the throttled speed
            os.kill(first, signal.SIGKILL)
            with pytest.raises(AppError, match="stopped by the system.*starting it again"):
                job.result(timeout=120)
        finally:
            hub.throttle_bytes_per_s = None
        assert served.proc.poll() is None  # the app is still up
        second = wait_for(lambda: (pid := engine_pid(served.proc.pid)) not in (None, first) and pid or None)
        answer = client.predict("I love this product!", SST2, api_name="/sentiment")
        assert answer["label"] in ("POSITIVE", "NEGATIVE")
        assert engine_pid(served.proc.pid) == second
    finally:
        assert served.stop() == 0, served.text
    # Quitting the app ends its engine too.
    wait_for(
        lambda: (
            not Path(f"/proc/{second}/cmdline").exists()
            or not Path(f"/proc/{second}/cmdline").read_bytes()
            or None
        ),
        timeout=30,
    )


@pytest.mark.window
def test_in_the_window_a_killed_engine_is_a_sentence_and_the_next_run_is_answered(
    display, hub, pipedesk_home, playwright_session
):
    """The real window under Xvfb; Playwright drives its page (QtWebEngine's DevTools port) as a person:
    Sentiment's Run while the model downloads, the engine killed, the sentence read in the tab; Run
    again, the answer read; the window never went away."""
    from tests.support import ARTIFACTS
    from tests.support.pages import message, panel, run_and_wait
    from tests.support.window_driver import TITLE, find_window, open_window, screenshot_after, window_page

    devtools_port = free_port()
    app, wid = open_window(cli_env(pipedesk_home, hub), display, devtools_port)
    try:
        first = wait_for(lambda: engine_pid(app.proc.pid))
        page = window_page(playwright_session, devtools_port)
        tab = panel(page, "sentiment")
        tab.get_by_label("Text").first.fill("I love this product!")
        hub.throttle_bytes_per_s = 20_000  # the model downloads slowly: the run is in flight
        try:
            page.locator("#run-sentiment").click()
            time.sleep(3)  # the download (about 12 s at this speed) is under way
            os.kill(first, signal.SIGKILL)
            page.locator("#message-sentiment").get_by_text("stopped by the system").wait_for(timeout=60_000)
        finally:
            hub.throttle_bytes_per_s = None
        assert "starting it again" in message(page, "sentiment")
        ARTIFACTS.mkdir(exist_ok=True)
        screenshot_after(display, ARTIFACTS / "window-engine-stopped.png", lambda: None)  # looked at
        wait_for(lambda: (pid := engine_pid(app.proc.pid)) not in (None, first) and pid or None)
        run_and_wait(page, "sentiment")
        assert tab.locator("[data-testid='label-output-value']").first.text_content() in (
            "POSITIVE",
            "NEGATIVE",
        )
        assert message(page, "sentiment") == ""
        screenshot_after(display, ARTIFACTS / "window-engine-restarted.png", lambda: None)
        assert app.proc.poll() is None and find_window(display, TITLE, timeout=5) == wid
    finally:
        app.stop()


@pytest.mark.window
def test_in_the_window_stop_frees_the_engine_at_once(
    display, hub, pipedesk_home, playwright_session, tiny_models
):
    """The real window: Generate with a model that writes until told to stop, Stop pressed as a
    person does; the tab says Stopped, the text stops growing and the engine process is idle."""
    from tests.support import ARTIFACTS
    from tests.support.pages import message, output_text, panel, start_writing
    from tests.support.window_driver import open_window, screenshot_after, window_page
    from tests.test_task_tabs import endless_gpt2

    model = endless_gpt2(tiny_models, pipedesk_home.parent / "endless-gpt2")
    devtools_port = free_port()
    app, _wid = open_window(cli_env(pipedesk_home, hub), display, devtools_port)
    try:
        page = window_page(playwright_session, devtools_port)
        tab = panel(page, "generate")
        start_writing(page, tab, "Once upon a time", str(model), 1000)
        engine = engine_pid(app.proc.pid)
        page.locator("#stop-generate").click()
        page.locator("#run-generate").wait_for(state="visible", timeout=10_000)
        assert "Stopped" in message(page, "generate")
        stopped_at = len(output_text(tab, "Generated text"))
        time.sleep(0.5)
        before = cpu_seconds(engine)
        time.sleep(1.0)
        assert cpu_seconds(engine) - before < 0.2  # the engine writes no more: the CPU is free
        assert len(output_text(tab, "Generated text")) == stopped_at
        ARTIFACTS.mkdir(exist_ok=True)
        screenshot_after(display, ARTIFACTS / "window-generate-stopped.png", lambda: None)  # looked at
    finally:
        app.stop()
