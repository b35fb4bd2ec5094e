"""The Batch tab in a real browser, driven as a person does: upload a file, pick the column and a
model (an imported one), run, read the results and the chart, download the export and open it."""

from __future__ import annotations

import re

import pandas as pd
import pytest

from desktop.engine import inventory
from desktop.tasks import TASKS
from tests.support.pages import choose, new_page

pytestmark = pytest.mark.browser

SST2 = "distilbert/distilbert-base-uncased-finetuned-sst-2-english"
REVIEWS = [
    "I love this product!",
    "The delivery was late and the box was damaged.",
    "",
    "What a great movie, truly amazing.",
    "This is terrible, I hate it.",
]


def _page(browser, url: str, width: int = 1280):
    context, page = new_page(browser, width, 1000, accept_downloads=True)
    page.goto(url)
    page.get_by_role("tab", name="Batch", exact=True).click()
    page.locator("#batch-run").wait_for(state="visible", timeout=60_000)
    return context, page


@pytest.fixture
def page(browser, app_server):
    context, page = _page(browser, app_server.url)
    yield page
    context.close()


def _choose(page, box: str, option: str | re.Pattern[str]) -> None:
    """Open the dropdown ``box`` and click one of its options, as a person does."""
    choose(page, page.locator(f"{box} input"), option)


def _upload(page, path) -> None:
    page.locator("#batch-file input[type=file]").set_input_files(str(path))
    page.wait_for_function(
        "() => /\\d+ rows/.test(document.querySelector('#batch-info').textContent)", timeout=30_000
    )


def _run(page) -> None:
    page.locator("#batch-run").click()
    try:
        page.wait_for_function(
            "() => document.querySelector('#batch-progress').textContent.includes('finished')",
            timeout=300_000,  # a first run loads its model: minutes on a loaded 2-core machine
        )
    except Exception:
        from tests.support import ARTIFACTS

        ARTIFACTS.mkdir(exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / "batch-run-unfinished.png"), full_page=True)
        raise


def test_upload_pick_an_imported_model_run_read_the_chart_and_open_the_export(
    page, runtime, tiny_models, tmp_path
):
    inventory.import_folder(tiny_models[SST2], "sentiment", name="shop-reviews", root=runtime.store.root)
    page.get_by_role("tab", name="Sentiment", exact=True).click()
    page.get_by_role("tab", name="Batch", exact=True).click()  # the list is read when the tab opens
    source = tmp_path / "reviews.csv"
    pd.DataFrame({"id": [1, 2, 3, 4, 5], "review": REVIEWS}).to_csv(source, index=False)
    _upload(page, source)
    assert "reviews.csv" in page.locator("#batch-info").text_content()
    assert "The delivery was late" in page.locator("#batch-preview").text_content()
    assert page.locator("#batch-column input").input_value() == "review"  # guessed from its name
    _choose(page, "#batch-model", "shop-reviews (imported) — ready")

    _run(page)
    assert "5 / 5 rows" in page.locator("#batch-progress").text_content()
    assert "shop-reviews" in page.locator("#batch-progress").text_content()
    table = page.locator("#batch-results").text_content()
    assert "POSITIVE" in table and "The text is empty" in table

    with page.expect_download(timeout=30_000) as download:
        page.locator("#batch-download").click()
    saved = tmp_path / "downloaded.csv"
    download.value.save_as(saved)
    assert download.value.suggested_filename == "reviews-sentiment.csv"
    frame = pd.read_csv(saved, dtype=str, keep_default_na=False, encoding="utf-8-sig")
    assert list(frame.columns) == ["id", "review", "label", "score", "note"]
    assert list(frame["review"]) == REVIEWS
    expected = [
        TASKS["sentiment"].predict(runtime, t, "shop-reviews").data["label"] if t else "" for t in REVIEWS
    ]
    assert list(frame["label"]) == expected

    # The chart says what the export says: one bar per label, its count written on it, and bar
    # lengths proportional to the counts (bars start at zero).
    counts = frame.loc[frame["label"] != "", "label"].value_counts().to_dict()
    bars = page.locator("#batch-chart [data-label]")
    shown = {bars.nth(i).get_attribute("data-label"): bars.nth(i) for i in range(bars.count())}
    assert set(shown) == set(counts)
    widths = {}
    for label, bar in shown.items():
        assert bar.locator(".pd-bar-count").text_content() == str(counts[label])
        widths[label] = bar.locator(".pd-bar-fill").bounding_box()["width"]
    top = max(counts.values())
    longest = max(widths.values())
    for label, count in counts.items():
        assert widths[label] == pytest.approx(longest * count / top, rel=0.03, abs=1.5)
    assert "Rows by label" in page.locator("#batch-chart").text_content()
    page.screenshot(path=str(tmp_path / "batch.png"), full_page=True)
    assert page.console_errors == []


