"""URL fetching that cannot be pointed at the machine's own network (SSRF guard).

:class:`GuardedLinkContentFetcher` is a drop-in for Haystack's ``LinkContentFetcher`` (same ``run(urls)``
and ``streams`` output) that refuses, with :class:`~nodes.errors.UnsafeURLError`, any URL that is not
http(s) or whose host resolves — any of its addresses — to a loopback, private, link-local, cloud
metadata, unspecified, multicast or reserved address (IPv4-mapped and NAT64 IPv6 forms included). The
check runs again on every redirect hop and once more when each TCP connection is opened, against the
addresses that connection then uses. The fetch itself, retries and content handling are Haystack's.

Exceptions come from ``STACKYARD_FETCH_ALLOWED_HOSTS`` plus the ``allowed_hosts`` parameter (the two
lists are merged). Entries are matched like this:

* ``intranet.example`` / ``intranet.example:8080`` — a host name, compared exactly (case-insensitive) with
  the URL's host, and its port when given. The host is then trusted whatever it resolves to.
* ``10.1.2.3``, ``10.0.0.0/8``, ``fd00::/8``, ``[::1]:8080``, ``127.0.0.1:8080`` — an address or network
  (with an optional port): a non-public address is accepted when it lies in the network, whatever host
  name led to it. Every address a host resolves to must be public or accepted.

The same policy and list govern every other outbound URL a workflow configures (an LLM server's
``api_base_url``, an endpoint): :func:`check_outbound_url` checks one without fetching it.

Example::

    from nodes.fetchers import GuardedLinkContentFetcher, check_outbound_url

    fetcher = GuardedLinkContentFetcher(allowed_hosts=["wiki.internal:8080"])
    streams = fetcher.run(urls=["https://haystack.deepset.ai/"])["streams"]
    fetcher.run(urls=["http://169.254.169.254/latest/meta-data/"])   # raises UnsafeURLError
    check_outbound_url("http://localhost:11434/v1", field="api_base_url")  # raises unless allowlisted
"""

from __future__ import annotations

import ipaddress
import socket
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import httpcore
import httpx
from haystack import component, logging
from haystack.components.fetchers import LinkContentFetcher
from haystack.dataclasses import ByteStream

from nodes.errors import NodeInputError, UnsafeURLError
from stackyard.settings import get_settings

logger = logging.getLogger(__name__)

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

_SCHEMES = {"http": 80, "https": 443}
_METADATA_HOSTS = frozenset({"metadata.google.internal"})
_METADATA_ADDRESSES = frozenset({ipaddress.ip_address("169.254.169.254"), ipaddress.ip_address("fd00:ec2::254")})
_NAT64 = ipaddress.ip_network("64:ff9b::/96")
_FIX = "If it is meant to be reachable, add it to STACKYARD_FETCH_ALLOWED_HOSTS (host, host:port or CIDR)."
# Names that mean this machine whatever DNS says (RFC 6761), judged even when they do not resolve.
_LOOPBACK_NAMES = frozenset({"localhost", "localhost.localdomain", "ip6-localhost", "ip6-loopback"})


@dataclass(frozen=True)
class _AllowEntry:
    host: str | None = None
    network: IPNetwork | None = None
    port: int | None = None

    def admits_host(self, host: str, port: int) -> bool:
        return self.host == host and self.port in (None, port)

    def admits_address(self, address: IPAddress, port: int) -> bool:
        return self.network is not None and address in self.network and self.port in (None, port)


def _parse_entry(entry: str, source: str) -> _AllowEntry:
    text = entry.strip().lower()
    host, port_text = text, None
    if text.startswith("["):  # [IPv6] or [IPv6]:port
        host, closed, rest = text[1:].partition("]")
        if not closed or (rest and not rest.startswith(":")):
            host = ""
        port_text = rest[1:] if rest else None
    elif text.count(":") == 1:
        host, port_text = text.split(":")
    host = host.rstrip(".")
    try:
        port = None if port_text is None else int(port_text)
        if not host or (port is not None and not 0 < port < 65536):
            raise ValueError(entry)
    except ValueError:
        raise NodeInputError(f"{source} entry {entry!r} is not a host, host:port, address, [IPv6]:port or CIDR; "
                             "write e.g. 'wiki.internal', 'wiki.internal:8080' or '10.0.0.0/8'.", field=source) from None
    try:
        return _AllowEntry(network=ipaddress.ip_network(host, strict=False), port=port)
    except ValueError:
        return _AllowEntry(host=host, port=port)


