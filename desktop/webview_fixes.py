"""Fixes for pywebview's Qt backend, applied on the main thread before the window opens.

* pywebview 6.2's Qt download handler calls ``download.setPath``, which Qt 6 no
  longer has (``QWebEngineDownloadRequest`` has ``setDownloadDirectory`` and
  ``setDownloadFileName``), so Gradio's download buttons silently saved nothing.
  :func:`patch_qt` installs a handler that asks where to save and accepts.
* The Qt backend reads the storage path when its module is first imported;
  importing it here (to patch it) would freeze it at the default
  ``~/.pywebview``, so the path is set explicitly.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)


def _save_download(self: Any, download: Any) -> None:
    """Ask where to save a download (Qt 6 API), then accept it; cancel when the user does."""
    from qtpy.QtWidgets import QFileDialog

    name = download.suggestedFileName() or download.downloadFileName() or "download"
    folder = download.downloadDirectory() or str(Path.home())
    title = self.localization.get("global.saveFile", "Save file")
    path, _ = QFileDialog.getSaveFileName(self, title, str(Path(folder) / name))
    if not path:
        download.cancel()
        return
    target = Path(path)
    download.setDownloadDirectory(str(target.parent))
    download.setDownloadFileName(target.name)
    download.accept()
    log.info("Downloading %s to %s", name, target)


def patch_qt(storage_path: Path) -> list[Any]:
    """Patch the Qt backend (see the module docstring); return the screens as Qt sees them."""
    import webview.platforms.qt as qt

    qt._profile_storage_path = str(storage_path)
    request = getattr(qt, "QWebEngineDownloadRequest", None)
    if request is None:
        try:
            from qtpy.QtWebEngineCore import QWebEngineDownloadRequest as request
        except ImportError:  # Qt 5: pywebview's own handler works there
            request = None
    if request is not None and not hasattr(request, "setPath"):
        qt.BrowserView.on_download_requested = _save_download
    try:
        return list(qt.get_screens())
    except Exception:
        log.debug("Could not list the screens", exc_info=True)
        return []
