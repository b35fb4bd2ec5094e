"""The Batch tab in a real browser: upload a CSV, run, see the chart, download the results."""

from __future__ import annotations

import pandas as pd
import pytest

pytestmark = pytest.mark.browser

REVIEWS = [
    "I love this product!",
    "The delivery was late and the box was damaged.",
    "",
    "What a great movie, truly amazing.",
    "This is terrible, I hate it.",
]


@pytest.fixture
def page(browser, app_server):
    context = browser.new_context(viewport={"width": 1280, "height": 1000}, accept_downloads=True)
    page = context.new_page()
    errors: list[str] = []
    page.on("console", lambda msg: errors.append(msg.text) if msg.type == "error" else None)
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.goto(app_server.url)
    page.get_by_role("tab", name="Batch", exact=True).click()
    page.locator("#batch-run").wait_for(state="visible", timeout=60_000)
    page.console_errors = errors  # type: ignore[attr-defined]
    yield page
    context.close()


def test_upload_run_chart_and_download(page, runtime, tmp_path):
    source = tmp_path / "reviews.csv"
    pd.DataFrame({"id": [1, 2, 3, 4, 5], "review": REVIEWS}).to_csv(source, index=False)
    page.locator("#batch-file input[type=file]").set_input_files(str(source))
    info = page.locator("#batch-info")
    page.wait_for_function(
        "() => document.querySelector('#batch-info').textContent.includes('5 rows')", timeout=30_000
    )
    assert "reviews.csv" in info.text_content()
    assert "The delivery was late" in page.locator("#batch-preview").text_content()
    # The text column was guessed from its name.
    assert page.locator("#batch-column input").input_value() == "review"

    page.locator("#batch-run").click()
    page.wait_for_function(
        "() => document.querySelector('#batch-progress').textContent.includes('finished')", timeout=90_000
    )
    assert "5 / 5 rows" in page.locator("#batch-progress").text_content()
    table = page.locator("#batch-results").text_content()
    assert "POSITIVE" in table and "NEGATIVE" in table and "empty row" in table
    chart = page.locator("#batch-chart")
    chart.locator("canvas, svg").first.wait_for(state="visible", timeout=30_000)
    assert "Rows by label" in chart.text_content()

    with page.expect_download(timeout=30_000) as download:
        page.locator("#batch-download").click()
    saved = tmp_path / "downloaded.csv"
    download.value.save_as(saved)
    assert download.value.suggested_filename == "reviews-sentiment.csv"
    frame = pd.read_csv(saved, dtype=str, keep_default_na=False)
    assert list(frame.columns) == ["id", "review", "label", "score", "note"]
    assert list(frame["review"]) == REVIEWS
    from desktop.tasks import TASKS

    expected = [TASKS["sentiment"].predict(runtime, t).data["label"] if t else "" for t in REVIEWS]
    assert list(frame["label"]) == expected
    assert page.console_errors == []


def test_a_file_that_cannot_be_read_says_why(page, tmp_path):
    bad = tmp_path / "broken.csv"
    bad.write_bytes(b'id,text\n1,"never closed\n2,more\n')
    page.locator("#batch-file input[type=file]").set_input_files(str(bad))
    page.get_by_text("is never closed").first.wait_for(timeout=30_000)
    page.locator("#batch-run").click()
    page.get_by_text("Upload a file first").first.wait_for(timeout=30_000)
