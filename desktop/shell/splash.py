"""The window's one loading screen: the same splash from the window's first frame until the app has painted.

The splash is defined here once (words, colours, sizes) and drawn three ways: by Qt itself in
the window's first frames (:mod:`desktop.shell.cover`), as the window's first page
(:func:`loading_page`, while the heavy imports run and the server starts), and over the app's
page (:func:`middleware` on the window's server puts it first in the page's body,
:mod:`desktop.server.pages`). So the first thing the app's page draws is the splash again, and Gradio's own "Loading…"
and the half-built page stay under it. The page lifts it only once the app has loaded its first
values (:data:`READY_EVENT`, sent by the app's load events), its fonts are ready and two frames
have been drawn; then it tells the window through pywebview's JS API (``page_shown``) and sets
the performance marks :data:`SHOWN_MARK` and :data:`PAINTED_MARK` (``benchmarks/startup.py``
reads them). If the app never says so, the splash goes :data:`LIFT_AFTER_RENDER_MS` after Gradio
has rendered, or after :data:`LIFT_ANYWAY_MS` in any case, so an error Gradio shows is never
hidden. Each page logs :data:`DRAWN` once it has drawn its first frame: the cover waits for it.

Everything here runs on the main or loader thread.
"""

from __future__ import annotations

import json
from typing import Any

from desktop import assets

READY_EVENT = assets.PAGE_READY_EVENT
#: The console message a page with the splash logs once its first frame is drawn.
DRAWN = "pipedesk:splash-drawn"
#: The step the splash shows while the app's page loads (the loading page's last step too).
OPENING = "Opening Pipedesk…"
#: The performance marks the app's page sets when the splash is lifted, and once that was drawn.
SHOWN_MARK = "pipedesk-page-shown"
PAINTED_MARK = "pipedesk-page-painted"
LIFT_AFTER_RENDER_MS = 8000
LIFT_ANYWAY_MS = 60000

TAGLINE = "Hugging Face models on your own computer."
HINT = "The first start takes a few seconds while the app loads."
GRADIENT = ("#f7f8fc", "#eef0fb")  # top left to bottom right
TEXT = "#2b2f45"
HINT_TEXT = "#676a7c"  # the text colour at 70% over the background
ACCENT = "#6366f1"
RING = ("#dfe2f5", ACCENT)  # the spinner's ring and its moving quarter
#: The window's own colour behind its page.
BACKGROUND = GRADIENT[0]

_STYLE = """
#pd-splash {
  position: fixed; inset: 0; z-index: 2147483647; margin: 0; padding: 0; box-sizing: border-box;
  display: flex; align-items: center; justify-content: center; text-align: center;
  background: linear-gradient(160deg, GRADIENT0 0%, GRADIENT1 100%); color: TEXT;
  font: 16px/1.5 system-ui, -apple-system, "Segoe UI", Roboto, "DejaVu Sans", sans-serif;
}
#pd-splash .pd-box { max-width: 34em; padding: 2em; box-sizing: border-box; }
#pd-splash .pd-title { font-size: 35px; font-weight: 700; line-height: 1.2; margin: 0 0 0.2em; }
#pd-splash .pd-title span { color: ACCENT; }
#pd-splash p { margin: 0.4em 0; padding: 0; font-size: 16px; line-height: 1.5; }
#pd-splash .pd-spinner {
  width: 42px; height: 42px; margin: 22px auto 16px; border-radius: 50%; box-sizing: content-box;
  border: 4px solid RING0; border-top-color: RING1; animation: pd-spin 0.9s linear infinite;
}
@keyframes pd-spin { to { transform: rotate(360deg); } }
#pd-splash #pd-step { font-weight: 600; }
#pd-splash #pd-hint { color: HINT_TEXT; font-size: 15px; }
#pd-splash.pd-error .pd-spinner { display: none; }
#pd-splash.pd-error #pd-step { color: #b42318; }
#pd-splash pre { text-align: left; white-space: pre-wrap; background: #fff; border: 1px solid #e2e4f0;
  border-radius: 8px; padding: 0.8em; font-size: 0.85em; margin: 0.6em 0 0; }
"""

