"""Replicas of a public server: the public names they answer, sticky sessions behind nginx, a shared
read-only models folder.

Real ``pipedesk serve --public`` processes, the real Gradio server, ``gradio_client`` and Debian's
nginx (nginx-light); traffic to 127.0.0.1 only.
"""

from __future__ import annotations

import sys
import time

import httpx
import pytest

from desktop.cli import public
from desktop.errors import UserError
from desktop.server import gate, replica
from tests.support import cli_env, free_port, run_cli
from tests.test_deploy import SST2, STARS, Served

GPT2 = "openai-community/gpt2"


def _serve(port: int, *extra: str) -> list[str]:
    return [sys.executable, "-m", "desktop", "serve", "--public", "--port", str(port), *extra]


# --- the public names -----------------------------------------------------------------------------


def test_public_names_are_names_people_open():
    names = public.check_public_names(["Pipedesk.Example.org, tools.example.org:8443", "10.0.0.5"])
    assert names == {"pipedesk.example.org", "tools.example.org:8443", "10.0.0.5"}
    assert public.check_public_names(None) == frozenset()
    # IPv6 addresses as browsers write them in Host: in brackets, compressed, lower case.
    written = ["[2001:DB8:0:0::5]:8443", "2001:db8::7", "[2001:db8::9]"]
    assert public.check_public_names(written) == {"[2001:db8::5]:8443", "[2001:db8::7]", "[2001:db8::9]"}
    bad_names = ("https://pipedesk.example.org", "example.org/pipedesk", "*.example.org", "a:99999", "a b")
    bad_addresses = ("[2001:db8::5", "[2001:db8::5]8443", "[example.org]", "[2001:db8::5]:0", "2001:db8::zz")
    for bad in (*bad_names, *bad_addresses):
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
    # A server named by its IPv6 address answers Host headers as browsers send them for it.
    names = public.check_public_names(["2001:DB8::5", "[2001:db8::6]:8443"])
    options = gate.GateOptions(port=7861, hosts="named", names=names)
    for host in ("[2001:db8::5]", "[2001:db8::5]:443", "[2001:db8::6]:8443", "[::1]:7861"):
        assert gate.host_allowed(options, host), host
    for host in ("[2001:db8::6]", "[2001:db8::6]:443", "[2001:db8::7]", "2001:db8::5", "[::1]:80"):
        assert not gate.host_allowed(options, host), host
    assert gate.same_origin("https://[2001:db8::5]", "[2001:db8::5]"), "its own page may call it"
    assert not gate.same_origin("https://[2001:db8::7]", "[2001:db8::5]")


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
    names = ("--public-name", "pipedesk.example.org", "--public-name", "[2001:DB8::5]")
    command = _serve(port, "--model", SST2, *names, "--replica-id", "r1")
    served = Served(command, cli_env(pipedesk_home, hub))
    url = f"http://127.0.0.1:{port}"
    answers_only = "[2001:db8::5], pipedesk.example.org"
    try:
        served.wait_ready()
        assert f"Answers only at {answers_only}" in served.text
        with httpx.Client(timeout=60) as http:
            named = {"Host": "pipedesk.example.org"}
            page = http.get(f"{url}/", headers=named)
            assert page.status_code == 200
            # The sticky-session cookie, and the replica's name in every answer.
            assert page.headers["x-pipedesk-replica"] == "r1"
            assert page.cookies.get(replica.COOKIE) == "r1"
            assert (
                "secure" not in page.headers["set-cookie"].lower()
            )  # plain http: a Secure cookie would not come back
            # Behind a proxy that ends TLS: the cookie only ever travels over https.
            tls = httpx.get(
                f"{url}/", headers={**named, "X-Forwarded-Proto": "https"}, timeout=60
            )  # a new browser
            assert "; Secure" in tls.headers["set-cookie"]
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
            # Opened by its IPv6 address (the request itself goes to 127.0.0.1: only the Host says so).
            assert http.get(f"{url}/", headers={"Host": "[2001:db8::5]"}).status_code == 200
            others = (
                "evil.example",
                "pipedesk.example.org.evil.example",
                f"localhost:{port + 1}",
                "[2001:db8::6]",
            )
            for other in others:
                refused = http.get(f"{url}/", headers={"Host": other})
                assert refused.status_code == 403, other
                assert (
                    refused.text
                    == f"This Pipedesk server answers only at {answers_only}: open it through that address."
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


# --- a shared, read-only models folder -------------------------------------------------------------


def _tree(folder) -> dict[str, tuple[int, int]]:
    """Every file under ``folder``: its size and modification time."""
    return {
        str(path.relative_to(folder)): (path.stat().st_size, path.stat().st_mtime_ns)
        for path in sorted(folder.rglob("*"))
        if path.is_file()
    }


def test_a_read_only_store_refuses_every_write_in_words(tmp_path, pipedesk_home):
    from desktop.errors import ModelError
    from desktop.models import ModelRef, catalog
    from desktop.models.store import ModelStore

    shared = tmp_path / "shared"
    shared.mkdir()
    (shared / "catalog.json").write_text("{ damaged")
    store = ModelStore(shared, read_only=True)
    ref = ModelRef(SST2, "main")
    sentence = "is not installed in the shared models folder"
    with pytest.raises(ModelError, match=sentence):
        store.ensure(ref)
    with pytest.raises(ModelError, match=sentence):
        store.download(ref)
    for write in (
        lambda: store.remove(ref),
        lambda: store.repair(ref),
        lambda: catalog.add_custom(SST2, "sentiment", root=shared),
    ):
        with pytest.raises(ModelError, match="is shared read-only"):
            write()
    catalog.touch(SST2, shared)
    assert catalog.imported(shared) == {}  # a damaged catalog reads as empty, and is not moved aside
    assert sorted(p.name for p in shared.iterdir()) == ["catalog.json"]
    # A converted copy (Whisper's) is made in this process's own cache, not in the shared folder.
    assert not store.converted_copy(shared, "ct2").is_relative_to(shared)
    # Another store on another folder still writes.
    ModelStore(tmp_path / "own")
    catalog.add_custom(SST2, "sentiment", root=tmp_path / "own")
    assert SST2 in catalog.custom(tmp_path / "own")


def test_models_dir_must_be_a_folder(pipedesk_home, tmp_path):
    done = run_cli("serve", "--public", "--models-dir", str(tmp_path / "nowhere"), env=cli_env(pipedesk_home))
    assert done.returncode == 2 and "is not a folder: give the shared models folder's path" in done.stderr
    done = run_cli("serve", "--models-dir", str(tmp_path), env=cli_env(pipedesk_home))
    assert done.returncode == 2 and "--models-dir is for a public server" in done.stderr


@pytest.fixture
def shared_models(hub, tmp_path):
    """A models folder with the sentiment model installed (by another Pipedesk, which may write)."""
    installer = tmp_path / "installer"
    for model in (SST2, GPT2):
        done = run_cli("models", "download", model, env=cli_env(installer, hub))
        assert done.returncode == 0, done.stderr
    return installer / "cache" / "models"


@pytest.mark.slow
def test_a_replica_serves_a_shared_models_folder_without_writing_to_it(hub, tmp_path, shared_models):
    (shared_models / "usage.json").write_text("{}")  # every model unused: a use would be written
    before = _tree(shared_models)
    assert any("manifests" in name for name in before)
    env = cli_env(tmp_path / "replica", hub)
    # A model the folder lacks is refused in words, not downloaded into it.
    done = run_cli("serve", "--public", "--models-dir", str(shared_models), "--model", STARS, env=env)
    assert done.returncode == 2, done.stdout + done.stderr
    assert "is not installed in the shared models folder" in done.stderr
    port = free_port()
    served = Served(_serve(port, "--models-dir", str(shared_models), "--model", SST2), env)
    try:
        served.wait_ready()
        assert "read-only: nothing is downloaded into it" in served.text
        from gradio_client import Client

        client = Client(f"http://127.0.0.1:{port}/", verbose=False)
        for text in ("I love this!", "This is awful."):
            assert client.predict(text, SST2, api_name="/sentiment")["label"] in {"POSITIVE", "NEGATIVE"}
        ready = httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=30).json()
        assert ready["models"] == 2  # what the shared folder holds
    finally:
        served.stop()
    assert _tree(shared_models) == before
    assert not (tmp_path / "replica" / "cache" / "models" / "manifests").exists()


