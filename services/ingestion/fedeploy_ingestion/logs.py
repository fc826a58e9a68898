"""Structured logs: one JSON object per line on stderr, never a secret."""

from __future__ import annotations

import json
import logging
import re
import sys
from datetime import UTC, datetime

# Attributes every LogRecord has; anything else came from `extra=` and is logged as a field.
_STANDARD = set(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message", "asctime"}
# user:password@ in URLs, and bearer or basic tokens, wherever they appear in a message.
_SECRETS = [
    (re.compile(r"(?<=://)[^/@\s:]+:[^/@\s]+@"), "***:***@"),
    (
        re.compile(r"(?i)(authorization[\"']?\s*[:=]\s*[\"']?)(bearer|basic)\s+[^\s\"',]+"),
        r"\1\2 ***",
    ),
    (re.compile(r"(?i)(password|secret|token)([\"']?\s*[:=]\s*[\"']?)[^\s\"',&]+"), r"\1\2***"),
]


def redact(text: str) -> str:
    """Mask credentials that may hide in URLs, headers or error messages."""
    for pattern, replacement in _SECRETS:
        text = pattern.sub(replacement, text)
    return text


class JsonFormatter(logging.Formatter):
    """`{"time", "level", "logger", "message", ...extra fields}` as one JSON line."""

    def format(self, record: logging.LogRecord) -> str:
        document: dict[str, object] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": redact(record.getMessage()),
        }
        for key, value in vars(record).items():
            if key not in _STANDARD:
                document[key] = redact(value) if isinstance(value, str) else value
        if record.exc_info:
            document["exception"] = redact(self.formatException(record.exc_info))
        return json.dumps(document, default=lambda v: redact(str(v)))


def configure(level: str) -> None:
    """Send every log record to stderr as JSON, at `level` and above."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # Libraries that log request URLs or headers at DEBUG stay at WARNING.
    for noisy in ("botocore", "boto3", "urllib3", "httpx", "httpcore"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