_MARKUP = """<div id="pd-splash" role="status" aria-live="polite"><style>STYLE</style>
<div class="pd-box">
  <div class="pd-title" role="heading" aria-level="1">Pipe<span>desk</span></div>
  <p>TAGLINE</p>
  <div class="pd-spinner" aria-hidden="true"></div>
  <p id="pd-step">STEP</p>
  <p id="pd-hint">HINT</p>
</div></div>
<script>requestAnimationFrame(function () { requestAnimationFrame(function () { console.log(DRAWN); }); });</script>
"""

_LOADING_SCRIPT = """<script>
  function setStep(text) { document.getElementById("pd-step").textContent = text; }
  function showError(text, details) {
    document.getElementById("pd-splash").classList.add("pd-error");
    setStep(text);
    var hint = document.getElementById("pd-hint");
    hint.textContent = "";
    if (details) {
      var pre = document.createElement("pre");
      pre.textContent = details;
      hint.appendChild(pre);
    }
  }
</script>"""

_LIFT_SCRIPT = """<script>
(function () {
  var splash = document.getElementById("pd-splash");
  if (!splash) return;
  var lifted = false;
  function tell(how) {
    var send = function () {
      try { window.pywebview.api.page_shown(how, Math.round(performance.now())); } catch (e) {}
    };
    if (window.pywebview && window.pywebview.api && window.pywebview.api.page_shown) send();
    else window.addEventListener("pywebviewready", send, { once: true });
  }
  function lift(how) {
    if (lifted) return;
    lifted = true;
    splash.remove();
    performance.mark(SHOWN_MARK);
    requestAnimationFrame(function () {
      requestAnimationFrame(function () { performance.mark(PAINTED_MARK); tell(how); });
    });
  }
  function whenDrawn(how) {
    var fonts = document.fonts ? document.fonts.ready : Promise.resolve();
    fonts.then(function () {
      requestAnimationFrame(function () { requestAnimationFrame(function () { lift(how); }); });
    });
  }
  document.addEventListener(READY_EVENT, function () { whenDrawn("ready"); });
  document.addEventListener("render", function () {
    setTimeout(function () { whenDrawn("rendered"); }, LIFT_AFTER_RENDER_MS);
  }, { once: true, capture: true });
  setTimeout(function () { lift("timeout"); }, LIFT_ANYWAY_MS);
})();
</script>"""


def _filled(template: str, values: dict[str, Any]) -> str:
    for name, value in values.items():  # upper-case names; no value holds a later name
        template = template.replace(name, value if isinstance(value, str) else json.dumps(value))
    return template


def _fragment(step: str) -> str:
    style = _filled(
        _STYLE,
        {"GRADIENT0": GRADIENT[0], "GRADIENT1": GRADIENT[1], "HINT_TEXT": HINT_TEXT, "TEXT": TEXT}
        | {"ACCENT": ACCENT, "RING0": RING[0], "RING1": RING[1]},
    )
    return _filled(
        _MARKUP, {"STYLE": style, "TAGLINE": TAGLINE, "STEP": step, "HINT": HINT, "DRAWN": json.dumps(DRAWN)}
    )


def loading_page() -> str:
    """The window's first page: the splash alone, with ``setStep``/``showError`` for the loader."""
    return (
        '<!doctype html><html lang="en"><head><meta charset="utf-8"><title>Pipedesk</title></head>'
        '<body style="margin:0">' + _fragment("Starting…") + _LOADING_SCRIPT + "</body></html>"
    )


def app_fragment() -> str:
    """The splash as the app's page carries it, with the script that lifts it (see the module doc)."""
    names = {
        "SHOWN_MARK": SHOWN_MARK,
        "PAINTED_MARK": PAINTED_MARK,
        "READY_EVENT": READY_EVENT,
        "LIFT_AFTER_RENDER_MS": LIFT_AFTER_RENDER_MS,
        "LIFT_ANYWAY_MS": LIFT_ANYWAY_MS,
    }
    return _fragment(OPENING) + _filled(_LIFT_SCRIPT, {k: json.dumps(v) for k, v in names.items()})


def middleware() -> Any:
    """The window's server's middleware that lays the splash over the app's page."""
    from starlette.middleware import Middleware

    from desktop.server.pages import InsertIntoPage

    return Middleware(InsertIntoPage, fragment=app_fragment())