# --- sticky sessions behind nginx ----------------------------------------------------------------

#: The README's recipe, on loopback ports: a cookie names the replica that started the session;
#: no cookie (a new session) goes to the pool; a cookie whose replica is gone or stopping goes to
#: one other replica, the same one every time for that cookie (so a session moves once, whole).
STICKY_HTTP = """
    log_format replicas '$http_x_test_client|$cookie_pipedesk_replica|$upstream_addr|$status|$request';
    access_log {root}/access.log replicas;
    client_max_body_size 60m;
    upstream pipedesk_pool {
SERVERS
    }
    upstream pipedesk_moved {
        hash $cookie_pipedesk_replica consistent;
SERVERS
    }
    map $cookie_pipedesk_replica $pipedesk_backend {
        default pipedesk_pool;
IDS
    }
    server {
        listen 127.0.0.1:PORT;
        PASS_ON
        proxy_next_upstream error timeout http_502 http_503 non_idempotent;
        location / {
            proxy_pass http://$pipedesk_backend;
            proxy_intercept_errors on;
            error_page 502 503 504 = @moved;
        }
        location @moved {
            proxy_pass http://pipedesk_moved;
        }
    }
"""


#: The README's HAProxy recipe on loopback ports: HAProxy routes on the replicas' own cookie.
HAPROXY = """
defaults
    mode http
    timeout connect 5s
    timeout client 600s
    timeout server 600s
    retries 3
    option redispatch
frontend pipedesk_front
    bind 127.0.0.1:PORT
    default_backend pipedesk
backend pipedesk
    balance roundrobin
    cookie pipedesk_replica
    option httpchk GET /healthz
    http-check expect status 200
    retry-on conn-failure 503
SERVERS
"""


