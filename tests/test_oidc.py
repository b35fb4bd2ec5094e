"""Sign-in through an identity provider (OpenID Connect) in front of a public server.

A real provider on loopback (``oidc-provider-mock``: Authlib's provider code), the real
``pipedesk serve --public --oidc-*`` process, httpx following the redirects as a browser does, and
Chromium for a person signing in. Traffic to 127.0.0.1 and localhost only.
"""

from __future__ import annotations

import asyncio
import base64
import html
import json
import re
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from desktop import logs
from desktop.errors import UserError
from desktop.share import oidc
from tests.support import cli_env, free_port, run_cli
from tests.support.oidc import id_token, provider
from tests.test_deploy import SST2, Served


@pytest.fixture
def issuer():
    with provider() as address:
        yield address


@pytest.fixture
def secret_file(tmp_path):
    path = tmp_path / "client-secret"
    path.write_text("a client secret the provider gave\n")
    return path


def _settings(issuer: str, secret_file, **extra) -> oidc.OidcSettings:
    settings = oidc.settings_from(issuer, "pipedesk", str(secret_file), **extra)
    assert settings is not None
    return settings


def test_the_options_are_checked_in_words(secret_file, tmp_path):
    assert oidc.settings_from(None, None, None) is None
    with pytest.raises(UserError, match="needs --oidc-issuer URL, --oidc-client-id ID and"):
        oidc.settings_from("https://id.example.org", None, str(secret_file))
    with pytest.raises(UserError, match="must be the provider's https:// address"):
        oidc.settings_from("http://id.example.org", "pipedesk", str(secret_file))
    with pytest.raises(UserError, match="could not be read"):
        oidc.settings_from("https://id.example.org", "pipedesk", str(tmp_path / "missing"))
    (tmp_path / "empty").write_text("\n")
    with pytest.raises(UserError, match="is empty"):
        oidc.settings_from("https://id.example.org", "pipedesk", str(tmp_path / "empty"))
    with pytest.raises(UserError, match="takes a domain such as example.org"):
        oidc.settings_from("https://id.example.org", "pipedesk", str(secret_file), "*.org")
    with pytest.raises(UserError, match="--oidc-session-minutes must be"):
        oidc.settings_from("https://id.example.org", "pipedesk", str(secret_file), session_minutes=0)
    settings = oidc.settings_from("https://id.example.org/", "pipedesk", str(secret_file), "@Example.org")
    assert settings == oidc.OidcSettings(
        "https://id.example.org", "pipedesk", "a client secret the provider gave", "example.org", 480 * 60
    )
    # Every replica given the same secret signs sessions with the same key; another secret, another key.
    again = oidc.settings_from("https://id.example.org", "pipedesk", str(secret_file))
    (tmp_path / "other").write_text("another secret")
    other = oidc.settings_from("https://id.example.org", "pipedesk", str(tmp_path / "other"))
    assert settings.cookie_key == again.cookie_key != other.cookie_key
    assert settings.client_secret not in settings.cookie_key


def test_whose_address_may_sign_in():
    assert oidc.person_allowed({"email": "Alice@Example.org"}, "example.org") == "alice@example.org"
    assert oidc.person_allowed({"email": "bob@other.org", "email_verified": True}, None) == "bob@other.org"
    with pytest.raises(UserError, match="mallory@other.org may not use this Pipedesk: it is open to people"):
        oidc.person_allowed({"email": "mallory@other.org"}, "example.org")
    with pytest.raises(UserError, match="did not give a verified e-mail address"):
        oidc.person_allowed({"email": "alice@example.org", "email_verified": False}, "example.org")
    with pytest.raises(UserError, match="did not give a verified e-mail address"):
        oidc.person_allowed({"sub": "12345"}, None)


def test_id_tokens_from_another_issuer_or_for_another_client_are_refused(issuer, secret_file):
    """The ID token check is Authlib's, with the options the sign-in uses: real tokens, signed by
    real providers."""
    from joserfc.errors import JoseError

    signin = oidc.OidcSignIn(app=None, settings=_settings(issuer, secret_file))

    def check(token: dict, nonce: str):
        # On a thread of its own: a browser test before this one leaves an event loop on this one.
        with ThreadPoolExecutor(1) as thread:
            parse = signin.client.parse_id_token
            return thread.submit(
                asyncio.run, parse(token, nonce, claims_options=signin.claims_options)
            ).result()

    assert (
        check(id_token(issuer, "pipedesk", "alice@example.org", "n1"), "n1")["email"] == "alice@example.org"
    )
    with pytest.raises(JoseError):  # the audience is another client
        check(id_token(issuer, "another-app", "alice@example.org", "n2"), "n2")
    with pytest.raises(JoseError):  # a replayed token: another sign-in's nonce
        check(id_token(issuer, "pipedesk", "alice@example.org", "n3"), "n4")
    with provider() as other, pytest.raises(JoseError):  # another issuer, with its own keys
        check(id_token(other, "pipedesk", "alice@example.org", "n5"), "n5")