def _blocked_reason(address: IPAddress) -> str | None:
    """Why an address may not be fetched by default, or None when it is public."""
    if isinstance(address, ipaddress.IPv6Address):
        # Judge an embedded IPv4 address, where the packets go; the IPv6 wrapper itself counts as reserved.
        if address.ipv4_mapped is not None:
            address = address.ipv4_mapped
        elif address in _NAT64:
            address = ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    if address in _METADATA_ADDRESSES:
        return "cloud metadata"
    for kind in ("loopback", "link_local", "unspecified", "multicast", "private", "reserved"):
        if getattr(address, f"is_{kind}"):
            return kind.replace("_", "-")
    return None if address.is_global else "non-public"


class _Guard:
    """The refusal policy; shared by the per-hop request hook and the connect-time backend."""

    def __init__(self, entries: list[_AllowEntry]) -> None:
        self.entries = entries

    def check_url(self, url: str | httpx.URL, *, unresolved_ok: bool = True) -> None:
        """Refuse ``url`` by scheme and by the addresses its host resolves to.

        :param unresolved_ok: accept a host name that does not resolve (unless it is a loopback name).
            The fetcher can: its connection is checked again when it is opened.
        """
        try:
            parsed = httpx.URL(url)
        except httpx.InvalidURL as exc:
            raise UnsafeURLError(f"Refused {url!s}: it is not a valid URL ({exc}); pass an http(s) URL.",
                                 url=str(url)) from None
        if parsed.scheme not in _SCHEMES or not parsed.raw_host:
            scheme = f"'{parsed.scheme}:'" if parsed.scheme else "no scheme"
            raise UnsafeURLError(f"Refused {url!s}: only http:// and https:// URLs with a host can be reached "
                                 f"(this one has {scheme}); pass an http(s) URL.", url=str(url))
        host = parsed.raw_host.decode("ascii")
        try:
            self.addresses(host, parsed.port or _SCHEMES[parsed.scheme], str(url))
        except socket.gaierror as exc:
            name = host.lower().rstrip(".")
            if name in _LOOPBACK_NAMES or name.endswith(".localhost"):
                raise UnsafeURLError(f"Refused {url!s}: {name} names this machine (loopback). {_FIX}",
                                     url=str(url), address=name) from None
            if not unresolved_ok:
                raise UnsafeURLError(f"Refused {url!s}: {name} does not resolve ({exc.strerror}), so its address "
                                     f"cannot be checked; correct the host name. {_FIX}", url=str(url)) from None

    def check_request(self, request: httpx.Request) -> None:
        """httpx request hook: runs before the first request and before every redirect hop is sent."""
        self.check_url(request.url)

    def addresses(self, host: str, port: int, url: str) -> list[str] | None:
        """The checked addresses of ``host``, or None for an allowlisted host name (connect by name).

        :raises UnsafeURLError: if any address is non-public and not allowlisted.
        :raises socket.gaierror: if the name does not resolve.
        """
        name = host.lower().rstrip(".")
        if any(entry.admits_host(name, port) for entry in self.entries):
            return None
        if name in _METADATA_HOSTS:
            raise UnsafeURLError(f"Refused {url}: {name} is a cloud metadata service. {_FIX}", url=url, address=name)
        infos = socket.getaddrinfo(name, port, type=socket.SOCK_STREAM)
        addresses = list(dict.fromkeys(ipaddress.ip_address(info[4][0]) for info in infos))
        for address in addresses:
            reason = _blocked_reason(address)
            if reason and not any(entry.admits_address(address, port) for entry in self.entries):
                subject = f"{address} is" if name == str(address) else f"{name} resolves to {address}, which is"
                raise UnsafeURLError(f"Refused {url}: {subject} not a public address ({reason}). {_FIX}",
                                     url=url, address=str(address))
        return [str(address) for address in addresses]


