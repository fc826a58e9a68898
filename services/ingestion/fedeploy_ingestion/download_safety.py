"""Where a Sentinel download may go, decided before any byte leaves the pod.

An upstream STAC item is untrusted input: its asset hrefs (and every redirect its hosts answer
with) could point at the cloud's metadata service, at the cluster's own services, or at a host
that would receive the source's credentials. Three controls stop that:

- a per-source allow-list of hosts (the search host, the hosts the source declares, and for
  Copernicus its known download hosts); credentials go to these hosts only, and a redirect to
  any other host is refused;
- schemes: https, and http only for a source whose own URL is http (file://, gopher://, ...
  are refused);
- addresses: every name is resolved and each address checked (loopback, private, link-local,
  multicast, reserved, shared and the cluster's ranges are refused; IPv4 embedded in IPv6 is
  unwrapped first). `GuardedTransport` repeats the check at connection time and connects to the
  address it checked, so a name that resolves differently the second time (DNS rebinding)
  cannot slip through.

A source may name hosts whose private addresses are expected (`privateHosts`: an on-premises
mirror, or the tests' loopback upstream); link-local and the cluster's ranges stay refused.
"""

from __future__ import annotations

import contextlib
import ipaddress
import re
import socket
import ssl
import threading
import time
import zlib
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import httpcore
import httpx

from fedeploy_ingestion.errors import SourceError

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
Resolver = Callable[[str, int], list[str]]

# Redirects followed for one download, at most.
MAX_REDIRECTS = 5
_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")
# A host name as httpx gives it (lower case, IDNA already applied), optionally ending in '.'.
_HOST_NAME = re.compile(
    r"^(?:[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?\.)*[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?\.?$"
)


class UnsafeDownload(SourceError):
    """A download (or a redirect) would leave the source's hosts or reach a forbidden address."""


def system_resolver(host: str, port: int) -> list[str]:
    """Every address `host` resolves to (the system resolver), in its order, without repeats."""
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


def _embedded_ipv4(address: IPAddress) -> IPAddress:
    """The IPv4 address an IPv6 one carries (mapped, 6to4, Teredo client, NAT64), else itself."""
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return address.ipv4_mapped
        if address.sixtofour is not None:
            return address.sixtofour
        if address.teredo is not None:
            return address.teredo[1]
        if address in _NAT64:
            return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    return address


def address_problem(
    address: IPAddress, *, private_allowed: bool = False, blocked: Sequence[IPNetwork] = ()
) -> str | None:
    """Why a download must not connect to `address`, or None when it may.

    `blocked` are the cluster's ranges (refused whatever else holds); `private_allowed` admits
    loopback and private addresses (never link-local, multicast or unspecified)."""
    inner = _embedded_ipv4(address)
    for candidate in {address, inner}:
        for network in blocked:
            if candidate.version == network.version and candidate in network:
                return f"is in the cluster's range {network}"
    if inner.is_link_local:
        return "is link-local (where the cloud's metadata service answers)"
    if inner.is_unspecified or inner.is_multicast:
        return "is not a unicast host address"
    if inner.is_loopback:
        return None if private_allowed else "is a loopback address"
    if not inner.is_global or inner.is_reserved:
        return None if private_allowed else "is a private, shared or reserved address"
    return None


def _literal(host: str) -> IPAddress | None:
    try:
        return ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return None


@dataclass(frozen=True)
class AddressGuard:
    """Resolves a host and refuses it when any of its addresses is forbidden.

    `blocked`: the cluster's pod and service ranges. `private_hosts`: host names (lower case)
    whose loopback or private addresses are expected. `resolver`: name -> addresses (tests
    replace it; the default is the system's)."""

    blocked: tuple[IPNetwork, ...] = ()
    private_hosts: frozenset[str] = frozenset()
    resolver: Resolver = field(default=system_resolver, compare=False)

    @classmethod
    def build(
        cls,
        blocked: Iterable[str] = (),
        private_hosts: Iterable[str] = (),
        resolver: Resolver | None = None,
    ) -> AddressGuard:
        """A guard from CIDR strings and host names (ValueError on a malformed CIDR)."""
        return cls(
            blocked=tuple(ipaddress.ip_network(c, strict=False) for c in blocked),
            private_hosts=frozenset(h.lower().strip("[]") for h in private_hosts),
            resolver=resolver or system_resolver,
        )

    def addresses(self, host: str, port: int) -> list[str]:
        """The checked addresses of `host`; UnsafeDownload if any is forbidden."""
        name = host.lower().strip("[]")
        literal = _literal(name)
        if literal is not None:
            found = [str(literal)]
        else:
            try:
                found = self.resolver(name, port)
            except (OSError, UnicodeError) as error:
                raise SourceError(f"cannot resolve {name}: {error}") from None
            if not found:
                raise SourceError(f"cannot resolve {name}: no address")
        private_allowed = name in self.private_hosts
        for text in found:
            problem = address_problem(
                ipaddress.ip_address(text.split("%", 1)[0]),
                private_allowed=private_allowed,
                blocked=self.blocked,
            )
            if problem:
                shown = name if literal is not None else f"{name} resolves to {text}, which"
                raise UnsafeDownload(f"refused: {shown} {problem}")
        return found


