"""The catalog for real (stac-fastapi-pgstac over pgstac on loopback): forecast runs are
registered, Sentinel scenes are found over a station and reach training."""

from datetime import UTC, datetime, timedelta

import httpx
import pytest
from fedeploy_inference.batch import Area, run_batch
from fedeploy_inference.catalog import scenes_for_stations
from fedeploy_inference.registry import load_manifest, publish, resolve_version
from fedeploy_inference.s3 import s3_client
from fedeploy_inference.train_from_store import train_and_publish
from fedeploy_inference.training import TrainConfig
from fedeploy_inference.window_store import write_windows

from tests.samples import DATA

pytestmark = pytest.mark.integration


def test_a_batch_run_is_registered_and_registering_again_is_harmless(
    settings, trained, small_data, stac_api
):
    with_catalog = settings.model_copy(update={"catalog_url": stac_api})
    client = s3_client(settings)
    write_windows(client, settings.bucket, small_data.windows)
    publish(client, settings.bucket, settings.model_name, trained, DATA)
    start, end = datetime(2026, 2, 25, tzinfo=UTC), datetime(2026, 2, 25, 6, tzinfo=UTC)
    first = run_batch(with_catalog, Area(0, 40, 20, 55), start, end)
    second = run_batch(with_catalog, Area(0, 40, 20, 55), start, end)
    assert first.registered and second.run_id == first.run_id
    item = httpx.get(
        f"{stac_api}/collections/{settings.forecast_collection}/items/{first.run_id}"
    ).json()
    assert item["assets"]["data"]["href"] == f"s3://{settings.bucket}/{first.key}"
    search = httpx.post(f"{stac_api}/search", json={"collections": [settings.forecast_collection]})
    ids = [f["id"] for f in search.json()["features"]]
    assert ids.count(first.run_id) == 1


def _scene(collection, item_id, when, lon, lat, cloud):
    return {
        "type": "Feature",
        "stac_version": "1.1.0",
        "stac_extensions": ["https://stac-extensions.github.io/eo/v1.1.0/schema.json"],
        "id": item_id,
        "collection": collection,
        "bbox": [lon - 0.5, lat - 0.5, lon + 0.5, lat + 0.5],
        "geometry": {
            "type": "Polygon",
            "coordinates": [
                [
                    [lon - 0.5, lat - 0.5],
                    [lon + 0.5, lat - 0.5],
                    [lon + 0.5, lat + 0.5],
                    [lon - 0.5, lat + 0.5],
                    [lon - 0.5, lat - 0.5],
                ]
            ],
        },
        "properties": {
            "datetime": when.isoformat().replace("+00:00", "Z"),
            "eo:cloud_cover": cloud,
        },
        "assets": {},
        "links": [],
    }


def test_scenes_over_a_station_feed_training(settings, small_data, stac_api):
    collection = f"s2-{settings.bucket}"
    httpx.post(
        f"{stac_api}/collections",
        json={
            "type": "Collection",
            "stac_version": "1.1.0",
            "id": collection,
            "description": "test",
            "license": "other",
            "links": [],
            "extent": {
                "spatial": {"bbox": [[-180, -90, 180, 90]]},
                "temporal": {"interval": [[None, None]]},
            },
        },
    ).raise_for_status()
    station = small_data.series["syn-000"]
    for day in range(0, 60, 5):
        when = datetime(2026, 1, 1, 10, 30, tzinfo=UTC) + timedelta(days=day)
        item = _scene(collection, f"scene-{day}", when, station.longitude, station.latitude, day)
        httpx.post(f"{stac_api}/collections/{collection}/items", json=item).raise_for_status()
    found = scenes_for_stations(stac_api, collection, small_data.series)
    assert found["syn-000"].times_us.size == 12
    assert found["syn-002"].times_us.size == 0, "the scenes do not cover the eastern station"
    assert list(found["syn-000"].cloud_cover[:3]) == [0.0, 5.0, 10.0]

    client = s3_client(settings)
    write_windows(client, settings.bucket, small_data.windows)
    configured = settings.model_copy(
        update={"catalog_url": stac_api, "sentinel_collection": collection}
    )
    outcome = train_and_publish(configured, TrainConfig(epochs=5))
    version = resolve_version(client, settings.bucket, settings.model_name, "latest")
    assert outcome.version == version
    data = client.get_object(
        Bucket=settings.bucket, Key=f"models/{settings.model_name}/{version}/data.json"
    )["Body"].read()
    assert b'"sentinel_scenes": 12' in data
    assert load_manifest(client, settings.bucket, settings.model_name, version)["name"]