def test_oidc_options_are_for_public_servers_and_exclude_a_password(pipedesk_home, secret_file):
    env = cli_env(pipedesk_home)
    oidc_args = ["--oidc-issuer", "https://id.example.org", "--oidc-client-id", "pipedesk"]
    oidc_args += ["--oidc-client-secret-file", str(secret_file)]
    done = run_cli("serve", *oidc_args, env=env)
    assert done.returncode == 2 and "--oidc-issuer is for a public server" in done.stderr
    done = run_cli("serve", "--public", "--auth", "alice:correct horse", *oidc_args, env=env)
    assert done.returncode == 2 and "are two ways to sign in: choose one" in done.stderr


def _serve_signed(issuer: str, secret_file, hub, home, *extra: str) -> tuple[Served, str]:
    port = free_port()
    command = [sys.executable, "-m", "desktop", "serve", "--public", "--port", str(port), "--model", SST2]
    command += ["--oidc-issuer", issuer, "--oidc-client-id", "pipedesk"]
    command += ["--oidc-client-secret-file", str(secret_file), *extra]
    served = Served(command, cli_env(home, hub))
    served.wait_ready()
    return served, f"http://127.0.0.1:{port}/"


def _sign_in(http: httpx.Client, url: str, email: str) -> httpx.Response:
    """Open the app as a browser does, and sign in at the provider as ``email``."""
    form = http.get(url, headers={"Accept": "text/html"})
    assert form.url.host == "localhost" and form.url.path == "/oauth2/authorize", form.url
    assert form.url.params["code_challenge_method"] == "S256" and form.url.params["code_challenge"]
    assert form.url.params["nonce"] and form.url.params["redirect_uri"] == f"{url}oidc/callback"
    return http.post(str(form.url), data={"sub": email})


def _provider_signout_link(page: str) -> str:
    found = re.search(r'<a href="([^"]+)">Sign out of your identity provider too</a>', page)
    assert found, page
    return html.unescape(found.group(1))


def _sentiment(http: httpx.Client, url: str) -> httpx.Response:
    return http.post(f"{url}gradio_api/call/sentiment", json={"data": ["I love this!", SST2]})


@pytest.mark.slow
def test_people_sign_in_run_and_sign_out_and_other_domains_are_refused(
    hub, pipedesk_home, issuer, secret_file
):
    served, url = _serve_signed(
        issuer, secret_file, hub, pipedesk_home, "--oidc-allowed-domain", "example.org"
    )
    try:
        assert f"Sign-in through {issuer} (OpenID Connect); only addresses at example.org" in served.text
        with httpx.Client(timeout=60) as through_tls:  # behind a proxy that ends TLS: a Secure session
            login = through_tls.get(f"{url}oidc/login", headers={"X-Forwarded-Proto": "https"})
            assert login.status_code == 302 and "; secure" in login.headers["set-cookie"].lower()
            assert (
                login.headers["location"].startswith(issuer)
                and "redirect_uri=https%3A%2F%2F" in login.headers["location"]
            )
        with httpx.Client(timeout=60) as stranger:
            refused = _sentiment(stranger, url)
            assert refused.status_code == 401 and refused.text == oidc.SIGN_IN_FIRST
            page = stranger.get(url, headers={"Accept": "text/html"})
            assert page.status_code == 303 and page.headers["location"] == f"{url}oidc/login?next=/"
            assert stranger.get(f"{url}healthz").status_code == 200  # the balancer needs no session
            assert stranger.get(f"{url}v1/models").status_code == 401

        with httpx.Client(timeout=60, follow_redirects=True) as alice:
            app = _sign_in(alice, url, "alice@example.org")
            assert app.status_code == 200 and str(app.url) == url and "gradio_config" in app.text
            cookie = next(r.headers["set-cookie"] for r in app.history if "oidc/callback" in str(r.url))
            assert cookie.startswith(f"{oidc.COOKIE}=") and "httponly" in cookie.lower()
            assert "samesite=lax" in cookie.lower() and "secure" not in cookie.lower()  # plain http here
            call = _sentiment(alice, url)
            assert call.status_code == 200, call.text
            result = alice.get(f"{url}gradio_api/call/sentiment/{call.json()['event_id']}")
            assert "event: complete" in result.text
            log = logs.log_file()  # the server's log (its INFO lines go to the file)
            deadline = time.monotonic() + 10
            while "Run by alice@example.org: sentiment" not in log.read_text():
                assert time.monotonic() < deadline, log.read_text()[-3000:]
                time.sleep(0.1)
            assert "alice@example.org signed in (OpenID Connect)" in log.read_text()
            bye = alice.get(f"{url}oidc/signout")
            assert bye.status_code == 200 and "You are signed out of this Pipedesk." in bye.text
            assert _sentiment(alice, url).status_code == 401
            # ... and may sign out of the provider too: its end-session page, her ID token as the hint.
            target = _provider_signout_link(bye.text)
            assert target.startswith(f"{issuer}/oauth2/end_session?")
            query = parse_qs(urlsplit(target).query)
            assert query["client_id"] == ["pipedesk"] and len(query["id_token_hint"]) == 1
            hint = query["id_token_hint"][0]
            claims = json.loads(base64.urlsafe_b64decode(hint.split(".")[1] + "=="))
            assert claims["email"] == "alice@example.org" and claims["iss"] == issuer
            ended = alice.get(target)
            assert ended.status_code == 200 and hint in ended.text  # the provider's own sign-out form
            again = _provider_signout_link(alice.get(f"{url}oidc/signout").text)
            assert "id_token_hint" not in again, "signed out already: no token left to hint with"

        with httpx.Client(timeout=60, follow_redirects=True) as mallory:
            answer = _sign_in(mallory, url, "mallory@other.org")
            assert answer.status_code == 403
            assert (
                "mallory@other.org may not use this Pipedesk: it is open to people with an address at example.org"
                in answer.text
            )
            assert _sentiment(mallory, url).status_code == 401
    finally:
        served.stop()


