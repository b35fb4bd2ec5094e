"""Workbooks the tests hand in (built with openpyxl, in the test's own folder)."""

from __future__ import annotations

from pathlib import Path


def shop_workbook(path: Path) -> Path:
    """A workbook whose first sheet holds numbers ("Summary"), then "Reviews" (id, review: two
    texts) and "Notes" (one text): the sheet with text is not the first."""
    from openpyxl import Workbook

    book = Workbook()
    book.active.title = "Summary"
    book.active.append(["month", "orders"])
    book.active.append([1, 120])
    reviews = book.create_sheet("Reviews")
    for row in (["id", "review"], [1, "I love this product!"], [2, "This is terrible, I hate it."]):
        reviews.append(row)
    notes = book.create_sheet("Notes")
    for row in (["note"], ["Call the supplier about the broken boxes."]):
        notes.append(row)
    book.save(path)
    return path
