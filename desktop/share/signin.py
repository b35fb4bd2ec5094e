"""What LAN visitors see around the app: a sign-in page that asks for the password only, and a page
that says so when the owner switches sharing off.

Gradio's own sign-in page asks for a user name, which means nothing here (any name works), and is
titled "Gradio". :class:`SignInPage` (ASGI middleware on the sharing server, inside the visitor
gate) answers ``GET /`` from a browser that is not signed in with Pipedesk's own page instead:
titled "Pipedesk on <this computer>", one password box. The page posts the password to Gradio's
own ``/login`` with the fixed name :data:`VISITOR_NAME`, so every sign-in still goes through the
visitor gate (counted before it is checked, one at a time, lockout; :mod:`desktop.share.gate`)
and Gradio's check, and Gradio's sign-in cookie keeps the visitor signed in.

A signed-in visitor's app page carries :func:`watcher` first in its body. Closing the sharing
server closes its listener, so an open page can only notice by a request that fails: the watcher
asks ``gradio_api/login_check`` every :data:`CHECK_EVERY_MS` (and at once when one of the page's
own requests fails). No answer: sharing was switched off (or this device lost the network), and
the app is replaced by a page that says so, in place of Gradio's reconnection messages; it keeps
asking, and reloads once the server answers again. An answer of 401 (a new password signed
everybody out): it reloads, to the sign-in page. Runs on the sharing server's event loop.
"""

from __future__ import annotations

import html
import json
import socket
from typing import Any

from desktop.server import gate as server_gate
from desktop.server.pages import InsertIntoPage

#: The user name every visitor signs in with (Gradio's sign-in wants one; the password is what counts).
VISITOR_NAME = "visitor"
CHECK_EVERY_MS = 1500
SWITCHED_OFF = "Sharing was switched off"
WRONG_PASSWORD = (
    "That is not the password: check it in Pipedesk's Sharing tab on that computer and try again."
)


def computer_name() -> str:
    """This computer's name as people know it (``mypc``, not ``mypc.example.lan``)."""
    name = socket.gethostname().strip() or "this computer"
    return name if name.replace(".", "").isdigit() else name.split(".")[0]


def title(computer: str) -> str:
    """The title of every page visitors see: ``Pipedesk on mypc``."""
    return f"Pipedesk on {computer}"