def _settings_guard() -> _Guard:
    """The operator's allowlist: ``STACKYARD_FETCH_ALLOWED_HOSTS``, plus the host and port of each server in
    ``STACKYARD_LLM_SERVERS`` (an operator who lists a model server means workflows to call it)."""
    settings = get_settings()
    entries = [_parse_entry(entry, "STACKYARD_FETCH_ALLOWED_HOSTS") for entry in settings.fetch_allowed_hosts]
    for url in settings.llm_servers.values():
        try:
            parsed = httpx.URL(url)
        except httpx.InvalidURL:  # the Models page reports it; it admits nothing
            continue
        if parsed.scheme in _SCHEMES and parsed.host:
            host = f"[{parsed.host}]" if ":" in parsed.host else parsed.host
            entries.append(_parse_entry(f"{host}:{parsed.port or _SCHEMES[parsed.scheme]}", "STACKYARD_LLM_SERVERS"))
    return _Guard(entries)


def check_outbound_url(url: str, *, field: str, offline_ok: bool = False) -> None:
    """Refuse an outbound URL a node is configured with, by the fetcher's policy (see module docs).

    Only http(s) URLs whose host is public, or admitted by ``STACKYARD_FETCH_ALLOWED_HOSTS``, pass.
    A local model server is reached by listing it there, e.g. ``localhost:11434`` for Ollama.

    :param url: The URL, e.g. an ``api_base_url``.
    :param field: The parameter it came from; the error carries it.
    :param offline_ok: Accept a host name that does not resolve now (saving a workflow on a machine that is
        offline). Leave it False just before the URL is used: a host that cannot be checked is not called.
    :raises UnsafeURLError: naming the URL, why it is refused and the setting that would admit it.
    :raises NodeInputError: if ``STACKYARD_FETCH_ALLOWED_HOSTS`` holds an entry that cannot be read.
    """
    try:
        _settings_guard().check_url(url, unresolved_ok=offline_ok)
    except UnsafeURLError as exc:
        exc.field = field
        raise


class _PinnedBackend(httpcore.SyncBackend):
    """Resolves and checks at connect time, then connects to exactly the checked addresses.

    This closes the DNS-rebinding window between the URL check and the connection: a name that
    resolved to a public address for the check cannot be re-resolved to 127.0.0.1 for the connect.
    TLS still verifies the certificate against the host name (httpcore passes it as SNI).
    """

    def __init__(self, guard: _Guard) -> None:
        self.guard = guard

    def connect_tcp(self, host: str, port: int, timeout: float | None = None,
                    local_address: str | None = None, socket_options: Any = None) -> httpcore.NetworkStream:
        try:
            addresses = self.guard.addresses(host, port, f"{host}:{port}")
        except socket.gaierror as exc:
            raise httpcore.ConnectError(f"cannot resolve {host}: {exc}") from exc
        last_error: Exception | None = None
        for address in addresses or [host]:
            try:
                return super().connect_tcp(address, port, timeout, local_address, socket_options)
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as exc:
                last_error = exc
        assert last_error is not None
        raise last_error


DEFAULT_MAX_BYTES = 50_000_000
FETCH_DEADLINE_SECONDS = 120.0    # the longest one capped response may take to arrive


class ResponseTooLarge(NodeInputError):
    """A response is longer than the fetch may read."""


class _CappedStream(httpx.SyncByteStream):
    def __init__(self, inner: httpx.SyncByteStream, limit: int, url: str, deadline: float) -> None:
        self.inner, self.limit, self.url, self.deadline = inner, limit, url, deadline

    def __iter__(self) -> Any:
        seen = 0
        for chunk in self.inner:
            seen += len(chunk)
            if seen > self.limit:
                raise ResponseTooLarge(f"{self.url} sent more than {self.limit:,} bytes; only that much is read. "
                                       "Download the file and add it from the files root instead.", field="urls")
            if time.monotonic() > self.deadline:      # a server dripping bytes never trips the read timeout
                raise ResponseTooLarge(f"{self.url} was still sending after {FETCH_DEADLINE_SECONDS:g} s; a fetch "
                                       "stops there. Download the file and add it from the files root instead.",
                                       field="urls")
            yield chunk

    def close(self) -> None:
        self.inner.close()


