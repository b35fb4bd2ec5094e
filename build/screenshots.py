"""Take the README's screenshots: the app on the tests' tiny models, driven in Chromium.

    .venv/bin/python build/screenshots.py        (needs the dev extras and /usr/bin/chromium)

Writes assets/screenshot.png (Sentiment), assets/screenshot-labels.png (a ticket sorted into labels
you choose), assets/screenshot-batch.png (a file analysed), assets/screenshot-models.png (the model
manager), assets/screenshot-chat.png (a conversation in the Chat tab) and assets/screenshot-prompt.png
(a prompt over every row of a file, in the Batch tab), and assets/tabs/<tab>.png for every other tab
(Generate, Entities, Classify, Translate, Summarize, Transcribe, Objects, Sharing, Settings). Everything stays on 127.0.0.1: the models are
built by tests/support/tiny_models.py (cached as for the test suite) and served by
tests/support/hub_server.py.
"""

from __future__ import annotations

import csv
import os
import sys
import tempfile
from pathlib import Path

from desktop.engine.start import open_door

ROOT = Path(__file__).resolve().parent.parent
HOME = Path(tempfile.mkdtemp(prefix="pipedesk-shots-"))
os.environ["PIPEDESK_HOME"] = str(HOME)
sys.path.insert(0, str(ROOT))  # for tests.support

REVIEWS = [
    "I love this product! It works exactly as described.",
    "The delivery was late and the box was damaged.",
    "Great value for the price, I would buy it again.",
    "It stopped working after two days.",
    "The film was long, but the ending made it worth it.",
    "Terrible customer service, never again.",
]


def main() -> None:
    from playwright.sync_api import sync_playwright

    from tests.support.hub_server import HubServer
    from tests.support.tiny_models import cached_models

    models = cached_models()
    with HubServer(models) as hub:
        os.environ["HF_ENDPOINT"] = hub.url
        from desktop import server
        from desktop.ui.app import build_app

        running = server.start(build_app(open_door("cpu")))
        source = HOME / "reviews.csv"
        with source.open("w", newline="", encoding="utf-8") as out:
            writer = csv.writer(out)
            writer.writerow(["id", "review"])
            writer.writerows([i + 1, text] for i, text in enumerate(REVIEWS * 4))
        with sync_playwright() as p:
            browser = p.chromium.launch(
                executable_path="/usr/bin/chromium",
                args=["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--no-first-run"],
            )
            page = browser.new_page(viewport={"width": 1200, "height": 820})
            page.goto(running.url)
            tab = page.locator("#run-sentiment").locator("xpath=ancestor::div[contains(@class,'tabitem')]")
            tab.get_by_label("Text").first.fill(REVIEWS[0])
            page.locator("#run-sentiment").click()
            page.locator("#run-sentiment").wait_for(state="visible", timeout=120_000)
            page.wait_for_timeout(500)
            page.screenshot(path=str(ROOT / "assets" / "screenshot.png"))

            page.get_by_role("tab", name="Labels", exact=True).click()
            tab = page.locator("#run-labels").locator("xpath=ancestor::div[contains(@class,'tabitem')]")
            tab.get_by_role("textbox", name="Text").fill("I was charged twice and my package never arrived.")
            tab.get_by_role("textbox", name="Labels").fill("billing, shipping, broken product")
            tab.get_by_label("More than one can apply").check()
            page.locator("#run-labels").click()
            tab.locator(".confidence-set").first.wait_for(timeout=120_000)
            page.evaluate("window.scrollTo(0, 0)")  # ticking the box scrolled the page down
            page.wait_for_timeout(500)
            page.screenshot(path=str(ROOT / "assets" / "screenshot-labels.png"))

            page.get_by_role("tab", name="Batch", exact=True).click()
            page.locator("#batch-file input[type=file]").set_input_files(str(source))
            page.wait_for_function("() => /rows/.test(document.querySelector('#batch-info').textContent)")
            page.locator("#batch-run").click()
            page.wait_for_function(
                "() => document.querySelector('#batch-progress').textContent.includes('finished')",
                timeout=120_000,
            )
            page.wait_for_timeout(500)
            page.screenshot(path=str(ROOT / "assets" / "screenshot-batch.png"), full_page=True)

            page.get_by_role("tab", name="Models", exact=True).click()
            page.locator("#models-table .virtual-row").first.wait_for(timeout=30_000)
            page.wait_for_timeout(500)
            page.screenshot(path=str(ROOT / "assets" / "screenshot-models.png"))
            chat_shot(page)
            prompt_shot(page)
            tab_shots(page)
            browser.close()
        running.stop()
    print("Screenshots written to", ROOT / "assets")