class Deadline:
    """A moment (`seconds` from now, or from `since`, a time.monotonic()) by which a request must be done, whatever its bytes do:
    `left()` raises SourceError naming `what` once it has passed. While `applied()`, every
    connect, TLS handshake and read of a guarded connection on this thread waits at most what
    is left (GuardedStream, GuardedBackend), so a server that drips one byte at a time cannot
    stretch it as it stretches a read timeout; the connection is then closed, not reused."""

    def __init__(self, seconds: float, what: str, since: float | None = None) -> None:
        self.seconds, self.what = seconds, what
        self.at = (time.monotonic() if since is None else since) + seconds

    def left(self) -> float:
        """Seconds left; SourceError once none are."""
        left = self.at - time.monotonic()
        if left <= 0:
            raise SourceError(f"{self.what}: not done within {self.seconds:g} s")
        return left

    def cap(self, timeout: float | None) -> float:
        """`timeout` (None: none) cut to what is left; SourceError once none is."""
        left = self.left()
        return left if timeout is None else min(timeout, left)

    def earliest(self, other: Deadline | None) -> Deadline:
        """Whichever of this and `other` (None: none) comes first."""
        return self if other is None or self.at <= other.at else other

    @contextlib.contextmanager
    def applied(self) -> Iterator[None]:
        """Bound this thread's guarded connections by the deadline while the block runs."""
        previous = getattr(_deadlines, "current", None)
        _deadlines.current = self
        try:
            yield
        finally:
            _deadlines.current = previous


# The deadline applied on each thread (Deadline.applied), read by the guarded connections.
_deadlines = threading.local()


def _capped(timeout: float | None) -> tuple[float | None, Deadline | None]:
    """`timeout` cut to this thread's applied deadline, and that deadline (None: none)."""
    deadline: Deadline | None = getattr(_deadlines, "current", None)
    return (timeout if deadline is None else deadline.cap(timeout)), deadline


def _passed(deadline: Deadline | None, error: Exception) -> Exception:
    """The deadline's SourceError where it has passed (a wait it cut timed out), else `error`."""
    if deadline is not None:
        try:
            deadline.left()
        except SourceError as passed:
            return passed
    return error


class GuardedStream(httpcore.NetworkStream):
    """A connection GuardedBackend made (TLS started on it stays one): what DirectBody may read
    from the socket of. Everything else is the inner stream's."""

    def __init__(self, inner: httpcore.NetworkStream) -> None:
        self.inner = inner

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        timeout, deadline = _capped(timeout)
        try:
            return self.inner.read(max_bytes, timeout)
        except httpcore.ReadTimeout as error:
            raise _passed(deadline, error) from None

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        self.inner.write(buffer, timeout)

    def close(self) -> None:
        self.inner.close()

    def start_tls(
        self,
        ssl_context: ssl.SSLContext,
        server_hostname: str | None = None,
        timeout: float | None = None,
    ) -> httpcore.NetworkStream:
        timeout, deadline = _capped(timeout)
        try:
            return GuardedStream(self.inner.start_tls(ssl_context, server_hostname, timeout))
        except httpcore.TimeoutException as error:
            raise _passed(deadline, error) from None

    def get_extra_info(self, info: str) -> Any:
        return self.inner.get_extra_info(info)


