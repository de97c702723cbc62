"""GuardedLinkContentFetcher against real HTTP servers on 127.0.0.1.

A server on 127.0.0.1 that the test allowlists stands in for a public host; every refusal test also
asserts that the server behind the refused address received no request at all.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from haystack import Pipeline
from haystack.core.errors import PipelineRuntimeError
from haystack.core.serialization import component_from_dict, component_to_dict

from nodes.errors import NodeInputError, UnsafeURLError
from nodes.fetchers import (
    GuardedLinkContentFetcher,
    ResponseTooLarge,
    _Guard,
    _parse_entry,
    _PinnedBackend,
    check_outbound_url,
)
from stackyard.settings import reset_settings_cache


@dataclass
class Server:
    """A real HTTP server: ``routes`` maps a path to (status, headers, body); it records every request."""

    routes: dict[str, tuple[int, dict[str, str], bytes]]
    requests: list[str] = field(default_factory=list)
    port: int = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


@pytest.fixture
def serve() -> Iterator[Callable[..., Server]]:
    servers: list[ThreadingHTTPServer] = []

    def start(routes: dict[str, tuple[int, dict[str, str], bytes]] | None = None) -> Server:
        server = Server(routes=routes or {"/": (200, {"Content-Type": "text/plain"}, b"hello")})

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802
                server.requests.append(self.path)
                status, headers, body = server.routes.get(self.path, (404, {}, b"not found"))
                self.send_response(status)
                for name, value in headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                pass

        httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        server.port = httpd.server_address[1]
        threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
        servers.append(httpd)
        return server

    yield start
    for httpd in servers:
        httpd.shutdown()
        httpd.server_close()


@pytest.fixture(autouse=True)
def no_env_allowlist(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.delenv("STACKYARD_FETCH_ALLOWED_HOSTS", raising=False)
    reset_settings_cache()
    yield
    reset_settings_cache()


def redirect(location: str) -> tuple[int, dict[str, str], bytes]:
    return 302, {"Location": location}, b""


# --- refusals of the URL itself -------------------------------------------------------------------

@pytest.mark.parametrize(("template", "address"), [
    ("http://127.0.0.1:{port}/", "127.0.0.1"),
    ("http://localhost:{port}/", "127.0.0.1"),
    ("http://[::1]:{port}/", "::1"),
    ("http://[::ffff:127.0.0.1]:{port}/", "::ffff:7f00:1"),
    ("http://0x7f.1:{port}/", "127.0.0.1"),
    ("http://2130706433:{port}/", "127.0.0.1"),
    ("http://169.254.169.254/latest/meta-data/", "169.254.169.254"),
    ("http://[fd00:ec2::254]/", "fd00:ec2::254"),
    ("http://metadata.google.internal/computeMetadata/v1/", "metadata.google.internal"),
    ("http://10.0.0.1/", "10.0.0.1"),
    ("http://172.16.5.4/", "172.16.5.4"),
    ("http://192.168.1.1/", "192.168.1.1"),
    ("http://0.0.0.0:{port}/", "0.0.0.0"),
    ("http://224.0.0.1/", "224.0.0.1"),
    ("http://[fe80::1]/", "fe80::1"),
])
def test_non_public_addresses_are_refused_before_any_request(serve, template: str, address: str) -> None:
    server = serve()
    url = template.format(port=server.port)

    with pytest.raises(UnsafeURLError) as caught:
        GuardedLinkContentFetcher(retry_attempts=0).run(urls=[url])

    error = caught.value
    assert (error.url, error.field) == (url, "urls")
    if error.address != "::1":  # localhost may resolve to ::1 first
        assert error.address == address
    assert url in str(error) and "STACKYARD_FETCH_ALLOWED_HOSTS" in str(error)
    assert server.requests == []


@pytest.mark.parametrize("url", ["file:///etc/passwd", "ftp://example.com/file.txt", "gopher://example.com/",
                                 "example.com/no-scheme", "http:///no-host"])
def test_other_schemes_are_refused(url: str) -> None:
    with pytest.raises(UnsafeURLError, match="only http:// and https://") as caught:
        GuardedLinkContentFetcher().run(urls=[url])
    assert caught.value.url == url


def test_every_url_is_checked_before_any_is_fetched(serve) -> None:
    public = serve()
    fetcher = GuardedLinkContentFetcher(allowed_hosts=[f"127.0.0.1:{public.port}"])

    with pytest.raises(UnsafeURLError):
        fetcher.run(urls=[f"{public.url}/", "http://10.0.0.1/"])
    assert public.requests == []


# --- redirects -------------------------------------------------------------------------------------

@pytest.mark.parametrize("target", ["http://localhost:{inner}/secret", "http://169.254.169.254/latest/meta-data/",
                                    "http://127.0.0.1:{inner}/secret", "file:///etc/passwd"])
def test_a_redirect_to_a_non_public_address_is_refused_and_never_requested(serve, target: str) -> None:
    inner = serve({"/secret": (200, {"Content-Type": "text/plain"}, b"secret")})
    location = target.format(inner=inner.port)
    public = serve({"/": redirect(location)})
    fetcher = GuardedLinkContentFetcher(allowed_hosts=[f"127.0.0.1:{public.port}"], retry_attempts=0)

    with pytest.raises(UnsafeURLError) as caught:
        fetcher.run(urls=[f"{public.url}/"])

    # httpx gives a host-less redirect target the previous host: file:///x arrives as file://127.0.0.1/x
    assert caught.value.url.split("/")[3:] == location.split("/")[3:]
    assert f"while fetching {public.url}/" in str(caught.value)
    assert public.requests == ["/"]
    assert inner.requests == []


def test_a_refused_redirect_raises_even_among_several_urls(serve) -> None:
    inner = serve()
    public = serve({"/ok": (200, {"Content-Type": "text/plain"}, b"fine"), "/bad": redirect(f"http://localhost:{inner.port}/")})
    fetcher = GuardedLinkContentFetcher(allowed_hosts=[f"127.0.0.1:{public.port}"], retry_attempts=0)

    with pytest.raises(UnsafeURLError):
        fetcher.run(urls=[f"{public.url}/ok", f"{public.url}/bad"])
    assert inner.requests == []


def test_a_redirect_between_allowed_hosts_is_followed(serve) -> None:
    second = serve({"/page": (200, {"Content-Type": "text/plain"}, b"after redirect")})
    first = serve({"/": redirect(f"{second.url}/page")})
    fetcher = GuardedLinkContentFetcher(allowed_hosts=[f"127.0.0.1:{first.port}", f"127.0.0.1:{second.port}"])

    streams = fetcher.run(urls=[f"{first.url}/"])["streams"]

    assert [stream.data for stream in streams] == [b"after redirect"]
    assert (first.requests, second.requests) == (["/"], ["/page"])


def test_redirect_hops_are_bounded(serve) -> None:
    import httpx

    hops = serve({f"/{i}": redirect(f"/{i + 1}") for i in range(10)})
    fetcher = GuardedLinkContentFetcher(allowed_hosts=[f"127.0.0.1:{hops.port}"], max_redirects=3, retry_attempts=0)

    with pytest.raises(httpx.TooManyRedirects):
        fetcher.run(urls=[f"{hops.url}/0"])
    assert hops.requests == ["/0", "/1", "/2", "/3"]


# --- allowed fetches -------------------------------------------------------------------------------

def test_an_allowlisted_server_is_fetched(serve) -> None:
    server = serve({"/doc": (200, {"Content-Type": "text/plain; charset=utf-8"}, "héllo".encode())})
    fetcher = GuardedLinkContentFetcher(allowed_hosts=[f"127.0.0.1:{server.port}"])

    (stream,) = fetcher.run(urls=[f"{server.url}/doc"])["streams"]

    assert stream.data == "héllo".encode()
    assert stream.mime_type == "text/plain"
    assert stream.meta == {"content_type": "text/plain", "url": f"{server.url}/doc"}


def test_the_settings_allowlist_applies_and_the_parameter_extends_it(serve, monkeypatch: pytest.MonkeyPatch) -> None:
    from_env, from_param = serve(), serve({"/": (200, {"Content-Type": "text/plain"}, b"param")})
    monkeypatch.setenv("STACKYARD_FETCH_ALLOWED_HOSTS", f"127.0.0.1:{from_env.port}, example.invalid")
    reset_settings_cache()
    fetcher = GuardedLinkContentFetcher(allowed_hosts=[f"127.0.0.1:{from_param.port}"])

    streams = fetcher.run(urls=[f"{from_env.url}/", f"{from_param.url}/"])["streams"]

    assert [stream.data for stream in streams] == [b"hello", b"param"]


def test_an_address_entry_with_a_port_admits_only_that_port(serve) -> None:
    allowed, other = serve(), serve()
    fetcher = GuardedLinkContentFetcher(allowed_hosts=[f"127.0.0.1:{allowed.port}"])

    with pytest.raises(UnsafeURLError):
        fetcher.run(urls=[f"{other.url}/"])
    assert other.requests == []


@pytest.mark.parametrize("entry", ["127.0.0.0/8", "127.0.0.1", "LOCALHOST", "localhost:{port}"])
def test_cidr_address_and_host_name_entries(serve, entry: str) -> None:
    server = serve()
    fetcher = GuardedLinkContentFetcher(allowed_hosts=[entry.format(port=server.port)])
    host = "localhost" if "localhost" in entry.lower() else "127.0.0.1"

    (stream,) = fetcher.run(urls=[f"http://{host}:{server.port}/"])["streams"]
    assert stream.data == b"hello"


def test_failures_other_than_refusals_follow_link_content_fetcher(serve) -> None:
    server = serve()
    allowed = [f"127.0.0.1:{server.port}"]
    urls = [f"{server.url}/", f"{server.url}/missing"]

    skipped = GuardedLinkContentFetcher(allowed_hosts=allowed, retry_attempts=0).run(urls=urls)["streams"]
    empty = GuardedLinkContentFetcher(allowed_hosts=allowed, retry_attempts=0, raise_on_failure=False).run(urls=urls)["streams"]

    assert [stream.data for stream in skipped] == [b"hello"]
    assert [(stream.data, stream.meta["url"]) for stream in empty] == [(b"hello", urls[0]), (b"", urls[1])]


def test_bad_allowlist_entries_are_reported_with_the_field() -> None:
    with pytest.raises(NodeInputError, match="not a host, host:port") as caught:
        GuardedLinkContentFetcher(allowed_hosts=["wiki:notaport"])
    assert caught.value.field == "allowed_hosts"


def test_the_connection_itself_goes_only_to_checked_addresses(serve) -> None:
    # The connect-time check that pins the IP: a name that passed the URL check and then resolved to a
    # refused address (DNS rebinding) never gets a socket.
    server = serve()

    with pytest.raises(UnsafeURLError, match="resolves to"):
        _PinnedBackend(_Guard([])).connect_tcp("localhost", server.port)
    allowed = _PinnedBackend(_Guard([_parse_entry(f"127.0.0.1:{server.port}", "test")]))
    allowed.connect_tcp("localhost", server.port).close()
    assert server.requests == []


# --- serialization ---------------------------------------------------------------------------------

def test_round_trips_through_haystack_serialization() -> None:
    fetcher = GuardedLinkContentFetcher(allowed_hosts=["wiki.internal"], timeout=7, max_redirects=2)

    data = component_to_dict(fetcher, "fetch")
    restored = component_from_dict(GuardedLinkContentFetcher, data, "fetch")

    assert data == {"type": "nodes.fetchers.GuardedLinkContentFetcher", "init_parameters": {
        "allowed_hosts": ["wiki.internal"], "raise_on_failure": True, "user_agents": None,
        "retry_attempts": 2, "timeout": 7, "max_redirects": 2, "max_bytes": 50_000_000}}
    assert component_to_dict(restored, "fetch") == data


def test_runs_in_a_pipeline_loaded_from_yaml(serve) -> None:
    server = serve()
    pipeline = Pipeline()
    pipeline.add_component("fetch", GuardedLinkContentFetcher(allowed_hosts=[f"127.0.0.1:{server.port}"]))

    loaded = Pipeline.loads(pipeline.dumps(), allowed_modules=["nodes"])
    result = loaded.run({"fetch": {"urls": [f"{server.url}/"]}})
    assert [stream.data for stream in result["fetch"]["streams"]] == [b"hello"]

    with pytest.raises(PipelineRuntimeError) as caught:
        loaded.run({"fetch": {"urls": ["http://169.254.169.254/"]}})
    assert isinstance(caught.value.__cause__, UnsafeURLError)


def test_a_response_longer_than_max_bytes_is_not_read(serve) -> None:
    server = serve({"/big": (200, {"Content-Type": "text/plain"}, b"x" * 5000),
                    "/small": (200, {"Content-Type": "text/plain"}, b"x" * 500)})
    fetcher = GuardedLinkContentFetcher(allowed_hosts=[f"127.0.0.1:{server.port}"], max_bytes=1000, retry_attempts=0)
    assert [len(s.data) for s in fetcher.run(urls=[f"{server.url}/small"])["streams"]] == [500]
    with pytest.raises(ResponseTooLarge, match="is 5,000 bytes; a fetch reads at most 1,000"):
        fetcher.run(urls=[f"{server.url}/big"])


def test_a_compressed_or_endless_response_is_refused_rather_than_counted_wrong(serve, monkeypatch) -> None:
    import gzip

    from nodes import fetchers

    bomb = gzip.compress(b"x" * 200_000)          # 200 KB inflated, a few hundred bytes sent
    server = serve({"/bomb": (200, {"Content-Type": "text/plain", "Content-Encoding": "gzip"}, bomb),
                    "/slow": (200, {"Content-Type": "text/plain"}, b"x" * 500)})
    fetcher = GuardedLinkContentFetcher(allowed_hosts=[f"127.0.0.1:{server.port}"], max_bytes=1000, retry_attempts=0)
    with pytest.raises(ResponseTooLarge, match="gzip-compressed although it was asked for an uncompressed body"):
        fetcher.run(urls=[f"{server.url}/bomb"])
    monkeypatch.setattr(fetchers, "FETCH_DEADLINE_SECONDS", 0.0)
    with pytest.raises(ResponseTooLarge, match="was still sending after 0 s"):
        fetcher.run(urls=[f"{server.url}/slow"])


# --- other outbound URLs (an LLM server's api_base_url) --------------------------------------------

@pytest.mark.parametrize(("url", "reason"), [
    ("http://169.254.169.254/v1", "cloud metadata"),
    ("http://127.0.0.1:11434/v1", "loopback"),
    ("http://localhost:11434/v1", "loopback"),
    ("http://ollama.localhost:11434/v1", "names this machine"),  # not in DNS, loopback by definition
    ("ftp://example.com/v1", "only http:// and https://"),
])
def test_outbound_urls_are_refused_with_the_field_they_came_from(url: str, reason: str) -> None:
    with pytest.raises(UnsafeURLError, match=reason) as caught:
        check_outbound_url(url, field="api_base_url", offline_ok=True)
    assert (caught.value.field, caught.value.url) == ("api_base_url", url)


def test_an_unresolvable_host_passes_only_when_offline_is_tolerated() -> None:
    check_outbound_url("http://llm.invalid/v1", field="api_base_url", offline_ok=True)
    with pytest.raises(UnsafeURLError, match="does not resolve") as caught:
        check_outbound_url("http://llm.invalid/v1", field="api_base_url")
    assert caught.value.field == "api_base_url" and "STACKYARD_FETCH_ALLOWED_HOSTS" in str(caught.value)


def test_the_fetch_allowlist_governs_outbound_urls(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STACKYARD_FETCH_ALLOWED_HOSTS", "localhost:11434, 127.0.0.1:8000, llm.invalid")
    reset_settings_cache()

    check_outbound_url("http://localhost:11434/v1", field="api_base_url")  # Ollama on this machine
    check_outbound_url("http://127.0.0.1:8000/v1", field="api_base_url")
    check_outbound_url("http://llm.invalid/v1", field="api_base_url")     # a host entry is trusted by name
    with pytest.raises(UnsafeURLError):
        check_outbound_url("http://127.0.0.1:5432/", field="api_base_url")
