"""`fedeploy-ingest`: the service's entry point (sentinel, stream, harvest).

Exit status: 0 done; 1 some items failed (the next run resumes them); 2 bad settings;
3 some member sites could not be harvested (the others were).
"""

from __future__ import annotations

import argparse
import gc
import json
import logging
import signal
import sys
import time
from dataclasses import asdict

from pydantic import ValidationError

from fedeploy_ingestion import __version__, logs
from fedeploy_ingestion.errors import ConfigError, IngestError

log = logging.getLogger("fedeploy_ingestion")

EXIT_OK, EXIT_ITEMS_FAILED, EXIT_CONFIG, EXIT_SITES_MISSING = 0, 1, 2, 3


def _store(settings):  # noqa: ANN001, ANN202 - wiring only
    from fedeploy_ingestion.object_store import ObjectStore, s3_client

    return ObjectStore(
        s3_client(settings.s3_endpoint_url, settings.s3_region, settings.s3_addressing_style),
        settings.require("bucket"),
    )


def sentinel() -> int:
    """One run over INGEST_SOURCES and the agencies' sources, INGEST_ECMWF_SOURCES,
    INGEST_EUMETSAT_SOURCES, INGEST_EODAG_SOURCES and INGEST_POLYTOPE_SOURCES (a CronJob, or
    one worker of an indexed Job)."""
    from fedeploy_ingestion.catalog import CatalogClient
    from fedeploy_ingestion.metrics import Metrics
    from fedeploy_ingestion.sentinel import SentinelRun
    from fedeploy_ingestion.settings import IngestSettings

    # The run's start: every source's share of INGEST_RUN_DEADLINE_SECONDS counts from it.
    started = time.monotonic()
    settings = IngestSettings()
    logs.configure(settings.log_level)
    settings.require("site", "bucket", "catalog_url")
    agencies = _agency_runs(settings)
    if not settings.sources and not agencies:
        raise ConfigError(
            "INGEST_SOURCES, INGEST_ECMWF_SOURCES, INGEST_EUMETSAT_SOURCES, "
            "INGEST_EODAG_SOURCES and INGEST_POLYTOPE_SOURCES are empty: nothing to copy"
        )
    store, catalog, metrics = _store(settings), CatalogClient(settings.catalog_url), Metrics()
    # What start-up made (the modules, boto3's service model, the settings, the clients: about
    # 150,000 objects) is kept out of the collector's full passes, which then walk only what the
    # run makes: a full pass over all of it cost 0.09-0.11 processor seconds, in the middle of
    # a copy (docs/ingestion.md, stop 31).
    gc.freeze()
    printed: dict[str, object] = {}
    registered = failed = 0
    runs = [("", SentinelRun), *agencies.items()]

    def stop(signum: int, frame: object) -> None:
        raise Stopped

    # On SIGTERM (the Job's activeDeadlineSeconds, a deletion) the outcomes so far are printed
    # and pushed, the run under way's with "(run)": stopped, before the pod is killed.
    previous = signal.signal(signal.SIGTERM, stop)
    try:
        for kind, runner in runs:
            run = runner(settings, store, catalog, metrics, started=started)
            try:
                run.run()
            except Stopped:
                run.report.failed["(run)"] = "stopped by SIGTERM before it finished"
                log.error("run stopped by SIGTERM", extra={"source": kind or "sentinel"})
                raise
            except Exception as error:  # noqa: BLE001 - the report is printed whatever happened
                run.report.failed["(run)"] = f"{type(error).__name__}: {error}"
                log.error(
                    "run stopped early",
                    extra={
                        "source": kind or "sentinel",
                        "error": f"{type(error).__name__}: {error}",
                    },
                )
            finally:
                if kind:
                    printed[kind] = asdict(run.report)
                else:
                    printed = {**asdict(run.report), **printed}
                registered += run.report.registered
                failed += len(run.report.failed)
    except Stopped:
        pass
    finally:
        signal.signal(signal.SIGTERM, previous)
    print(json.dumps(printed, indent=1))
    if settings.pushgateway_url:
        from fedeploy_ingestion.outcome import push_sentinel

        push_sentinel(
            settings.pushgateway_url, settings.site or "", settings.shard_index, registered, failed
        )
    return EXIT_ITEMS_FAILED if failed else EXIT_OK


class Stopped(BaseException):
    """SIGTERM arrived during a sentinel run (a BaseException: no source's `except Exception`
    takes it for its own failure)."""


def _agency_runs(settings):  # noqa: ANN001, ANN202 - wiring only
    """The runs of the agencies' source kinds that are configured, by report key."""
    runs = {}
    if settings.ecmwf_sources:
        from fedeploy_ingestion.ecmwf_open_data import EcmwfRun

        runs["ecmwf"] = EcmwfRun
    if settings.eumetsat_sources:
        from fedeploy_ingestion.eumetsat import EumetsatRun

        # The Data Store needs an API key: exit 2 naming it, before any source runs.
        settings.require("eumetsat_consumer_key", "eumetsat_consumer_secret")
        runs["eumetsat"] = EumetsatRun
    if settings.eodag_sources:
        from fedeploy_ingestion.eodag_source import EodagRun

        runs["eodag"] = EodagRun
    if settings.polytope_sources:
        from fedeploy_ingestion.polytope_source import PolytopeRun

        # Polytope needs its key: exit 2 naming it, before any source runs.
        settings.require("polytope_key")
        runs["polytope"] = PolytopeRun
    return runs