class GuardedBackend(httpcore.NetworkBackend):
    """httpcore's network backend that connects only to addresses the guard checked."""

    def __init__(self, guard: AddressGuard) -> None:
        self.guard = guard
        self._inner = httpcore.SyncBackend()

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.NetworkStream:
        failure: Exception | None = None
        options = list(socket_options or [])
        for address in self.guard.addresses(host, port):
            limit, deadline = _capped(timeout)
            try:
                # TLS still verifies and sends SNI for `host`: httpcore passes the URL's host to
                # start_tls, not the address connected to.
                return GuardedStream(
                    self._inner.connect_tcp(address, port, limit, local_address, options)
                )
            except httpcore.ConnectTimeout as error:
                raise _passed(deadline, error) from None
            except httpcore.ConnectError as error:
                failure = error
        assert failure is not None
        raise failure

    def connect_unix_socket(
        self, path: str, timeout: float | None = None, socket_options: Iterable[Any] | None = None
    ) -> httpcore.NetworkStream:
        raise UnsafeDownload(f"refused: a Unix socket ({path}) is not a download host")

    def sleep(self, seconds: float) -> None:
        self._inner.sleep(seconds)


class GuardedTransport(httpx.HTTPTransport):
    """httpx's transport over `GuardedBackend`; environment proxies are not used (a proxy would
    resolve names itself, out of the guard's sight)."""

    def __init__(self, guard: AddressGuard, *, verify: ssl.SSLContext | bool = True) -> None:
        super().__init__(verify=verify, trust_env=False)
        self._pool = httpcore.ConnectionPool(
            # SSL_CERT_FILE / SSL_CERT_DIR still apply (a private CA); proxies do not.
            ssl_context=httpx.create_ssl_context(verify=verify, trust_env=True),
            network_backend=GuardedBackend(guard),
        )


def guarded_client(guard: AddressGuard, timeout: float = 60.0) -> httpx.Client:
    """An httpx client whose every connection passes `guard`; it follows no redirect itself."""
    return httpx.Client(
        transport=GuardedTransport(guard), timeout=timeout, follow_redirects=False, trust_env=False
    )


def host_matches(host: str, pattern: str) -> bool:
    """Whether `host` is `pattern`, or a sub-domain of it when the pattern is `*.domain`."""
    host, pattern = host.lower().rstrip("."), pattern.lower().rstrip(".")
    if pattern.startswith("*."):
        return host.endswith(pattern[1:]) and len(host) > len(pattern) - 1
    return host == pattern


def shown(url: str | httpx.URL) -> str:
    """A URL for messages: without user information (which may hold a password)."""
    parts = urlsplit(str(url))
    if parts.username is None and parts.password is None:
        return str(url)
    netloc = parts.hostname or ""
    if parts.port:
        netloc += f":{parts.port}"
    return parts._replace(netloc=netloc).geturl()