@pytest.mark.parametrize("width", [800, 1920])
def test_result_columns_are_in_view_without_scrolling_sideways(browser, app_server, tmp_path, width):
    context, page = _page(browser, app_server.url, width=width)
    try:
        source = tmp_path / "long.csv"
        long_text = "This is a rather long review that goes on and on about the product. " * 6
        pd.DataFrame({"id": [1, 2], "notes_from_the_customer": [long_text, "I love this product!"]}).to_csv(
            source, index=False
        )
        _upload(page, source)
        _run(page)
        results = page.locator("#batch-results")
        for header in ("label", "score", "note"):
            cell = results.get_by_role("columnheader", name=header, exact=True).first
            box = cell.bounding_box()
            assert box is not None and box["x"] + box["width"] <= width, (
                f"{header} is off screen at {width}px"
            )
        page.screenshot(path=str(tmp_path / f"batch-{width}.png"), full_page=True)
    finally:
        context.close()


def test_a_file_that_cannot_be_read_says_why(page, tmp_path):
    bad = tmp_path / "broken.csv"
    bad.write_bytes(b'id,text\n1,"never closed\n2,more\n')
    page.locator("#batch-file input[type=file]").set_input_files(str(bad))
    page.get_by_text("is never closed").first.wait_for(timeout=30_000)
    page.locator("#batch-run").click()
    page.get_by_text("Upload a file first").first.wait_for(timeout=30_000)


def test_each_browser_session_keeps_its_own_file_however_many_others_upload(browser, app_server, tmp_path):
    """Batch state belongs to one browser session (#10 item 7): another person uploading many files
    (the app once kept 16 uploads for everybody) never takes away yours, nor can cancel your run."""
    mine_context, mine = _page(browser, app_server.url)
    theirs_context, theirs = _page(browser, app_server.url)
    try:
        source = tmp_path / "mine.csv"
        pd.DataFrame({"review": ["I love this product!", "This is terrible, I hate it."]}).to_csv(
            source, index=False
        )
        _upload(mine, source)
        for number in range(17):
            other = tmp_path / f"theirs-{number}.csv"
            pd.DataFrame({"text": [f"other text number {number}"]}).to_csv(other, index=False)
            if number:  # clear the file shown, as a person does before picking another
                theirs.locator("#batch-file").get_by_role("button", name="Clear").click()
            theirs.locator("#batch-file input[type=file]").set_input_files(str(other))
            theirs.wait_for_function(
                "(name) => document.querySelector('#batch-info').textContent.includes(name)",
                arg=other.name,
                timeout=30_000,
            )
        theirs.locator("#batch-cancel").click()  # nothing of theirs runs: it must not touch mine
        _run(mine)
        assert "2 / 2 rows" in mine.locator("#batch-progress").text_content()
        table = mine.locator("#batch-results").text_content()
        assert "I love this product!" in table and "other text" not in table
    finally:
        mine_context.close()
        theirs_context.close()


# --- photos, folders, workbooks and files of numbers (issue #16: files you actually have) -------


def _info_says(page, words: str) -> None:
    page.wait_for_function(
        "(w) => document.querySelector('#batch-info').textContent.includes(w)", arg=words, timeout=30_000
    )


