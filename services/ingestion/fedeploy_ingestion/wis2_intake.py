"""The WIS2 side of the stream consumer: notification -> checked download -> observations.

`Wis2Intake` holds what the consumer needs across messages (the download policy from the
settings, one guarded HTTP client); each step raises InvalidObservation with its code for the
dead-letter prefix: `notification` (and the decoding codes), `forbidden-link`, `download`,
`digest-mismatch`, `bufr`; `decode` returns the subsets it refused beside the observations.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from tenacity import RetryError, Retrying, retry_if_exception_type, wait_exponential

from fedeploy_ingestion.bufr import DecodeBudget, SubsetRefusal
from fedeploy_ingestion.bufr_worker import decode_bufr_bounded
from fedeploy_ingestion.download_safety import AddressGuard, DownloadPolicy, guarded_client
from fedeploy_ingestion.errors import ConfigError
from fedeploy_ingestion.observation import InvalidObservation, Limits, Observation
from fedeploy_ingestion.settings import IngestSettings
from fedeploy_ingestion.wis2 import (
    Notification,
    TransientDownload,
    check_integrity,
    download,
    parse_notification,
)

log = logging.getLogger(__name__)
RETRY_FIRST_SECONDS = 0.5


def wis2_policy(settings: IngestSettings) -> DownloadPolicy:
    """Where canonical links may be downloaded from: the allowed hosts, https (and http when
    allowed), every address checked against the loopback, private, link-local and cluster
    ranges (`wis2_private_hosts` alone may be private)."""
    schemes = {"https", "http"} if settings.wis2_allow_http else {"https"}
    return DownloadPolicy(
        source="wis2",
        hosts=tuple(settings.wis2_download_hosts),
        schemes=frozenset(schemes),
        guard=AddressGuard.build(settings.blocked_networks, settings.wis2_private_hosts),
    )


def official_schema(path: str | None) -> Any:
    """A validator of the official notification schema at `path` (None when unset);
    ConfigError naming the file when it cannot be read or is not a JSON Schema."""
    if not path:
        return None
    import jsonschema

    try:
        document = json.loads(Path(path).read_text(encoding="utf-8"))
        validator = jsonschema.validators.validator_for(document)
        validator.check_schema(document)
    except (OSError, ValueError, jsonschema.SchemaError) as error:
        raise ConfigError(
            f"INGEST_WIS2_SCHEMA_FILE {path}: not a readable JSON Schema: "
            f"{type(error).__name__}: {str(error).splitlines()[0]}"
        ) from None
    return validator(document)


class Wis2Intake:
    """Validation, download and decoding of WIS2 notifications for one consumer."""

    def __init__(self, settings: IngestSettings) -> None:
        self.settings = settings
        self.policy = wis2_policy(settings)
        self.http = guarded_client(self.policy.guard, timeout=settings.http_timeout_seconds)
        self.schema = official_schema(settings.wis2_schema_file)
        self.budget = DecodeBudget(settings.wis2_max_subsets, settings.wis2_max_values)

    def validate(self, payload: bytes, limits: Limits) -> Notification:
        """The notification model of a payload, checked against the official schema too when
        one is configured (InvalidObservation `notification` if it is not one)."""
        notification = parse_notification(payload, limits.decode)
        if self.schema is not None:
            problem = next(iter(self.schema.iter_errors(json.loads(payload))), None)
            if problem is not None:
                where = "/".join(str(p) for p in problem.absolute_path) or "(message)"
                raise InvalidObservation(
                    "notification",
                    f"not a WIS2 notification (official schema): {where}: {problem.message}",
                )
        return notification

    def fetch(
        self,
        notification: Notification,
        pause: Callable[[float], None],
        stopping: Callable[[], bool],
    ) -> bytes | None:
        """The linked data, its digest checked; transient failures retried with capped
        exponential backoff (`pause` waits) until they pass, or None once `stopping()`."""
        link = notification.data_link()

        def failed(state: object) -> None:
            outcome = state.outcome  # type: ignore[attr-defined]
            log.warning(
                "WIS2 download failed; retrying",
                extra={"id": notification.id, "error": str(outcome.exception())},
            )

        retrying = Retrying(
            retry=retry_if_exception_type(TransientDownload),
            wait=wait_exponential(
                multiplier=RETRY_FIRST_SECONDS,
                min=RETRY_FIRST_SECONDS,
                max=self.settings.retry_max_seconds,
            ),
            stop=lambda state: stopping(),
            sleep=pause,
            before_sleep=failed,
        )
        try:
            data = retrying(
                download, link.href, self.policy, self.http, self.settings.wis2_max_download_bytes
            )
        except RetryError:
            return None
        check_integrity(data, notification.properties.integrity)
        return data

    def decode(
        self,
        notification: Notification,
        data: bytes,
        now: datetime,
        limits: Limits,
        beat: Callable[[], None] = lambda: None,
    ) -> tuple[list[Observation], list[SubsetRefusal]]:
        """The observations of the BUFR data (each carrying the notification's `pubtime`, so
        a later publication replaces an earlier one) and the subsets refused."""
        published = notification.properties.pubtime.astimezone(UTC)
        return decode_bufr_bounded(data, now, limits, published, self.budget, beat)