@dataclass(frozen=True)
class DownloadPolicy:
    """Where one source's downloads may go, and which hosts get its credentials."""

    source: str
    hosts: tuple[str, ...]
    schemes: frozenset[str]
    guard: AddressGuard

    @classmethod
    def for_source(cls, source: Any, guard: AddressGuard | None = None) -> DownloadPolicy:
        """The policy of a `settings.Source`: its search host and its declared download hosts;
        the guard admits the source's `privateHosts` (and nothing else) to private addresses."""
        search = httpx.URL(source.url)
        hosts = tuple(dict.fromkeys([search.host, *source.download_hosts]))
        schemes = frozenset({"https", search.scheme})
        if guard is None:
            guard = AddressGuard.build(private_hosts=source.private_hosts)
        elif not set(h.lower() for h in source.private_hosts) <= guard.private_hosts:
            guard = AddressGuard(
                blocked=guard.blocked,
                private_hosts=guard.private_hosts | {h.lower() for h in source.private_hosts},
                resolver=guard.resolver,
            )
        return cls(source=source.name, hosts=hosts, schemes=schemes, guard=guard)

    def trusted(self, url: httpx.URL) -> bool:
        """Whether `url`'s host is one of the source's (and so may receive its credentials)."""
        return any(host_matches(url.host, pattern) for pattern in self.hosts)

    def check(self, url: str | httpx.URL, *, what: str = "asset href") -> httpx.URL:
        """`url` parsed, after checking scheme, host and addresses; UnsafeDownload if refused."""
        try:
            parsed = url if isinstance(url, httpx.URL) else httpx.URL(url)
        except httpx.InvalidURL as error:
            raise UnsafeDownload(f"{what} {shown(str(url))!r} is not a URL: {error}") from None
        allowed = ", ".join(sorted(self.schemes))
        if parsed.scheme not in self.schemes:
            raise UnsafeDownload(
                f"{what} {shown(parsed)!r} refused: scheme {parsed.scheme or '(none)'!r} is not "
                f"allowed for source {self.source} (allowed: {allowed})"
            )
        if not parsed.host:
            raise UnsafeDownload(f"{what} {shown(parsed)!r} refused: it names no host")
        if parsed.userinfo:
            raise UnsafeDownload(f"{what} {shown(parsed)!r} refused: it carries user information")
        if _literal(parsed.host) is None and not _HOST_NAME.match(parsed.host):
            # httpx keeps '\', '%', ';' ... in a host where urllib3 (pystac-client's searches)
            # cuts it: `evil.com\.trusted.example` would pass as a sub-domain here and connect
            # to evil.com there.
            raise UnsafeDownload(
                f"{what} {shown(parsed)!r} refused: host {parsed.host!r} is not a DNS name "
                "(letters, digits, '-' and '.' after IDNA) or an IP address"
            )
        if not self.trusted(parsed):
            raise UnsafeDownload(
                f"{what} {shown(parsed)!r} refused: host {parsed.host!r} is not one of source "
                f"{self.source}'s download hosts ({', '.join(self.hosts)}); a host the source "
                "really downloads from belongs in its downloadHosts"
            )
        port = parsed.port or (443 if parsed.scheme == "https" else 80)
        try:
            self.guard.addresses(parsed.host, port)
        except UnsafeDownload as error:
            raise UnsafeDownload(f"{what} {shown(parsed)!r} {error}") from None
        return parsed

    def redirect(self, current: httpx.URL, location: str) -> httpx.URL:
        """The target of a redirect from `current`, checked like an href."""
        return self.check(current.join(location), what=f"redirect from {shown(current)!r} to")


# --- bodies bounded after decoding -------------------------------------------------------

# Sent with every download of untrusted bytes: a well-behaved server then sends them as they
# are, and the byte limits count what is stored.
IDENTITY = {"Accept-Encoding": "identity"}
# The one layer of Content-Encoding decoded when a server encodes anyway (zlib window bits).
DECODED_ENCODINGS = {
    "gzip": 16 + zlib.MAX_WBITS,
    "x-gzip": 16 + zlib.MAX_WBITS,
    "deflate": zlib.MAX_WBITS,
}
# Decoded bytes produced per step, at most, whatever one compressed chunk expands to.
DECODE_STEP = 1024 * 1024


class UnsafeBody(SourceError):
    """An answer whose body would exceed its limit once decoded, or whose Content-Encoding is
    stacked, unknown or does not decode."""


def content_encodings(response: httpx.Response) -> list[str]:
    """The answer's content codings in the order applied, `identity` left out."""
    return content_encodings_of(*response.headers.get_list("content-encoding"))


def content_encodings_of(*values: str) -> list[str]:
    """The content codings of Content-Encoding header values (any HTTP client's), in the order
    applied, `identity` left out."""
    codings = [c.strip().lower() for value in values for c in value.split(",")]
    return [c for c in codings if c and c != "identity"]


def _inflate(decoder: Any, data: bytes) -> Iterator[bytes]:
    while data:
        yield decoder.decompress(data, DECODE_STEP)
        data = decoder.unconsumed_tail


def bounded_body(
    response: httpx.Response,
    max_bytes: int,
    what: str,
    encoded: bool = True,
    chunk_size: int | None = None,
) -> Iterator[bytes]:
    """The answer's body, decoded step by step (at most DECODE_STEP bytes at a time) and
    counted **after** decoding: UnsafeBody once more than `max_bytes` came out, for stacked or
    unknown Content-Encodings (or any one when `encoded` is false), and for a body that does
    not decode. `what` names the request in messages. httpx.HTTPError passes through."""
    if response.is_stream_consumed:
        # A response built in memory (httpx reads and decodes those at once: test
        # transports): nothing is left to bound but the count.
        if len(response.content) > max_bytes:
            raise UnsafeBody(f"{what}: more than {max_bytes} bytes once decoded")
        yield response.content
        return
    yield from decoded_body(
        response.iter_raw(chunk_size), content_encodings(response), max_bytes, what, encoded
    )


