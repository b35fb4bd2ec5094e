"""Settings survive concurrent changes from different parts of the UI."""

from __future__ import annotations

import threading
from pathlib import Path

from desktop import settings


def test_concurrent_updates_of_different_settings_are_all_kept(tmp_path):
    barrier = threading.Barrier(3)

    def change(**values):
        barrier.wait()
        for _ in range(50):
            settings.update(**values)

    threads = [
        threading.Thread(target=change, kwargs={"models_dir": tmp_path / "models"}),
        threading.Thread(target=change, kwargs={"lan_password": "island-diamond-socket-nectar"}),
        threading.Thread(target=change, kwargs={"offline": True}),
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    saved = settings.load()
    assert saved.models_dir == Path(tmp_path / "models")
    assert saved.lan_password == "island-diamond-socket-nectar"
    assert saved.offline is True


def test_an_unreadable_settings_file_is_kept_aside_not_lost(pipedesk_home):
    settings.update(offline=True)
    path = settings.settings_file()
    path.write_text("{ not json", encoding="utf-8")
    assert settings.load().offline is False
    assert path.with_suffix(".json.bad").read_text(encoding="utf-8") == "{ not json"
