"""pystac-client's HTTP layer with a timeout and bounded retries, for every STAC API we read.

pystac-client waits forever by default (`timeout=None`) and retries only failed connections:
a stalled upstream would hold a CronJob for hours. Every `Client.open` of the service goes
through `api_io()`: each request times out after `timeout` seconds (connect and each read),
and a failed connection, a read error or an answer 429, 500, 502, 503 or 504 is retried at
most `retries` times, waiting 0.5 s, 1 s, 2 s... (at most 10 s, or what `Retry-After` says).
So one request takes at most about `(retries + 1) * timeout` plus the waits.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from urllib3 import Retry

if TYPE_CHECKING:
    import requests
    from pystac_client import Client
    from pystac_client.stac_api_io import StacApiIO

DEFAULT_RETRIES = 3
RETRY_STATUSES = (429, 500, 502, 503, 504)


def retry_policy(retries: int = DEFAULT_RETRIES) -> Retry:
    """At most `retries` retries of any method (STAC searches by POST are reads)."""
    return Retry(
        total=retries,
        backoff_factor=0.5,
        backoff_max=10,
        status_forcelist=RETRY_STATUSES,
        allowed_methods=None,  # every method: a POST /search changes nothing
        raise_on_status=False,  # the last answer goes back, and pystac-client reports it
        respect_retry_after_header=True,
    )


def api_io(
    headers: dict[str, str] | None,
    timeout: float,
    retries: int = DEFAULT_RETRIES,
    request_modifier: Callable[[requests.Request], requests.Request | None] | None = None,
) -> StacApiIO:
    """A pystac-client `StacApiIO` whose requests time out and are retried a bounded number of
    times; pass it as `Client.open(url, stac_io=...)`."""
    from pystac_client.stac_api_io import StacApiIO

    return StacApiIO(
        headers=headers,
        request_modifier=request_modifier,
        timeout=timeout,
        max_retries=retry_policy(retries),
    )


def open_client(url: str, stac_io: StacApiIO) -> Client:
    """`Client.open(url)` through `stac_io`, keeping its timeout and request modifier.

    `Client.open(url, stac_io=io)` alone resets both to None (it calls `io.update()` with its
    own defaults): no timeout, and a request modifier that checks every URL silently dropped.
    """
    from pystac_client import Client

    return Client.open(
        url,
        stac_io=stac_io,
        request_modifier=stac_io._req_modifier,
        timeout=stac_io.timeout,
    )
