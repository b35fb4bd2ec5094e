"""Labels in a real browser, driven as a person does: the Labels tab (type a text and the labels,
tick "More than one can apply", run, read the sorted labels; switch to Photo and upload a picture;
mistakes told in words) and a file sorted into labels in the Batch tab."""

from __future__ import annotations

import re

import pandas as pd
import pytest

from tests.support import ARTIFACTS
from tests.support.pages import choose, message, new_page, panel, run_and_wait
from tests.support.tiny_labels import BOTH, TICKET_LABELS, TICKETS
from tests.support.tiny_media import square

pytestmark = pytest.mark.browser

LABELS = ", ".join(TICKET_LABELS)


@pytest.fixture
def page(browser, app_server):
    context, page = new_page(browser, 1280, 1000, accept_downloads=True)
    page.goto(app_server.url)
    page.get_by_role("tab", name="Sentiment", exact=True).wait_for(timeout=60_000)
    yield page
    context.close()


def shown_labels(tab) -> list[tuple[str, float]]:
    """The labels the Labels output shows, in its order, with their percentages."""
    rows = tab.locator(".confidence-set")  # the bars under the top label
    found = []
    for row in rows.all():
        name = row.locator(".text").first.inner_text().strip()
        percent = float(row.locator(".confidence").first.inner_text().strip().rstrip("%"))
        found.append((name, percent))
    return found


def test_sort_a_text_then_a_photo_into_labels_and_read_the_scores(page, tmp_path):
    tab = panel(page, "labels")
    tab.get_by_role("textbox", name="Text").fill(BOTH[0])
    tab.get_by_role("textbox", name="Labels").fill("billing\nshipping\nbroken product")
    run_and_wait(page, "labels")
    top = tab.locator("[data-testid='label-output-value']").first.text_content().strip()
    assert top in BOTH[1]
    single = shown_labels(tab)
    assert [name for name, _ in single][2] == "broken product"
    assert sum(percent for _, percent in single) == pytest.approx(100, abs=2)

    tab.get_by_label("More than one can apply").check()
    run_and_wait(page, "labels")
    several = shown_labels(tab)
    assert {name for name, percent in several if percent > 50} == set(BOTH[1])
    assert [percent for _, percent in several] == sorted((p for _, p in several), reverse=True)
    assert message(page, "labels") == ""
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "labels-tab.png"), full_page=True)

    square((300, 300), (75, 75, 225, 225)).save(tmp_path / "parcel.png")
    tab.get_by_label("Photo", exact=True).first.check()  # the "Input type" radio
    tab.locator("input[type=file]").set_input_files(str(tmp_path / "parcel.png"))
    tab.locator("img").first.wait_for(timeout=20_000)
    tab.get_by_label("More than one can apply").uncheck()
    tab.get_by_role("textbox", name="Labels").fill("red circle, blue square, green triangle")
    run_and_wait(page, "labels")
    assert tab.locator("[data-testid='label-output-value']").first.text_content().strip() == "blue square"
    assert [name for name, _ in shown_labels(tab)][0] == "blue square"
    assert "CLIP ViT-B/32" in page.locator("#status-line").text_content()
    page.screenshot(path=str(ARTIFACTS / "labels-tab-photo.png"), full_page=True)
    assert page.console_errors == []


def test_mistakes_are_told_in_words_and_the_tab_still_works(page):
    tab = panel(page, "labels")
    tab.get_by_role("textbox", name="Text").fill("My package never arrived.")
    tab.get_by_role("textbox", name="Labels").fill(", ".join(f"topic {i}" for i in range(51)))
    run_and_wait(page, "labels")
    assert "There are 51 labels; at most 50 can be scored at once" in message(page, "labels")
    assert page.locator("#message-labels [role=alert]").count() == 1

    tab.get_by_role("textbox", name="Labels").fill(LABELS)
    tab.get_by_role("button", name="Options").click()
    template = tab.get_by_role("textbox", name="Hypothesis template (texts)")
    template.fill("This text is about the topic.")
    template.blur()  # as a person's hand goes to Run (once, on a loaded CI machine, the run had the old template)
    page.wait_for_timeout(300)
    run_and_wait(page, "labels")
    assert "must contain {} where the label goes" in message(page, "labels")

    template.fill("This message is about {}.")
    run_and_wait(page, "labels")
    assert message(page, "labels") == ""
    assert tab.locator("[data-testid='label-output-value']").first.text_content().strip() in TICKET_LABELS
    tab.get_by_role("textbox", name="Labels").fill("shipping, billing, Shipping")
    template.fill("This text is about {}.")
    run_and_wait(page, "labels")
    assert "“shipping” and “Shipping” are the same label" in message(page, "labels")
    assert tab.locator("[data-testid='label-output-value']").first.text_content().strip() == "shipping"
    assert page.console_errors == []


def test_the_batch_tab_sorts_a_file_into_labels_and_exports_a_column_per_label(page, tmp_path):
    tickets = [*TICKETS][:5] + [""]
    source = tmp_path / "tickets.csv"
    pd.DataFrame({"id": range(1, len(tickets) + 1), "message": tickets}).to_csv(source, index=False)
    page.get_by_role("tab", name="Batch", exact=True).click()
    page.locator("#batch-run").wait_for(state="visible", timeout=60_000)
    page.locator("#batch-file input[type=file]").set_input_files(str(source))
    page.wait_for_function(
        "() => /\\d+ rows/.test(document.querySelector('#batch-info').textContent)", timeout=30_000
    )
    choose(page, page.locator("#batch-task input"), "Labels")
    labels = page.get_by_role("textbox", name="Labels")
    labels.wait_for(state="visible", timeout=10_000)
    assert page.locator("#batch-model input").input_value().startswith("Automatic")
    page.locator("#batch-run").click()  # no labels yet: told in words
    page.get_by_text("Type the labels to choose from").first.wait_for(timeout=30_000)
    labels.fill(LABELS)
    page.locator("#batch-run").click()
    page.wait_for_function(
        "() => document.querySelector('#batch-progress').textContent.includes('finished')", timeout=120_000
    )
    results = page.locator("#batch-results")
    for header in ("label", "score", *TICKET_LABELS, "note"):
        assert results.get_by_role("columnheader", name=header, exact=True).count() == 1, header
    assert "Rows by label" in page.locator("#batch-chart").text_content()
    page.screenshot(path=str(ARTIFACTS / "labels-batch.png"), full_page=True)

    with page.expect_download(timeout=30_000) as download:
        page.locator("#batch-download").click()
    saved = tmp_path / "downloaded.csv"
    download.value.save_as(saved)
    assert download.value.suggested_filename == "tickets-labels.csv"
    frame = pd.read_csv(saved, dtype=str, keep_default_na=False, encoding="utf-8-sig")
    assert list(frame.columns) == ["id", "message", "label", "score", *TICKET_LABELS, "note"]
    assert list(frame["label"][:5]) == [TICKETS[t] for t in tickets[:5]]
    assert "is empty" in frame["note"][5]
    # Back to another task: its own options, not Labels'.
    choose(page, page.locator("#batch-task input"), "Sentiment")
    page.wait_for_timeout(500)
    assert not labels.is_visible()
    assert re.search(r"\d+ / \d+ rows", page.locator("#batch-progress").text_content())
    assert page.console_errors == []