class _CappedTransport(httpx.HTTPTransport):
    """Reads at most ``max_bytes`` of a response body (declared or sent) within FETCH_DEADLINE_SECONDS, and asks
    for it uncompressed: a compressed body is refused, since what it inflates to is not what was counted. A URL
    cannot fill a worker's memory or hold it for ever."""

    def __init__(self, max_bytes: int, **options: Any) -> None:
        super().__init__(**options)
        self.max_bytes = max_bytes

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        request.headers["Accept-Encoding"] = "identity"
        response = super().handle_request(request)
        encoding = response.headers.get("content-encoding", "identity").strip().lower()
        declared = response.headers.get("content-length", "")
        if encoding not in ("identity", ""):
            response.close()
            raise ResponseTooLarge(f"{request.url} answered {encoding}-compressed although it was asked for an "
                                   "uncompressed body; its size could not be bounded. Download the file and add it "
                                   "from the files root instead.", field="urls")
        if declared.isdigit() and int(declared) > self.max_bytes:
            response.close()
            raise ResponseTooLarge(f"{request.url} is {int(declared):,} bytes; a fetch reads at most "
                                   f"{self.max_bytes:,}. Download the file and add it from the files root instead.",
                                   field="urls")
        response.stream = _CappedStream(response.stream, self.max_bytes, str(request.url),
                                        time.monotonic() + FETCH_DEADLINE_SECONDS)
        return response


def pinned_transport(guard: _Guard | None = None, *, max_bytes: int | None = None,
                     **options: Any) -> httpx.HTTPTransport:
    """An httpx transport whose connections go only to addresses the guard (default: the settings') admits,
    resolved and checked at connect time (see :class:`_PinnedBackend`), reading at most ``max_bytes`` of a
    response when given. ``options`` are ``httpx.HTTPTransport``'s (``verify``, ``cert``, ``http2``, ``limits``)."""
    transport = _CappedTransport(max_bytes, **options) if max_bytes else httpx.HTTPTransport(**options)
    # httpx has no public hook at connect time; its httpcore pool takes a network backend.
    transport._pool._network_backend = _PinnedBackend(guard or _settings_guard())  # noqa: SLF001
    return transport


# Client options that route connections around the transport (a proxy's own transport, mounts): refused.
_BYPASSING_OPTIONS = ("proxy", "proxies", "mounts", "transport", "app")
# Client options that belong to the transport once one is given (httpx ignores them on the client then).
_TRANSPORT_OPTIONS = ("verify", "cert", "http2", "limits")


def check_client_kwargs(kwargs: Any) -> dict[str, Any]:
    """A workflow's ``http_client_kwargs`` as a dict, refused when it is not an object or names a proxy, mounts or a
    transport, which would connect around the address checks (``NodeInputError`` with the option as ``field``)."""
    if kwargs is not None and not isinstance(kwargs, dict):
        raise NodeInputError("http_client_kwargs must be an object of httpx client options, e.g. {\"timeout\": 30}.",
                             field="http_client_kwargs")
    options = dict(kwargs or {})
    for key in _BYPASSING_OPTIONS:
        if options.get(key) is not None:
            raise NodeInputError(f"http_client_kwargs.{key} would connect around Stackyard's address checks; remove "
                                 "it (a server this workflow may call is admitted by STACKYARD_FETCH_ALLOWED_HOSTS).",
                                 field=f"http_client_kwargs.{key}")
    return options


def guarded_client_kwargs(kwargs: dict[str, Any] | None) -> dict[str, Any]:
    """``http_client_kwargs`` for a component that calls a server (an OpenAI-compatible generator or embedder)
    so that its URL, checked when the pipeline was built, is checked again at every connect: a name that
    resolved to a public address for the check cannot resolve to this machine later (DNS rebinding), a
    redirect is not followed (a public server could send the request on to a metadata address), and
    environment proxies are ignored. The workflow's timeouts, headers, TLS and pool settings are kept.

    Synchronous clients only: Stackyard runs pipelines synchronously (a component's async client is not
    built by its runs).

    :raises NodeInputError: see :func:`check_client_kwargs`.
    """
    options = check_client_kwargs(kwargs)
    transport = {key: options.pop(key) for key in _TRANSPORT_OPTIONS if key in options}
    if isinstance(transport.get("limits"), dict):
        transport["limits"] = httpx.Limits(**transport["limits"])
    return {**options, "transport": pinned_transport(**transport), "follow_redirects": False, "trust_env": False}