_PAGE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>@@TITLE@@</title>
<style>
  html, body { height: 100%; margin: 0; }
  body { display: flex; align-items: center; justify-content: center; background: #f9fafb; color: #1f2937;
    font: 16px/1.5 system-ui, -apple-system, "Segoe UI", Roboto, "DejaVu Sans", sans-serif; }
  main { width: min(26em, 100% - 2em); background: #fff; border: 1px solid #e5e7eb; border-radius: 12px;
    padding: 1.6em 1.8em; box-shadow: 0 1px 3px rgba(0, 0, 0, 0.06); }
  h1 { font-size: 1.5em; margin: 0 0 0.3em; }
  h1 span { color: #6366f1; }
  p { margin: 0 0 1em; color: #4b5563; }
  label { display: block; font-weight: 600; margin-bottom: 0.3em; }
  input { box-sizing: border-box; width: 100%; font: inherit; padding: 0.55em 0.7em; border: 1px solid #d1d5db;
    border-radius: 8px; }
  input:focus { outline: 2px solid #6366f1; outline-offset: 1px; border-color: #6366f1; }
  button { margin-top: 1em; width: 100%; font: inherit; font-weight: 600; padding: 0.6em; border: 0;
    border-radius: 8px; background: #6366f1; color: #fff; cursor: pointer; }
  button:disabled { opacity: 0.6; cursor: default; }
  #said { min-height: 1.5em; margin: 0.8em 0 0; color: #4b5563; }
  #said.refused { color: #b42318; }
</style>
</head>
<body>
<main>
  <h1>Pipe<span>desk</span> on @@COMPUTER@@</h1>
  <p>Type the password shown in Pipedesk's Sharing tab on @@COMPUTER@@.</p>
  <form id="sign-in">
    <label for="password">Password</label>
    <input id="password" name="password" type="password" autocomplete="current-password" required autofocus>
    <button type="submit">Sign in</button>
  </form>
  <p id="said" role="status" aria-live="polite"></p>
</main>
<script>
(function () {
  var form = document.getElementById("sign-in"), input = document.getElementById("password");
  var button = form.querySelector("button"), said = document.getElementById("said");
  function say(text, refused) { said.textContent = text; said.className = refused ? "refused" : ""; }
  form.addEventListener("submit", function (event) {
    event.preventDefault();
    button.disabled = true;
    say("Checking…", false);
    var body = new URLSearchParams({ username: @@VISITOR_NAME@@, password: input.value });
    fetch("login", { method: "POST", body: body, credentials: "same-origin" }).then(function (answer) {
      if (answer.ok) { location.replace("./"); return; }
      return answer.text().then(function (text) {
        say(answer.status === 400 ? @@WRONG_PASSWORD@@ : text, true);
        button.disabled = false;
        input.select();
      });
    }).catch(function () {
      say(@@NO_ANSWER@@, true);
      button.disabled = false;
    });
  });
})();
</script>
</body>
</html>
"""

_WATCHER = """<script>
(function () {
  var off = false, asking = false, again = null;
  function showOff() {
    if (off) return;
    off = true;
    var app = document.querySelector("gradio-app");
    if (app) app.remove();
    var page = document.createElement("main");
    page.id = "pd-switched-off";
    page.setAttribute("role", "alert");
    page.style.cssText = "position:fixed;inset:0;z-index:2147483647;display:flex;flex-direction:column;" +
      "align-items:center;justify-content:center;text-align:center;padding:2em;background:#f9fafb;" +
      "color:#1f2937;font:16px/1.5 system-ui,-apple-system,'Segoe UI',Roboto,'DejaVu Sans',sans-serif";
    var heading = document.createElement("h1");
    heading.textContent = @@SWITCHED_OFF@@;
    heading.style.cssText = "font-size:1.6em;margin:0 0 0.4em";
    page.appendChild(heading);
    @@LINES@@.forEach(function (line) {
      var p = document.createElement("p");
      p.textContent = line;
      p.style.cssText = "margin:0 0 0.6em;max-width:32em;color:#4b5563";
      page.appendChild(p);
    });
    document.body.appendChild(page);
    document.title = @@SWITCHED_OFF@@ + " · " + @@TITLE@@;
  }
  var ask = window.fetch.bind(window);
  function check() {
    if (asking) return;
    asking = true;
    ask("gradio_api/login_check", { cache: "no-store", credentials: "same-origin" }).then(function (answer) {
      asking = false;
      if (off || answer.status === 401) location.reload();
    }, function () {
      asking = false;
      showOff();
    });
  }
  window.fetch = function () {
    return ask.apply(window, arguments).catch(function (error) {
      clearTimeout(again);
      again = setTimeout(check, 0);
      throw error;
    });
  };
  setInterval(check, @@CHECK_EVERY_MS@@);
})();
</script>"""


def _filled(template: str, values: dict[str, str]) -> str:
    for name, value in values.items():  # no value can hold "@@" (a host name has no "@")
        template = template.replace(f"@@{name}@@", value)
    return template


def _js(value: Any) -> str:
    """``value`` as a JavaScript literal that is safe inside a ``<script>`` element."""
    return json.dumps(value).replace("<", "\\u003c")


def sign_in_page(computer: str) -> str:
    """The visitors' sign-in page for ``computer`` (see the module docstring)."""
    no_answer = f"{title(computer)} did not answer: sharing may have been switched off."
    return _filled(
        _PAGE,
        {
            "TITLE": html.escape(title(computer)),
            "COMPUTER": html.escape(computer),
            "VISITOR_NAME": _js(VISITOR_NAME),
            "WRONG_PASSWORD": _js(WRONG_PASSWORD),
            "NO_ANSWER": _js(no_answer),
        },
    )


def watcher(computer: str) -> str:
    """The script in a signed-in visitor's app page that notices sharing was switched off."""
    lines = [
        f"{title(computer)} is no longer shared with this device, or this device lost its connection to it.",
        "This page comes back by itself once it is shared again.",
    ]
    return _filled(
        _WATCHER,
        {
            "SWITCHED_OFF": _js(SWITCHED_OFF),
            "LINES": _js(lines),
            "TITLE": _js(title(computer)),
            "CHECK_EVERY_MS": str(CHECK_EVERY_MS),
        },
    )


class SignInPage:
    """ASGI middleware on the sharing server: Pipedesk's sign-in page for a browser that is not signed
    in, the watcher in the app's page for one that is (see the module docstring)."""

    def __init__(self, app: Any, computer: str) -> None:
        self.app = app
        self.page = sign_in_page(computer).encode("utf-8")
        self.signed_in = InsertIntoPage(app, watcher(computer))

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http" or scope.get("method") != "GET" or scope.get("path") != "/":
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers") or [])
        cookies = server_gate.cookies_of(headers.get(b"cookie", b"").decode("latin-1"))
        if server_gate.gradio_session(scope, cookies) is not False:  # signed in (or no password asked)
            await self.signed_in(scope, receive, send)
            return
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [
                    (b"content-type", b"text/html; charset=utf-8"),
                    (b"content-length", str(len(self.page)).encode()),
                    (b"cache-control", b"no-store"),
                ],
            }
        )
        await send({"type": "http.response.body", "body": self.page})
