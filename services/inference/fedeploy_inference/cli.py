"""`fedeploy-infer`: generate, train, serve, batch. Settings come from INFER_ variables.

Exit status: 0 done, 2 a user-facing error (printed on one line, no traceback).
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Sequence
from datetime import datetime

from botocore.exceptions import BotoCoreError, ClientError
from pydantic import ValidationError

from fedeploy_inference.batch import Area, run_batch
from fedeploy_inference.catalog import CatalogError
from fedeploy_inference.device import DeviceError
from fedeploy_inference.distributed import process_group_if_launched
from fedeploy_inference.registry import ModelIntegrityError, ModelNotFoundError
from fedeploy_inference.s3 import s3_client
from fedeploy_inference.settings import InferenceSettings
from fedeploy_inference.synthetic import SyntheticSpec, generate
from fedeploy_inference.train_from_store import record_dataset, train_and_publish
from fedeploy_inference.training import TrainConfig
from fedeploy_inference.window_store import write_windows

try:  # the bridge client ships with the `fedeploy` package, which the images include
    from fedeploy.errors import FedeployError
except ImportError:  # pragma: no cover - only where fedeploy is not installed
    FedeployError = ValueError  # type: ignore[assignment,misc]

USER_ERRORS = (
    ValueError,
    ModelNotFoundError,
    ModelIntegrityError,
    DeviceError,
    CatalogError,
    ClientError,
    BotoCoreError,
    FedeployError,
)


def _time(text: str) -> datetime:
    when = datetime.fromisoformat(text.replace("Z", "+00:00"))
    if when.tzinfo is None:
        raise argparse.ArgumentTypeError(f"{text!r}: a time with a UTC offset (or Z) is required")
    return when


def _bbox(text: str) -> Area:
    try:
        west, south, east, north = (float(x) for x in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r}: four numbers west,south,east,north are required"
        ) from None
    try:
        return Area(west, south, east, north)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="fedeploy-infer", description=__doc__)
    parser.add_argument("--log-level", default="INFO", choices=["DEBUG", "INFO", "WARNING"])
    sub = parser.add_subparsers(dest="command", required=True)

    gen = sub.add_parser("generate", help="write the synthetic data set's windows to the bucket")
    defaults = SyntheticSpec()
    gen.add_argument("--stations", type=int, default=defaults.stations)
    gen.add_argument("--days", type=int, default=defaults.days)
    gen.add_argument("--start", type=_time, default=defaults.start)
    gen.add_argument("--step-minutes", type=int, default=defaults.step_minutes)
    gen.add_argument("--window-hours", type=int, default=defaults.window_hours)
    gen.add_argument("--seed", type=int, default=defaults.seed)
    gen.add_argument("--create-bucket", action="store_true", help="create INFER_BUCKET first")

    train = sub.add_parser("train", help="train on the bucket's windows and publish a version")
    tdefaults = TrainConfig()
    train.add_argument("--epochs", type=int, default=tdefaults.epochs)
    train.add_argument("--batch-size", type=int, default=tdefaults.batch_size)
    train.add_argument("--learning-rate", type=float, default=tdefaults.learning_rate)
    train.add_argument("--hidden", type=int, default=tdefaults.hidden)
    train.add_argument("--layers", type=int, default=tdefaults.layers)
    train.add_argument("--holdout-fraction", type=float, default=tdefaults.holdout_fraction)
    train.add_argument("--seed", type=int, default=tdefaults.seed)
    train.add_argument(
        "--validation-fraction",
        type=float,
        default=tdefaults.validation_fraction,
        help="end of the training period used to pick the epoch (early stopping)",
    )
    train.add_argument(
        "--patience", type=int, default=tdefaults.patience, help="epochs without improvement"
    )
    train.add_argument(
        "--ablation-seeds",
        type=int,
        default=tdefaults.ablation_seeds,
        help="seeds per arm of the Sentinel ablation (with and without scene features)",
    )
    train.add_argument(
        "--nwp-available-after-hours",
        type=float,
        default=tdefaults.nwp_available_after_hours,
        help="hours after its reference time an ingested NWP run is usable (publication delay)",
    )
    train.add_argument(
        "--nwp-input",
        action="store_true",
        help="publish the model with the ingested NWP as input (HTTP clients must then send "
        "each station's forecast, batch runs read the ingested ones; without: it is only evaluated "
        "in the card)",
    )
    train.add_argument("--start", type=_time, default=None, help="first window time (default all)")
    train.add_argument("--end", type=_time, default=None, help="end of the windows used")
    train.add_argument("--note", default="", help="free text recorded in data.json")

    serve = sub.add_parser("serve", help="serve the model over HTTP")
    serve.add_argument("--host", default=None, help="default INFER_HOST")
    serve.add_argument("--port", type=int, default=None, help="default INFER_PORT")

    batch = sub.add_parser("batch", help="forecast an area over a period into the bucket")
    batch.add_argument("--bbox", type=_bbox, required=True, help="west,south,east,north")
    batch.add_argument("--start", type=_time, required=True)
    batch.add_argument("--end", type=_time, required=True)

    submit = sub.add_parser(
        "submit",
        help="run `train` or `batch` as a SLURM job through the bridge (INFER_BRIDGE_*)",
        epilog="train: arguments after `--` go to `fedeploy-infer train` in the job",
    )
    submit.add_argument("job", choices=["train", "batch"])
    submit.add_argument("--partition", default="", help="default INFER_BRIDGE_PARTITION")
    submit.add_argument("--time-limit-minutes", type=int, default=60)
    submit.add_argument("--cpus", type=int, default=4)
    submit.add_argument("--memory-mb", type=int, default=8192)
    submit.add_argument("--gpus", type=int, default=0, help="several: torchrun, one rank each")
    submit.add_argument("--python", default="python3", help="interpreter on the cluster")
    submit.add_argument("--working-directory", default="/tmp")
    submit.add_argument(
        "--pass-env",
        action="append",
        default=[],
        metavar="NAME",
        help="copy this variable into the job (e.g. AWS_ACCESS_KEY_ID)",
    )
    submit.add_argument(
        "--pass-storage-credentials",
        action="store_true",
        help="give the job short-lived storage credentials (an STS session of the keys boto3 "
        "finds here, lasting the time limit plus --queue-minutes); refused where the store "
        "has no STS",
    )
    submit.add_argument(
        "--queue-minutes",
        type=int,
        default=60,
        help="how long the job may wait to start with its storage credentials (default 60)",
    )
    submit.add_argument("--wait-minutes", type=float, default=0, help="wait for the end")
    submit.add_argument("--bbox", type=_bbox, help="batch: west,south,east,north")
    submit.add_argument("--start", help="batch: first forecast origin (RFC 3339)")
    submit.add_argument("--end", help="batch: end of the origins (RFC 3339)")
    return parser


def _settings() -> InferenceSettings:
    try:
        return InferenceSettings()  # type: ignore[call-arg]
    except ValidationError as error:
        problems = "; ".join(
            f"INFER_{'_'.join(str(p) for p in e['loc']).upper()}: {e['msg']}"
            for e in error.errors()
        )
        raise ValueError(f"settings from the environment: {problems}") from None


def _run(args: argparse.Namespace) -> int:
    settings = _settings()
    if args.command == "generate":
        client = s3_client(settings)
        if args.create_bucket:
            client.create_bucket(Bucket=settings.bucket)
        spec = SyntheticSpec(
            stations=args.stations,
            start=args.start,
            days=args.days,
            step_minutes=args.step_minutes,
            window_hours=args.window_hours,
            seed=args.seed,
        )
        count = write_windows(client, settings.bucket, generate(spec))
        record_dataset(
            client,
            settings.bucket,
            f"fedeploy synthetic set ({spec.stations} stations, {spec.days} days, seed {spec.seed})",
            synthetic=True,
        )
        print(json.dumps({"windows": count, "bucket": settings.bucket}))
    elif args.command == "train":
        config = TrainConfig(
            epochs=args.epochs,
            batch_size=args.batch_size,
            learning_rate=args.learning_rate,
            hidden=args.hidden,
            layers=args.layers,
            holdout_fraction=args.holdout_fraction,
            seed=args.seed,
            validation_fraction=args.validation_fraction,
            patience=args.patience,
            ablation_seeds=args.ablation_seeds,
            nwp_available_after_hours=args.nwp_available_after_hours,
            nwp_input=args.nwp_input,
        )
        with process_group_if_launched():
            outcome = train_and_publish(settings, config, args.start, args.end, args.note)
        if outcome.version is not None:
            print(json.dumps({"version": outcome.version, "skill": outcome.metrics["skill"]}))
    elif args.command == "serve":
        from fedeploy_inference.server import create_app, serve

        serve(
            create_app(settings),
            args.host or settings.host,
            args.port or settings.port,
            args.log_level.lower(),
        )
    elif args.command == "batch":
        ran = run_batch(settings, args.bbox, args.start, args.end)
        print(json.dumps(ran.__dict__))
    elif args.command == "submit":
        print(json.dumps(_submit(settings, args)))
    return 0


def _submit(settings: InferenceSettings, args: argparse.Namespace) -> dict[str, object]:
    import os

    from fedeploy_inference.bridge_submit import bridge_client, submit_recorded

    try:
        import fedeploy.bridge.client  # noqa: F401
    except ImportError:
        raise ValueError("submit needs the `fedeploy` package (its bridge client)") from None
    from fedeploy_inference.slurm_jobs import JobResources, batch_job, training_job

    resources = JobResources(
        partition=args.partition,
        time_limit_minutes=args.time_limit_minutes,
        cpus=args.cpus,
        memory_mb=args.memory_mb,
        gpus=args.gpus,
    )
    missing = [name for name in args.pass_env if name not in os.environ]
    if missing:
        raise ValueError(f"--pass-env: {', '.join(missing)} not set in this environment")
    extra = {name: os.environ[name] for name in args.pass_env}
    if args.pass_storage_credentials:
        from fedeploy_inference.s3 import job_storage_credentials

        _check_readable("AWS_SHARED_CREDENTIALS_FILE", "the storage credentials")
        lifetime = (args.time_limit_minutes + max(args.queue_minutes, 0)) * 60
        extra.update(job_storage_credentials(settings, lifetime))
    common = {
        "python": args.python,
        "working_directory": args.working_directory,
        "extra_environment": extra,
    }
    if args.job == "train":
        job = training_job(settings, resources, args.arguments, **common)
    else:
        if args.bbox is None or not args.start or not args.end:
            raise ValueError("submit batch: --bbox, --start and --end are required")
        job = batch_job(settings, resources, args.bbox.as_tuple(), args.start, args.end, **common)
    with bridge_client(settings) as bridge:
        job_id = submit_recorded(bridge, job)
        result: dict[str, object] = {"job_id": job_id, "idempotency_key": job.idempotency_key}
        if args.wait_minutes > 0:
            status = bridge.wait(job_id, timeout=args.wait_minutes * 60)
            result["state"] = str(status.state)
    return result


def _check_readable(variable: str, what: str) -> None:
    """ValueError naming the variable, its file and why, when the variable names a file this
    process cannot read: boto3 takes an unreadable or missing credentials file for an absent
    one and reports no credentials at all."""
    import os

    path = os.environ.get(variable)
    if not path:
        return
    try:
        with open(path, "rb"):
            pass
    except OSError as error:
        raise ValueError(f"{variable} {path}: cannot read {what} ({error.strerror})") from None


def _parse(argv: list[str]) -> argparse.Namespace:
    """The options; for `submit`, what follows the first `--` is `arguments` (the job's own,
    checked as `train` would parse them), so the submit options may come before or after
    `train`/`batch`. Exits with status 2 (argparse) on a bad option."""
    parser = _parser()
    cut = argv.index("--") if "--" in argv else len(argv)
    args, unknown = parser.parse_known_args(argv[:cut])
    if unknown:
        hint = " (train's own options go after `--`)" if args.command == "submit" else ""
        parser.error(f"unrecognized arguments: {' '.join(unknown)}{hint}")
    args.arguments = argv[cut + 1 :]
    if args.arguments and (args.command, getattr(args, "job", None)) != ("submit", "train"):
        where = "submit batch" if args.command == "submit" else args.command
        parser.error(f"{where}: arguments after `--` are only for `submit train`")
    if args.command == "submit" and args.job == "train":
        # The job runs `fedeploy-infer train <arguments>` on the cluster: a typo fails here,
        # not hours later in the queue.
        if "--" in args.arguments:
            parser.error("submit train: a second `--` in train's arguments; train takes none")
        _parse(["train", *args.arguments])
    return args


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the console script."""
    args = _parse(list(sys.argv[1:] if argv is None else argv))
    logging.basicConfig(
        level=args.log_level, format="%(asctime)s %(levelname)s %(name)s %(message)s"
    )
    try:
        return _run(args)
    except USER_ERRORS as error:
        print(f"fedeploy-infer {args.command}: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