class Farm:
    """Three replicas (``r1``..``r3``) sharing one models folder, behind nginx (or HAProxy) at ``url``."""

    def __init__(self, root, hub, shared_models) -> None:
        self.root, self.front = root, free_port()
        self.ports = {rid: free_port() for rid in ("r1", "r2", "r3")}
        self.replicas: dict[str, Served] = {}
        self.proxy = None
        for rid, port in self.ports.items():
            command = _serve(port, "--models-dir", str(shared_models), "--replica-id", rid)
            command += ["--public-name", f"127.0.0.1:{self.front}", "--drain-seconds", "120"]
            self.replicas[rid] = Served(command, cli_env(root / rid, hub))
        self.url = f"http://127.0.0.1:{self.front}/"

    def start(self, balancer: str = "nginx") -> None:
        from tests.support.nginx import start_haproxy, start_nginx

        for served in self.replicas.values():
            served.wait_ready()
        if balancer == "haproxy":
            servers = "\n".join(
                f"    server {rid} 127.0.0.1:{p} check inter 1s fall 1 rise 2 cookie {rid}"
                for rid, p in self.ports.items()
            )
            config = HAPROXY.replace("SERVERS", servers).replace("PORT", str(self.front))
            self.proxy = start_haproxy(self.root / "haproxy", config, self.front)
            return
        servers = "\n".join(
            f"        server 127.0.0.1:{p} max_fails=1 fail_timeout=60s;" for p in self.ports.values()
        )
        ids = "\n".join(f"        {rid} 127.0.0.1:{p};" for rid, p in self.ports.items())
        http = STICKY_HTTP.replace("SERVERS", servers).replace("IDS", ids).replace("PORT", str(self.front))
        self.proxy = start_nginx(self.root / "nginx", http, self.front)

    def log(self) -> list[list[str]]:
        """[client, cookie, replica addresses, status, request] of every request nginx passed on."""
        lines = (self.root / "nginx" / "access.log").read_text().splitlines()
        return [line.split("|", 4) for line in lines]

    def stop(self) -> None:
        if self.proxy is not None:
            self.proxy.terminate()
            self.proxy.wait(timeout=20)
        for served in self.replicas.values():
            served.stop()


@pytest.fixture
def farm(hub, tmp_path, shared_models):
    """:class:`Farm`, started behind nginx; stopped after the test."""
    started = Farm(tmp_path, hub, shared_models)
    try:
        started.start()
        yield started
    finally:
        started.stop()


@pytest.mark.slow
def test_replicas_behind_haproxy_keep_sessions_and_survive_a_kill(hub, tmp_path, shared_models):
    """Each client (a cookie jar, as a browser) sends a REST call and reads its answer from the
    replica that took it; a replica killed drops out of HAProxy's checks and its clients move."""
    farm = Farm(tmp_path, hub, shared_models)
    try:
        farm.start("haproxy")
        clients = [httpx.Client(timeout=60) for _ in range(6)]

        def answered(http: httpx.Client) -> str:
            call = http.post(f"{farm.url}gradio_api/call/sentiment", json={"data": ["I love it!", SST2]})
            assert call.status_code == 200, call.text
            result = http.get(f"{farm.url}gradio_api/call/sentiment/{call.json()['event_id']}")
            assert "event: complete" in result.text, result.text  # the replica that took it answered
            assert result.headers["x-pipedesk-replica"] == call.headers["x-pipedesk-replica"]
            return call.headers["x-pipedesk-replica"]

        homes = [{answered(http) for _ in range(3)} for http in clients]
        assert all(len(home) == 1 for home in homes), homes
        assert {home.pop() for home in homes} == set(farm.ports)
        assert all(http.cookies[replica.COOKIE] for http in clients)

        killed = "r1"
        farm.replicas[killed].proc.kill()
        farm.replicas[killed].proc.wait(timeout=30)
        time.sleep(3)  # HAProxy's check (every second) marks it down
        for http in clients:
            assert answered(http) != killed and answered(http) != killed
    finally:
        farm.stop()