def chat_shot(page) -> None:
    """Two turns with the tiny instruct model (it knows these questions), then the Chat tab."""
    from tests.support import tiny_chat

    page.get_by_role("tab", name="Chat", exact=True).click()
    box = page.get_by_role("textbox", name="Message")
    for question in (tiny_chat.HELLO, tiny_chat.NAME):
        box.fill(question)
        page.locator("#run-chat").click()
        page.locator("#stop-chat").wait_for(state="hidden", timeout=120_000)
        page.wait_for_timeout(800)
    box.fill("Can you read my spreadsheets?")
    page.screenshot(path=str(ROOT / "assets" / "screenshot-chat.png"))


def prompt_shot(page) -> None:
    """The reviews the tiny instruct model knows, with a prompt and JSON fields, in the Batch tab."""
    from tests.support import tiny_chat

    source = HOME / "product-reviews.csv"
    with source.open("w", newline="", encoding="utf-8") as out:
        writer = csv.writer(out)
        writer.writerow(["id", "review"])
        writer.writerows([i + 1, review] for i, (review, _product, _json) in enumerate(tiny_chat.REVIEWS))
    page.goto(page.url)  # a fresh page: the Batch tab still holds the first file
    page.get_by_role("tab", name="Batch", exact=True).click()
    page.locator("#batch-file input[type=file]").set_input_files(str(source))
    page.wait_for_function("() => /product-reviews/.test(document.querySelector('#batch-info').textContent)")
    page.locator("#batch-task input").click()
    page.get_by_role("option", name="Prompt").click()
    options = page.locator("#batch-options-prompt")
    options.get_by_role("textbox", name="Prompt {column}").fill(tiny_chat.PROMPT)
    options.get_by_role("textbox", name="JSON fields").fill(", ".join(tiny_chat.FIELDS))
    page.locator("#batch-run").click()
    page.wait_for_function(
        "() => /finished/.test(document.querySelector('#batch-progress').textContent)", timeout=120_000
    )
    page.wait_for_timeout(500)
    page.screenshot(path=str(ROOT / "assets" / "screenshot-prompt.png"), full_page=True)


#: The other tabs, each with what a person types (or hands in) first: assets/tabs/<tab>.png.
TYPED = {
    "generate": "Once upon a time, in a quiet village,",
    "ner": "My name is Clara and I live in Berkeley, California. I work at Hugging Face.",
    "classify": "What a wonderful, sunny day!",
    "translate": "Hello, how are you today? The weather is lovely.",
    "summarize": (
        "Heavy rain flooded the city centre on Monday. Shops closed early and buses were diverted. "
        "The council said the drains would be cleared by the end of the week."
    ),
}


def tab_shots(page) -> None:
    """Every tab the README has no larger picture of, after a first run where it has one."""
    from tests.support.pages import panel, run_and_wait
    from tests.support.tiny_media import square, tone, write_wav

    folder = ROOT / "assets" / "tabs"
    folder.mkdir(exist_ok=True)
    page.goto(page.url)
    for task, text in TYPED.items():
        tab = panel(page, task)
        tab.get_by_role("textbox").first.fill(text)
        run_and_wait(page, task)
        page.wait_for_timeout(500)
        page.screenshot(path=str(folder / f"{task}.png"))
    files = {
        "transcribe": write_wav(HOME / "memo.wav", tone(2.0)),
        "detect": HOME / "shelf.png",
    }
    square((300, 300), (75, 75, 225, 225)).save(files["detect"])
    for task, path in files.items():
        tab = panel(page, task)
        tab.locator("input[type=file]").first.set_input_files(str(path))
        page.wait_for_timeout(1500)
        run_and_wait(page, task)
        page.wait_for_timeout(500)
        page.screenshot(path=str(folder / f"{task}.png"))
    for name in ("Sharing", "Settings"):
        page.get_by_role("tab", name=name, exact=True).click()
        page.wait_for_timeout(800)
        page.screenshot(path=str(folder / f"{name.lower()}.png"))


if __name__ == "__main__":
    main()