class RateFloor:
    """The slowest a copy's body may arrive: at least `bytes_per_second` over each `window` of
    seconds spent waiting on the source (time the copy spends sending parts is not counted),
    else SourceError naming `what`, the bytes read, the time and the floor. 0 turns it off.
    Its clock starts when it is made (before the request: `count` the wait for the headers).
    `deadline`, once set, ends the whole read when it passes, however fast the bytes come."""

    def __init__(
        self,
        bytes_per_second: float,
        what: str,
        window: float = 60.0,
    ) -> None:
        self.bytes_per_second, self.window, self.what = bytes_per_second, window, what
        self.deadline: Deadline | None = None
        self._began = time.monotonic()
        self._read = 0  # bytes, in all
        self._window_read = 0
        self._window_waited = 0.0

    def count(self, read: int, waited: float) -> None:
        """Count `read` bytes that took `waited` seconds to come; SourceError once a whole
        window of waiting brought fewer than the floor, or once the deadline has passed."""
        self._read += read
        self._window_read += read
        self._window_waited += waited
        if self.deadline is not None:
            self.deadline.left()
        if self.bytes_per_second and self._window_waited >= self.window:
            if self._window_read < self.bytes_per_second * self._window_waited:
                raise SourceError(
                    f"{self.what} failed midway: too slow, {self._window_read} bytes in the last "
                    f"{self._window_waited:.1f} s waited ({self._read} bytes in "
                    f"{time.monotonic() - self._began:.1f} s in all), below the floor of "
                    f"{self.bytes_per_second / 1024:g} KiB/s (INGEST_COPY_MIN_RATE_KIB_S)"
                )
            self._window_read, self._window_waited = 0, 0.0

    def chunks(self, chunks: Iterable[bytes]) -> Iterator[bytes]:
        """`chunks`, the wait for each counted against the floor (and cut by the deadline)."""
        source = iter(chunks)
        while True:
            began = time.monotonic()
            if self.deadline is None:
                chunk = next(source, None)
            else:
                with self.deadline.applied():
                    chunk = next(source, None)
            if chunk is None:
                return
            self.count(len(chunk), time.monotonic() - began)
            yield chunk


