"""The list of imported and added models (desktop/models/catalog.py): a damaged one is never overwritten."""

from __future__ import annotations

import json

import pytest

from desktop import paths
from desktop.engine.start import local_door
from desktop.models import catalog
from tests.support import cli_env, run_cli

DAMAGED = b'{"imported": {"my-model": {"path": "imported/my-model", "task": "sentiment"'  # cut short


def test_a_damaged_catalog_is_kept_aside_not_overwritten(tmp_path):
    root = tmp_path / "models"
    root.mkdir()
    (root / "catalog.json").write_bytes(DAMAGED)
    catalog.add_custom("someone/new-model", "sentiment", root=root)  # reads, changes, writes
    assert (root / catalog.DAMAGED).read_bytes() == DAMAGED  # what could not be read is all there
    saved = json.loads((root / "catalog.json").read_text(encoding="utf-8"))
    assert list(saved["custom"]) == ["someone/new-model"]
    note = catalog.check(root)
    assert note and str(root / catalog.DAMAGED) in note and "import them again" in note
    (root / "catalog.json").write_bytes(b"[1, 2")  # damaged again: the first copy is kept too
    assert catalog.imported(root) == {}
    assert (root / catalog.DAMAGED).read_bytes() == DAMAGED
    assert (root / f"{catalog.DAMAGED}-2").read_bytes() == b"[1, 2"
    (root / catalog.DAMAGED).unlink()
    (root / f"{catalog.DAMAGED}-2").unlink()
    assert catalog.check(root) is None


def test_the_command_line_says_the_list_was_damaged(pipedesk_home):
    root = paths.default_models_dir()
    root.mkdir(parents=True)
    (root / "catalog.json").write_bytes(DAMAGED)
    done = run_cli("models", "list", env=cli_env(pipedesk_home, HF_HUB_OFFLINE="1"))
    assert done.returncode == 0, done.stderr
    assert "was damaged" in done.stderr and str(root / catalog.DAMAGED) in done.stderr
    assert (root / catalog.DAMAGED).read_bytes() == DAMAGED


@pytest.mark.browser
def test_the_models_tab_says_the_list_was_damaged(browser, runtime, tmp_path):
    from desktop import server
    from desktop.models import ModelStore
    from desktop.ui.app import build_app

    root = tmp_path / "models"
    root.mkdir()
    (root / "catalog.json").write_bytes(DAMAGED)
    own = type(runtime)(device="cpu", store=ModelStore(root))
    running = server.start(build_app(local_door(own)))
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    try:
        page.goto(running.url)
        page.get_by_role("tab", name="Models", exact=True).click(timeout=60_000)
        page.get_by_text("was damaged and could not be read").first.wait_for(timeout=30_000)
        assert (root / catalog.DAMAGED).read_bytes() == DAMAGED
    finally:
        page.close()
        running.stop()