@pytest.mark.slow
def test_replicas_behind_nginx_keep_sessions_drain_and_survive_a_kill(farm):
    import signal
    import time

    from gradio_client import Client

    ports, replicas = farm.ports, farm.replicas

    def client(name: str) -> Client:
        return Client(farm.url, verbose=False, headers={"X-Test-Client": name})

    def positive(c: Client) -> bool:
        return c.predict("I love this!", SST2, api_name="/sentiment")["label"] in {"POSITIVE", "NEGATIVE"}

    # Every replica answers over a run; every session stays on the replica that started it.
    clients: dict[str, Client] = {}
    while len(clients) < 6 or {c.cookies[replica.COOKIE] for c in clients.values()} != set(ports):
        assert len(clients) < 12, {name: c.cookies for name, c in clients.items()}  # round robin
        clients[f"c{len(clients)}"] = client(f"c{len(clients)}")
    for _ in range(3):
        assert all(positive(c) for c in clients.values())
    home = {name: c.cookies[replica.COOKIE] for name, c in clients.items()}
    sticky = [row for row in farm.log() if row[0] in home and row[1] != "-"]
    for name, cookie, address, _status, _request in sticky:
        assert (cookie, address) == (home[name], f"127.0.0.1:{ports[cookie]}"), (name, sticky)
    joins = [row for row in sticky if "queue/join" in row[-1]]
    assert all(sum(row[0] == name for row in joins) == 3 for name in home), sticky  # every call

    # A draining replica finishes the request it accepted; new sessions go to the others.
    drained = home["c0"]
    job = clients["c0"].submit("Story: once upon a time", GPT2, 1000, 0.0, 1.0, -1, api_name="/generate")
    deadline = time.monotonic() + 60
    health = f"http://127.0.0.1:{ports[drained]}/healthz"
    while httpx.get(health, timeout=10).json()["requests"] == 0:
        assert time.monotonic() < deadline, "the generation never started"
        time.sleep(0.05)
    replicas[drained].proc.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + 10
    while httpx.get(health, timeout=10).status_code == 200:
        assert time.monotonic() < deadline, "still healthy after SIGTERM"
        time.sleep(0.05)
    newcomer = client("new1")
    assert positive(newcomer) and newcomer.cookies[replica.COOKIE] != drained
    assert job.result(timeout=180).startswith("Story")
    assert replicas[drained].proc.wait(timeout=60) == 0
    assert "Every running request finished." in replicas[drained].text

    # A killed replica drops out; the one left answers everybody, its sessions included.
    killed, left = sorted(set(ports) - {drained})
    replicas[killed].proc.kill()
    replicas[killed].proc.wait(timeout=30)
    with pytest.raises(httpx.TransportError):
        httpx.get(f"http://127.0.0.1:{ports[killed]}/healthz", timeout=10)
    for n in range(3):
        late = client(f"late{n}")
        assert positive(late) and late.cookies[replica.COOKIE] == left
    orphan = client("orphan")
    orphan.cookies[replica.COOKIE] = killed  # a session the killed replica had started moves, whole
    assert positive(orphan) and positive(orphan)
    assert httpx.get(f"http://127.0.0.1:{ports[left]}/healthz", timeout=10).status_code == 200


@pytest.mark.slow
@pytest.mark.browser
def test_people_in_browsers_stay_on_their_replica(farm, browser):
    """Each person's page, its scripts, its calls and its event stream all reach one replica."""
    from tests.support import ARTIFACTS
    from tests.support.pages import new_page, run_sentiment

    people = {}
    try:
        for n in range(3):
            context, page = new_page(browser, extra_http_headers={"X-Test-Client": f"person{n}"})
            people[f"person{n}"] = (context, page)
            page.goto(farm.url)
            run_sentiment(page, f"I love this product, says person {n}!")
            assert page.console_errors == []
        ARTIFACTS.mkdir(exist_ok=True)
        people["person2"][1].screenshot(path=str(ARTIFACTS / "replicas-behind-nginx.png"))
        homes = {}
        for name, (context, _page) in people.items():
            cookie = {c["name"]: c["value"] for c in context.cookies()}[replica.COOKIE]
            rows = [row for row in farm.log() if row[0] == name]
            assert len(rows) > 10 and {row[2] for row in rows} == {f"127.0.0.1:{farm.ports[cookie]}"}, rows
            homes[name] = cookie
        assert len(set(homes.values())) > 1, homes  # the pool spread the people
    finally:
        for context, _page in people.values():
            context.close()
