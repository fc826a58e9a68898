"""MQTT topic filters in a stack file (the stream's `mqtt.topics`, WIS2's `wis2.topics`): one
check for both, with the rules of MQTT 3.1.1 and 5.0 (section 4.7) and of the ingestion chart.

MQTT: a filter is 1 to 65535 bytes of UTF-8 without U+0000; `#` is the last level, alone
(`a/#`, `#`); `+` is a whole level (`a/+/b`). A broker refuses any other filter at subscribe
time, so the consumer would only fail in its pod. The chart: the topics reach the consumer as
one comma-separated variable (INGEST_MQTT_TOPICS, each item stripped), so no item holds a comma
or whitespace, and each is listed once (its values.schema.json: `uniqueItems`)."""

from __future__ import annotations

from typing import Annotated

from pydantic import AfterValidator
from pydantic.json_schema import WithJsonSchema

# The same rules as a regular expression (RE2 and Python alike), for the stack file's schema and
# the ingestion chart's values.schema.json (stream.mqtt.topics, with minLength 1).
TOPIC_FILTER_PATTERN = r"^(#|(\+|[^/+#,\s]*)(/(\+|[^/+#,\s]*))*(/#)?)$"
TOPIC_FILTER_WORDS = (
    "an MQTT topic filter of levels separated by '/': '+' only as a whole level, '#' only as "
    "the whole last level, no whitespace, comma or control character, 1 to 65535 bytes"
)
_MAX_BYTES = 65535


def topic_filter_problem(topic: str) -> str | None:
    """Why `topic` is not a filter the broker and the ingestion chart take, or None."""
    if not topic:
        return "is empty"
    if any(c.isspace() or ord(c) < 0x20 or ord(c) == 0x7F for c in topic):
        return "holds whitespace or a control character"
    if "," in topic:
        return (
            "holds a comma: the topics reach the consumer as one comma-separated list, where it "
            "would make two filters"
        )
    if len(topic.encode()) > _MAX_BYTES:
        return f"is longer than {_MAX_BYTES} bytes (MQTT's limit)"
    levels = topic.split("/")
    for index, level in enumerate(levels):
        if "#" in level and (level != "#" or index != len(levels) - 1):
            return "has '#' other than as the whole last level (a/#, not a/#/b or a/b#)"
        if "+" in level and level != "+":
            return "has '+' other than as a whole level (a/+/b, not a/b+)"
    return None


def check_topic_filter(topic: str) -> str:
    """`topic` when it is a valid filter; ValueError naming it and the rule otherwise."""
    if problem := topic_filter_problem(topic):
        raise ValueError(f"the topic filter {topic!r} {problem}; allowed: {TOPIC_FILTER_WORDS}")
    return topic


def check_unique_topics(topics: list[str]) -> list[str]:
    """`topics` when no filter is listed twice; ValueError naming the first repeated one."""
    twice = [t for i, t in enumerate(topics) if t in topics[:i]]
    if twice:
        raise ValueError(f"lists the topic filter {twice[0]!r} twice; list each once")
    return topics


TopicFilter = Annotated[
    str,
    AfterValidator(check_topic_filter),
    WithJsonSchema(
        {
            "type": "string",
            "minLength": 1,
            "pattern": TOPIC_FILTER_PATTERN,
            "description": TOPIC_FILTER_WORDS,
        }
    ),
]
"""An MQTT topic filter (see topic_filter_problem)."""
