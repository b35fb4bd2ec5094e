"""Replicas of a public server: the public names they answer, sticky sessions behind nginx, a shared
read-only models folder.

Real ``pipedesk serve --public`` processes, the real Gradio server, ``gradio_client`` and Debian's
nginx (nginx-light); traffic to 127.0.0.1 only.
"""

from __future__ import annotations

import sys

import httpx
import pytest

from desktop.cli import public
from desktop.errors import UserError
from desktop.server import gate, replica
from tests.support import cli_env, free_port, run_cli
from tests.test_deploy import SST2, Served


def _serve(port: int, *extra: str) -> list[str]:
    return [sys.executable, "-m", "desktop", "serve", "--public", "--port", str(port), *extra]


# --- the public names -----------------------------------------------------------------------------


def test_public_names_are_names_people_open():
    names = public.check_public_names(["Pipedesk.Example.org, tools.example.org:8443", "10.0.0.5"])
    assert names == {"pipedesk.example.org", "tools.example.org:8443", "10.0.0.5"}
    assert public.check_public_names(None) == frozenset()
    for bad in ("https://pipedesk.example.org", "example.org/pipedesk", "*.example.org", "a:99999", "a b"):
        with pytest.raises(UserError, match="--public-name takes the name people open"):
            public.check_public_names([bad])


def test_a_named_gate_answers_its_names_and_its_own_loopback_only():
    options = gate.GateOptions(
        port=7861, hosts="named", names=frozenset({"pipedesk.example.org", "b.org:8443"})
    )
    for host in (
        "pipedesk.example.org",
        "pipedesk.example.org:443",
        "b.org:8443",
        "127.0.0.1:7861",
        "localhost:7861",
    ):
        assert gate.host_allowed(options, host), host
    for host in ("evil.example", "b.org", "b.org:443", "127.0.0.1:8080", "attacker.pipedesk.example.org", ""):
        assert not gate.host_allowed(options, host), host


def test_replica_ids_are_cookie_values():
    assert replica.check_id(" web1-7861 ") == "web1-7861"
    assert replica.default_id(7861).endswith("-7861")
    replica.check_id(replica.default_id(7861))
    for bad in ("", "a b", "-x", "a;b", "x" * 64):
        with pytest.raises(UserError, match="--replica-id must be"):
            replica.check_id(bad)


def test_public_name_and_replica_id_are_for_public_servers(pipedesk_home):
    env = cli_env(pipedesk_home)
    done = run_cli("serve", "--public-name", "pipedesk.example.org", env=env)
    assert done.returncode == 2 and "--public-name is for a public server" in done.stderr
    done = run_cli("serve", "--public", "--public-name", "https://x.org", env=env)
    assert done.returncode == 2 and "--public-name takes the name people open" in done.stderr
    done = run_cli("serve", "--public", "--replica-id", "a;b", env=env)
    assert done.returncode == 2 and "--replica-id must be" in done.stderr


@pytest.mark.slow
def test_a_public_server_answers_its_public_names_only(hub, pipedesk_home):
    port = free_port()
    command = _serve(port, "--model", SST2, "--public-name", "pipedesk.example.org", "--replica-id", "r1")
    served = Served(command, cli_env(pipedesk_home, hub))
    url = f"http://127.0.0.1:{port}"
    try:
        served.wait_ready()
        assert "Answers only at pipedesk.example.org" in served.text
        with httpx.Client(timeout=60) as http:
            named = {"Host": "pipedesk.example.org"}
            page = http.get(f"{url}/", headers=named)
            assert page.status_code == 200
            # The sticky-session cookie, and the replica's name in every answer.
            assert page.headers["x-pipedesk-replica"] == "r1"
            assert page.cookies.get(replica.COOKIE) == "r1"
            again = http.get(f"{url}/config", headers=named, cookies={replica.COOKIE: "r1"})
            assert again.status_code == 200 and "set-cookie" not in again.headers
            # A person's page at the public name runs a task (Origin = the public name).
            call = http.post(
                f"{url}/gradio_api/call/sentiment",
                json={"data": ["I love this!", SST2]},
                headers={**named, "Origin": "https://pipedesk.example.org"},
            )
            assert call.status_code == 200, call.text
            assert http.get(f"{url}/", headers={"Host": f"127.0.0.1:{port}"}).status_code == 200
            for other in ("evil.example", "pipedesk.example.org.evil.example", f"localhost:{port + 1}"):
                refused = http.get(f"{url}/", headers={"Host": other})
                assert refused.status_code == 403, other
                assert (
                    refused.text
                    == "This Pipedesk server answers only at pipedesk.example.org: open it through that address."
                )
            from_elsewhere = http.post(
                f"{url}/gradio_api/call/sentiment",
                json={"data": ["I love this!", SST2]},
                headers={**named, "Origin": "https://evil.example"},
            )
            assert from_elsewhere.status_code == 403
            # The balancer's health check names the replica's address: answered for any Host.
            assert http.get(f"{url}/healthz", headers={"Host": "10.1.2.3:8080"}).status_code == 200
    finally:
        served.stop()
