"""The one source of truth for the catalog's versions, read by tests and by the chart check.

The `catalog` chart pins images with these tags; `services/ingestion/tests` checks that the
chart's values and the Python packages installed for the tests agree with this file.
"""

# pgstac: the database schema, migrated by pypgstac of the same version.
PGSTAC_VERSION = "0.10.0"
# stac-fastapi-pgstac: the STAC API served over pgstac.
STAC_FASTAPI_PGSTAC_VERSION = "7.2.0"

# Image tags as published on ghcr.io/stac-utils: pgstac's tags carry a leading "v",
# stac-fastapi-pgstac's do not.
PGSTAC_IMAGE = f"ghcr.io/stac-utils/pgstac:v{PGSTAC_VERSION}"
PYPGSTAC_IMAGE = f"ghcr.io/stac-utils/pgstac-pypgstac:v{PGSTAC_VERSION}"
STAC_FASTAPI_PGSTAC_IMAGE = f"ghcr.io/stac-utils/stac-fastapi-pgstac:{STAC_FASTAPI_PGSTAC_VERSION}"