def stream() -> int:
    """Consume INGEST_MQTT_TOPICS until SIGTERM, serving probes and metrics."""
    from fedeploy_ingestion.catalog import CatalogClient
    from fedeploy_ingestion.metrics import Metrics
    from fedeploy_ingestion.probes import ProbeServer
    from fedeploy_ingestion.settings import IngestSettings
    from fedeploy_ingestion.stream import Consumer
    from fedeploy_ingestion.window_writer import WindowWriter

    settings = IngestSettings()
    logs.configure(settings.log_level)
    site = settings.require("site", "bucket", "catalog_url", "mqtt_host")
    if settings.stream_format == "wis2":
        # Without both, every notification would be refused: say so before connecting.
        settings.require("mqtt_topics", "wis2_download_hosts")
    metrics = Metrics()
    store = _store(settings)
    consumer = Consumer(
        settings,
        store,
        WindowWriter(store, CatalogClient(settings.catalog_url), site, metrics),
        metrics,
    )

    probes = ProbeServer(
        settings.http_host,
        settings.http_port,
        metrics,
        healthy=lambda: time.monotonic() - consumer.heartbeat < 60,
        ready=lambda: consumer.ready,
    ).start()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: consumer.stop())
    log.info(
        "consumer starting",
        extra={
            "topics": settings.topics(),
            "client_id": settings.client_id(),
            "probes_port": probes.port,
            "version": __version__,
        },
    )
    try:
        consumer.run()
    finally:
        probes.close()
    log.info("consumer stopped")
    return EXIT_OK


def harvest() -> int:
    """Harvest HARVEST_SOURCES into HARVEST_TARGET_URL once."""
    from fedeploy_ingestion.harvest import Harvester
    from fedeploy_ingestion.metrics import Metrics
    from fedeploy_ingestion.settings import HarvestSettings, IngestSettings

    ingest = IngestSettings()
    logs.configure(ingest.log_level)
    settings = HarvestSettings()
    if not settings.target_url or not settings.sources:
        raise ConfigError("harvest needs HARVEST_TARGET_URL and HARVEST_SOURCES")
    report = Harvester(settings, Metrics()).run()
    print(json.dumps({"sites": report.sites, "missing": report.missing}, indent=1))
    if ingest.pushgateway_url:
        from fedeploy_ingestion.outcome import push_harvest

        push_harvest(ingest.pushgateway_url, ingest.site or "", report.sites)
    return EXIT_SITES_MISSING if report.missing else EXIT_OK


def _env_name(model: str, location: tuple[object, ...]) -> str:
    """`INGEST_SOURCES[0].assets` for the location ('sources', 0, 'assets')."""
    prefix = {"HarvestSettings": "HARVEST_", "AssetSettings": "ASSETS_"}.get(model, "INGEST_")
    if not location:
        return prefix + "*"
    name = prefix + str(location[0]).upper()
    for part in location[1:]:
        name += f"[{part}]" if isinstance(part, int) else f".{part}"
    return name


def assets() -> int:
    """Serve the asset endpoint: token-checked 307s to presigned URLs (ASSETS_* settings)."""
    from fedeploy_ingestion.asset_endpoint import serve

    logs.configure("INFO")
    serve()
    return EXIT_OK


COMMANDS = {"sentinel": sentinel, "stream": stream, "harvest": harvest, "assets": assets}


def main(argv: list[str] | None = None) -> int:
    """Parse the command line and run one command; errors are printed without a traceback."""
    parser = argparse.ArgumentParser(
        prog="fedeploy-ingest",
        description="fedeploy's ingestion service; settings come from INGEST_* and HARVEST_* "
        "environment variables (docs/ingestion.md).",
    )
    parser.add_argument("--version", action="version", version=__version__)
    commands = parser.add_subparsers(dest="command", required=True)
    for name, function in COMMANDS.items():
        commands.add_parser(name, help=(function.__doc__ or "").strip())
    arguments = parser.parse_args(argv)
    try:
        return COMMANDS[arguments.command]()
    except ValidationError as error:
        problems = "; ".join(
            f"{_env_name(error.title, e['loc'])}: {e['msg']}"
            for e in error.errors(include_input=False)
        )
        print(f"fedeploy-ingest {arguments.command}: invalid settings: {problems}", file=sys.stderr)
        return EXIT_CONFIG
    except ConfigError as error:
        print(f"fedeploy-ingest {arguments.command}: {error}", file=sys.stderr)
        return EXIT_CONFIG
    except IngestError as error:
        print(f"fedeploy-ingest {arguments.command}: {error}", file=sys.stderr)
        return EXIT_ITEMS_FAILED
