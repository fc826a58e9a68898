"""Real peers on loopback for tests, benchmarks and the one-command demo.

PostgreSQL with PostGIS and pgstac, stac-fastapi-pgstac with transactions, mosquitto and
S3 (SeaweedFS, which checks signatures, or moto). Each peer listens on 127.0.0.1 only, on
free ports, keeps its files in a directory it is given, and is stopped by its pid file.
"""

from loopback.errors import PeerStartError, PeerUnavailable
from loopback.mosquitto import MosquittoBroker
from loopback.postgres import PostgresServer
from loopback.s3 import MotoS3, S3Endpoint, SeaweedS3
from loopback.stac_api import StacApiServer
from loopback.versions import PGSTAC_VERSION, STAC_FASTAPI_PGSTAC_VERSION

__all__ = [
    "PGSTAC_VERSION",
    "STAC_FASTAPI_PGSTAC_VERSION",
    "MosquittoBroker",
    "MotoS3",
    "PeerStartError",
    "PeerUnavailable",
    "PostgresServer",
    "S3Endpoint",
    "SeaweedS3",
    "StacApiServer",
]