def test_photos_dropped_on_the_tab_run_through_objects_with_a_chart_and_an_export(page, tmp_path):
    from tests.support import ARTIFACTS
    from tests.support.tiny_media import SQUARE_LABEL, square

    photos = []
    for name, box in (("shelf.png", (75, 75, 225, 225)), ("door.jpg", None), ("box.png", (60, 60, 200, 200))):
        path = tmp_path / name
        square((300, 300), box).save(path)
        photos.append(str(path))
    page.locator("#batch-file input[type=file]").set_input_files(photos)
    _info_says(page, "3 photos")
    assert not page.locator("#batch-column").is_visible()  # one photo a row: no column to choose
    _choose(page, "#batch-task", "Objects")
    _run(page)
    results = page.locator("#batch-results")
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "batch-photos.png"), full_page=True)
    for header in ("#", "file", "count", "objects", "note"):
        assert results.get_by_role("columnheader", name=header, exact=True).count() == 1, header
    text = results.text_content()
    assert "shelf.png" in text and "door.jpg" in text and f"{SQUARE_LABEL} (" in text
    assert "Objects by label" in page.locator("#batch-chart").text_content()
    with page.expect_download(timeout=30_000) as download:
        page.locator("#batch-download").click()
    saved = tmp_path / "objects.csv"
    download.value.save_as(saved)
    frame = pd.read_csv(saved, keep_default_na=False, encoding="utf-8-sig")
    assert list(frame["file"]) == ["shelf.png", "door.jpg", "box.png"] and list(frame["count"]) == [1, 0, 1]
    # Photos through a text task: refused in words, nothing runs.
    _choose(page, "#batch-task", "Sentiment")
    page.locator("#batch-run").click()
    page.get_by_text("Sentiment reads a table of texts, not photos").first.wait_for(timeout=30_000)
    assert page.console_errors == []


def test_a_folder_on_this_computer_is_read_with_its_subfolders(page, tmp_path):
    from tests.test_one_pipeline import photo_folder

    folder = photo_folder(tmp_path / "holiday")
    page.get_by_label("Or a folder on this computer").fill(str(folder))
    page.get_by_role("button", name="Read folder", exact=True).click()
    _info_says(page, "5 photos")
    _choose(page, "#batch-task", "Classify")
    _run(page)
    text = page.locator("#batch-results").text_content()
    assert "trip/day 2/wall.jpg" in text  # shown relative to the folder chosen
    assert "is not an image Pipedesk can read" in text and "is empty" in text  # their rows say why
    page.get_by_label("Or a folder on this computer").fill(str(tmp_path / "nowhere"))
    page.get_by_role("button", name="Read folder", exact=True).click()
    page.get_by_text("is not a folder on this computer").first.wait_for(timeout=30_000)


def test_a_workbook_is_read_from_its_sheet_with_text_and_another_can_be_chosen(page, tmp_path):
    from tests.support.workbooks import shop_workbook

    source = shop_workbook(tmp_path / "shop.xlsx")
    _upload(page, source)
    _info_says(page, "the rows come from 'Reviews'")
    assert page.locator("#batch-sheet input").input_value() == "Reviews"
    assert "I love this product!" in page.locator("#batch-preview").text_content()
    _choose(page, "#batch-sheet", "Notes")
    page.wait_for_function(
        "() => document.querySelector('#batch-preview').textContent.includes('Call the supplier')",
        timeout=30_000,
    )
    assert page.locator("#batch-column input").input_value() == "note"


def test_a_file_of_numbers_is_never_analysed_as_if_it_held_texts(page, tmp_path):
    prices = tmp_path / "prices.csv"
    prices.write_text("id,price,qty\n1,9.99,3\n2,12.50,1\n", encoding="utf-8")
    _upload(page, prices)
    _info_says(page, "has no column of text to analyse")
    assert page.locator("#batch-column input").input_value() == ""
    page.locator("#batch-run").click()
    page.get_by_text("Choose the column that holds the texts").first.wait_for(timeout=30_000)
    assert page.locator("#batch-results").text_content().count("POSITIVE") == 0
