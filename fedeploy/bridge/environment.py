"""The environment variables a bridge client reads: one module without the client's imports,
so the CLI can name them in its help text without loading HTTP and the job models."""

from __future__ import annotations

ENV_URL = "FEDEPLOY_BRIDGE_URL"
ENV_USER = "FEDEPLOY_BRIDGE_USER"
ENV_TOKEN = "FEDEPLOY_BRIDGE_TOKEN"
ENV_CA = "FEDEPLOY_BRIDGE_CA"
ENV_PARTITIONS = "FEDEPLOY_BRIDGE_PARTITIONS"
ENV_API_VERSION = "FEDEPLOY_BRIDGE_API_VERSION"