@component
class GuardedLinkContentFetcher:
    """Fetches URLs like Haystack's ``LinkContentFetcher``, refusing non-public addresses (see module docs).

    Refusals always raise :class:`~nodes.errors.UnsafeURLError`, even with several URLs or
    ``raise_on_failure=False``: they are configuration problems, not flaky fetches. Other failures follow
    ``LinkContentFetcher``: with one URL they raise when ``raise_on_failure`` is true; with several, a failed
    URL is logged and skipped (``raise_on_failure=True``) or yields an empty stream (``False``).

    Environment proxies are ignored (a proxy would resolve the host itself, out of the guard's sight).
    Runs synchronously; async pipelines run it in their executor.
    """

    def __init__(self, *, allowed_hosts: list[str] | None = None, raise_on_failure: bool = True,
                 user_agents: list[str] | None = None, retry_attempts: int = 2, timeout: int = 3,
                 max_redirects: int = 5, max_bytes: int | None = DEFAULT_MAX_BYTES) -> None:
        """
        :param allowed_hosts: Entries added to ``STACKYARD_FETCH_ALLOWED_HOSTS`` for this node (host,
            host:port, address or CIDR). They widen what the node may reach, so only trusted code and
            operators should set them — not workflow authors.
        :param raise_on_failure: As in ``LinkContentFetcher``; never affects refusals.
        :param user_agents: User agents to rotate through on retries; Haystack's default when None.
        :param retry_attempts: Retries per URL after a network or HTTP error.
        :param timeout: Timeout in seconds for each request.
        :param max_redirects: Redirect hops followed per URL, each one checked before it is requested.
        :param max_bytes: The most of one response that is read (declared or sent): a page cannot fill a worker's
            memory. None reads without limit.
        """
        self.allowed_hosts = allowed_hosts
        self.raise_on_failure = raise_on_failure
        self.user_agents = user_agents
        self.retry_attempts = retry_attempts
        self.timeout = timeout
        self.max_redirects = max_redirects
        self.max_bytes = max_bytes
        self._own_entries = [_parse_entry(entry, "allowed_hosts") for entry in allowed_hosts or []]
        self._guard: _Guard | None = None
        self._fetcher: LinkContentFetcher | None = None

    def warm_up(self) -> None:
        """Reads the allowlist from settings and builds the guarded HTTP client."""
        if self._fetcher is not None:
            return
        guard = _Guard(_settings_guard().entries + self._own_entries)
        transport = pinned_transport(guard, max_bytes=self.max_bytes)
        fetcher = LinkContentFetcher(
            raise_on_failure=True,  # failures are sorted out per URL in _fetch_one
            user_agents=self.user_agents,
            retry_attempts=self.retry_attempts,
            timeout=self.timeout,
            client_kwargs={"transport": transport, "trust_env": False, "follow_redirects": True,
                           "max_redirects": self.max_redirects, "event_hooks": {"request": [guard.check_request]}},
        )
        fetcher.warm_up()
        self._guard, self._fetcher = guard, fetcher

    def close(self) -> None:
        """Releases the HTTP client; the next run builds a new one."""
        if self._fetcher is not None:
            self._fetcher.close()
        self._guard, self._fetcher = None, None

    @component.output_types(streams=list[ByteStream])
    def run(self, urls: list[str]) -> dict[str, list[ByteStream]]:
        """
        Fetches each URL after checking it (and each redirect hop) against the address policy.

        :param urls: http(s) URLs. All are checked before any is fetched.
        :returns: ``streams``: one ``ByteStream`` per fetched URL, with ``url`` and ``content_type`` in meta.
        :raises UnsafeURLError: if a URL or a redirect hop is refused.
        """
        self.warm_up()
        assert self._guard is not None
        for url in urls:
            self._guard.check_url(url)
        if len(urls) <= 1:
            return {"streams": [stream for url in urls for stream in self._fetch_one(url, single=True)]}
        with ThreadPoolExecutor() as pool:
            batches = list(pool.map(self._fetch_one, urls))
        return {"streams": [stream for batch in batches for stream in batch]}

    def _fetch_one(self, url: str, single: bool = False) -> list[ByteStream]:
        assert self._fetcher is not None
        try:
            return self._fetcher.run(urls=[url])["streams"]
        except UnsafeURLError as exc:
            if exc.url == url:
                raise
            # Refused on a redirect hop or at connect time: say which requested URL led there.
            raise UnsafeURLError(f"{exc} (while fetching {url})", url=exc.url, address=exc.address) from None
        except Exception as exc:
            if single and self.raise_on_failure:
                raise
            logger.warning("Error fetching {url}: {error}", url=url, error=str(exc))
            if self.raise_on_failure:
                return []
            return [ByteStream(data=b"", meta={"content_type": "text/html", "url": url}, mime_type="text/html")]
