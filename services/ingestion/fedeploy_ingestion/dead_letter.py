"""Rejected messages, kept under a dead-letter prefix with the reason (pure).

The key derives from the message itself (a hash of topic and payload), so a message
delivered again after a crash lands on the same key instead of being counted twice.
"""

from __future__ import annotations

import base64
import hashlib
import json
from datetime import datetime

from fedeploy_ingestion.stac_documents import rfc3339

# A reason is cut to this many characters (a refusal may list many parts; the record must
# stay small whatever the input).
MAX_REASON_CHARS = 8192


def bounded_reason(reason: str, limit: int = MAX_REASON_CHARS) -> str:
    """`reason`, cut to `limit` characters with how much was left out."""
    if len(reason) <= limit:
        return reason
    return f"{reason[:limit]}... ({len(reason) - limit} more characters left out)"


def dead_letter_key(prefix: str, topic: str, payload: bytes) -> str:
    """`<prefix><sha256 of topic and payload>.json`."""
    digest = hashlib.sha256(topic.encode() + b"\0" + payload).hexdigest()
    return f"{prefix}{digest}.json"


def dead_letter_document(
    topic: str, payload: bytes, code: str, reason: str, received: datetime
) -> bytes:
    """The stored record: reason, topic, when, and the payload (text when it is UTF-8)."""
    record: dict[str, object] = {
        "reason": bounded_reason(reason),
        "code": code,
        "topic": topic,
        "received": rfc3339(received),
    }
    try:
        record["payload"] = payload.decode("utf-8")
    except UnicodeDecodeError:
        record["payload_base64"] = base64.b64encode(payload).decode()
    return json.dumps(record, indent=1, sort_keys=True).encode()