class DirectBody:
    """An identity body of exactly its Content-Length, read straight into the caller's buffer
    from the connection's socket (`readinto`), with no parser, chunk or copy between: what a
    copy of large assets reads. Iterating it yields the same bytes as blocks.

    Only for an answer httpx streams over a guarded connection (the socket GuardedBackend
    connected to a checked address; TLS verified by then): `of` says None otherwise (an
    answer with a Content-Encoding, a Transfer-Encoding, another length, an in-memory one, or
    one over a stream GuardedBackend did not make, or that is not a plain socket with its own
    TLS: a proxy's TLS-in-TLS tunnel), and bounded_body reads it. The bytes h11 already holds are taken first, through
    httpx; the rest comes from the socket with the client's read timeout, and never a byte
    past Content-Length. A connection that ends early raises SourceError naming what came.
    The connection is closed at the end, never used again (h11 did not see the body end)."""

    def __init__(
        self,
        response: httpx.Response,
        sock: socket.socket,
        size: int,
        what: str,
        floor: RateFloor | None = None,
    ) -> None:
        self._response = response
        self._floor = floor
        self._socket = sock
        # Kept until the end: closing this generator (as dropping it would) closes the socket.
        self._raw = response.iter_raw()
        self._started = False
        self._pending = memoryview(b"")
        self._left = size  # bytes still to read from the socket (the pending ones included)
        self._size = size
        self._what = what
        timeout = response.request.extensions.get("timeout", {}).get("read")
        self._timeout = float(timeout) if timeout is not None else None

    @classmethod
    def of(
        cls, response: httpx.Response, size: int, what: str, floor: RateFloor | None = None
    ) -> DirectBody | None:
        """The direct body of `response` (`size`: its announced length), or None when it
        must be read through httpx. `what` names the read in messages; `floor`, when given,
        bounds how slowly the body may come."""
        stream = response.extensions.get("network_stream")
        sock = tls = None
        if isinstance(stream, GuardedStream):
            sock, tls = stream.get_extra_info("socket"), stream.get_extra_info("ssl_object")
        if (
            not isinstance(sock, socket.socket)
            # TLS must be the socket's own: a TLS-in-TLS stream (an HTTPS proxy's tunnel) keeps
            # its inner session in an ssl.SSLObject and names the outer socket, whose bytes are
            # the inner session's records.
            or isinstance(tls, ssl.SSLObject)
            or (tls is not None and not isinstance(sock, ssl.SSLSocket))
            or response.is_stream_consumed
            or response.http_version != "HTTP/1.1"
            or content_encodings(response)
            or "transfer-encoding" in response.headers
            or response.headers.get("content-length") != str(size)
        ):
            return None
        return cls(response, sock, size, what, floor)

    def readinto(self, view: memoryview) -> int:
        """Read up to len(view) bytes into `view`: how many, 0 at the end of the body."""
        if not len(view) or not self._left:
            self.close()
            return 0
        began = time.monotonic()
        try:
            if not self._started:
                # What h11 holds past the headers comes in its first Data event, whole; after
                # it h11 holds nothing, and the socket is read from there on.
                self._started = True
                deadline = self._floor and self._floor.deadline
                with deadline.applied() if deadline else contextlib.nullcontext():
                    first = next(self._raw, b"")
                self._pending = memoryview(first)[: self._left]
                if not first:
                    raise SourceError(f"{self._what} failed midway: the body is empty")
            if len(self._pending):
                count = min(len(view), len(self._pending))
                view[:count] = self._pending[:count]
                self._pending = self._pending[count:]
            else:
                deadline = self._floor and self._floor.deadline
                self._socket.settimeout(deadline.cap(self._timeout) if deadline else self._timeout)
                count = self._socket.recv_into(view, min(len(view), self._left))
                if not count:
                    raise SourceError(
                        f"{self._what} failed midway: the connection closed after "
                        f"{self._size - self._left} of {self._size} bytes"
                    )
            if self._floor is not None:
                self._floor.count(count, time.monotonic() - began)
        except SourceError:
            self.close()
            raise
        except (OSError, httpx.HTTPError) as error:  # socket.timeout is an OSError
            self.close()
            if isinstance(error, TimeoutError) and self._floor and self._floor.deadline:
                self._floor.deadline.left()  # a wait the deadline cut: say so
            text = "timed out" if isinstance(error, TimeoutError) else str(error) or repr(error)
            raise SourceError(f"{self._what} failed midway: {text}") from error
        self._left -= count
        return count

    def __iter__(self) -> Iterator[bytes]:
        block = bytearray(DECODE_STEP)
        while count := self.readinto(memoryview(block)):
            yield bytes(block[:count])

    def close(self) -> None:
        """Close the answer (and so its connection); nothing more is read."""
        self._response.close()


def decoded_body(
    raw: Iterable[bytes], codings: list[str], max_bytes: int, what: str, encoded: bool = True
) -> Iterator[bytes]:
    """`raw` (a body's bytes as sent, with the answer's content `codings`) decoded step by
    step and counted after decoding, as `bounded_body` says; any HTTP client's raw stream.
    A gzip body of several members (RFC 1952) is decoded whole, member after member."""
    allowed = ", ".join(DECODED_ENCODINGS) if encoded else "none"
    if len(codings) > 1 or (codings and (not encoded or codings[0] not in DECODED_ENCODINGS)):
        raise UnsafeBody(
            f"{what}: answered Content-Encoding {', '.join(codings)}; identity was asked for "
            f"and one of {allowed} is decoded, never stacked"
        )
    decoder = zlib.decompressobj(DECODED_ENCODINGS[codings[0]]) if codings else None
    size = 0
    try:
        for chunk in raw:
            while chunk:
                pieces = [chunk] if decoder is None else _inflate(decoder, chunk)
                chunk = b""
                for piece in pieces:
                    size += len(piece)
                    if size > max_bytes:
                        raise UnsafeBody(f"{what}: more than {max_bytes} bytes once decoded")
                    yield piece
                if decoder is not None and decoder.eof and decoder.unused_data:
                    # the next gzip member (a deflate stream has one: the rest is refused)
                    chunk = decoder.unused_data
                    if codings[0] == "deflate":
                        raise UnsafeBody(f"{what}: bytes follow the end of the deflate body")
                    decoder = zlib.decompressobj(DECODED_ENCODINGS[codings[0]])
    except zlib.error as error:
        raise UnsafeBody(f"{what}: the {codings[0]} body does not decode: {error}") from None