@pytest.mark.slow
def test_an_expired_session_is_sent_back_to_sign_in(hub, pipedesk_home, issuer, secret_file):
    served, url = _serve_signed(issuer, secret_file, hub, pipedesk_home, "--oidc-session-minutes", "0.05")
    try:
        with httpx.Client(timeout=60, follow_redirects=True) as alice:
            assert _sign_in(alice, url, "alice@example.org").status_code == 200
            assert _sentiment(alice, url).status_code == 200
            time.sleep(3.5)
            assert _sentiment(alice, url).status_code == 401
            again = alice.get(url, headers={"Accept": "text/html"})
            assert again.url.path == "/oauth2/authorize"  # back at the provider's sign-in
    finally:
        served.stop()


@pytest.mark.slow
@pytest.mark.browser
def test_a_person_signs_in_at_the_provider_runs_a_task_and_signs_out(
    hub, pipedesk_home, issuer, secret_file, browser
):
    from tests.support import ARTIFACTS
    from tests.support.pages import new_page, run_sentiment

    served, url = _serve_signed(
        issuer, secret_file, hub, pipedesk_home, "--oidc-allowed-domain", "example.org"
    )
    context, page = new_page(browser)
    try:
        page.goto(url)
        page.get_by_placeholder("sub").fill("alice@example.org")  # the provider's own sign-in form
        page.get_by_role("button", name="Authorize").click()
        page.get_by_role("tab", name="Sentiment", exact=True).wait_for(timeout=60_000)
        page.console_errors.clear()  # the provider's page asks for a stylesheet on the internet
        page.reload()
        run_sentiment(page, "I love this product!")
        assert page.url == url and page.locator("#pd-signed-in").inner_text().startswith("alice@example.org")
        ARTIFACTS.mkdir(exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / "oidc-signed-in.png"))
        assert page.console_errors == []
        page.get_by_role("link", name="Sign out").click()
        page.get_by_role("heading", name="Signed out").wait_for()
        page.screenshot(path=str(ARTIFACTS / "oidc-signed-out.png"))
        page.get_by_role("link", name="Sign out of your identity provider too").click()
        page.get_by_role("heading", name="End Session").wait_for()  # the provider's own page
        assert "id_token_hint" in page.content(), "the provider was told whose session ends"
        page.get_by_role("button", name="End session").click()
        page.goto(url)
        page.get_by_placeholder("sub").wait_for()  # back at the provider
    finally:
        context.close()
        served.stop()


@pytest.mark.slow
def test_a_session_moves_to_another_replica_signed_in(hub, pipedesk_home, issuer, secret_file, tmp_path):
    """Replicas given the same client secret accept each other's sessions (a session whose replica
    stopped moves to another one), and a replica with another secret does not."""
    first, url = _serve_signed(issuer, secret_file, hub, pipedesk_home)
    second, other_url = _serve_signed(issuer, secret_file, hub, tmp_path / "second")
    try:
        with httpx.Client(timeout=60, follow_redirects=True) as alice:
            assert _sign_in(alice, url, "alice@example.org").status_code == 200
            assert _sentiment(alice, other_url).status_code == 200
        (tmp_path / "other-secret").write_text("another secret")
        second.stop()
        second, other_url = _serve_signed(issuer, tmp_path / "other-secret", hub, tmp_path / "second")
        with httpx.Client(timeout=60, follow_redirects=True) as alice:
            assert _sign_in(alice, url, "alice@example.org").status_code == 200
            assert _sentiment(alice, other_url).status_code == 401
    finally:
        first.stop()
        second.stop()
