"""The model's skill, beside persistence and climatology, on two data sets: the synthetic set and
measured station data (the three typical-meteorological-year files pvlib ships in pvlib/data,
converted by `fedeploy_inference.tmy` with the ingestion writer; nothing is downloaded).

    .venv/bin/python benchmarks/model_skill.py [--epochs 60] [--data synthetic,real]

Needs the inference package's `realdata` extra (pvlib) for the real-data part. Prints RMSE and
MAE per target and per station, with scored counts, skill per lead hour, the chosen epoch, and
each goal beside its figure:
- synthetic: temperature RMSE >= 50 % below persistence, precipitation RMSE below persistence;
- real: temperature RMSE >= 50 % below persistence overall and below persistence at every
  station; precipitation RMSE below persistence and climatology where the station measures it.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any

import pyarrow as pa
import torch
from fedeploy_inference.features import TARGETS
from fedeploy_inference.hourly import to_hourly
from fedeploy_inference.synthetic import SyntheticSpec, generate
from fedeploy_inference.training import TrainConfig, TrainingResult, train

UNITS = {"air_temperature": "degC", "precipitation": "mm/h"}


def synthetic() -> tuple[dict[str, Any], dict[str, list[int]]]:
    series = to_hourly(pa.concat_tables([t for _, t in generate(SyntheticSpec())]))
    return series, {}


def real() -> tuple[dict[str, Any], dict[str, list[int]]]:
    from fedeploy_inference.tmy import pvlib_stations, to_windows

    records = pvlib_stations()
    tables = [t for r in records for _, t in to_windows(r)]
    return to_hourly(pa.concat_tables(tables)), {r.station: r.breaks_us for r in records}


def _fmt(value: float | None) -> str:
    return "   n/a" if value is None else f"{value:+.3f}"


def report(name: str, result: TrainingResult, seconds: float) -> list[tuple[str, bool]]:
    m = result.metrics
    sc = m["scores"]
    chosen = result.selection
    print(f"\n== {name} ==")
    print(
        f"{len(result.station_targets)} stations, {result.train_samples} training / "
        f"{chosen['validation_samples']} validation / {len(result.test)} held-out samples; "
        f"epoch {chosen['best_epoch']} kept of {chosen['epochs_run']} run "
        f"(max {chosen['max_epochs']}); {seconds:.0f} s"
    )
    print(f"{'target':<16} {'forecast':<12} {'RMSE':>8} {'MAE':>8} {'scored':>8}")
    for target in TARGETS:
        for f in ("model", "persistence", "climatology"):
            s = sc[f][target]
            print(f"{target:<16} {f:<12} {s['rmse']:>8.3f} {s['mae']:>8.3f} {s['count']:>8}")
    print("skill by lead hour (1 - RMSE/RMSE baseline):")
    for target in TARGETS:
        for b in ("persistence", "climatology"):
            row = " ".join(_fmt(x) for x in m["skill_by_lead_hour"][b][target])
            print(f"  {target:<16} vs {b:<12} {row}")
    print(f"{'station':<26} {'target':<16} {'scored':>7} {'model':>8} {'persist':>8} {'clim':>8}")
    for station, entry in m["by_station"].items():
        for target in TARGETS:
            got = entry[target]
            if not got["count"]:
                print(f"{station:<26} {target:<16} {0:>7}   not forecast (never reported)")
                continue
            r = got["rmse"]
            print(
                f"{station:<26} {target:<16} {got['count']:>7} {r['model']:>8.3f} "
                f"{r['persistence']:>8.3f} {r['climatology']:>8.3f}"
            )
    skill = m["skill"]["persistence"]
    goals = [
        (
            f"{name}: temperature skill vs persistence {skill['air_temperature']:.3f} >= 0.5",
            skill["air_temperature"] >= 0.5,
        )
    ]
    return goals + _goals(name, m)


def _goals(name: str, m: dict[str, Any]) -> list[tuple[str, bool]]:
    goals = []
    if name == "synthetic":
        s = m["skill"]["persistence"]["precipitation"]
        return [(f"synthetic: precipitation skill vs persistence {s:.3f} > 0", s > 0)]
    for station, entry in m["by_station"].items():
        t = entry["air_temperature"]
        if t["count"]:
            goals.append(
                (
                    f"real: {station} temperature RMSE {t['rmse']['model']:.3f} < persistence "
                    f"{t['rmse']['persistence']:.3f}",
                    t["rmse"]["model"] < t["rmse"]["persistence"],
                )
            )
        p = entry["precipitation"]
        if p["count"]:
            r = p["rmse"]
            goals.append(
                (
                    f"real: {station} precipitation RMSE {r['model']:.3f} < persistence "
                    f"{r['persistence']:.3f} and climatology {r['climatology']:.3f}",
                    r["model"] < r["persistence"] and r["model"] < r["climatology"],
                )
            )
    return goals


CARD_FIGURES = (
    Path(__file__).resolve().parents[1]
    / "services/inference/fedeploy_inference/templates/real-data.md"
)


def card_figures(result: TrainingResult) -> str:
    """The real-data figures as the Markdown every model card includes."""
    m = result.metrics
    lines = [
        "Figures of this code version's network and training, trained and scored on measured "
        "data (the three TMY station files pvlib ships; `benchmarks/model_skill.py --data real "
        "--write-card`), held out from 20 October:",
        "",
        "| station | variable | scored | model RMSE | persistence | climatology |",
        "|---|---|---|---|---|---|",
    ]
    for target in TARGETS:
        s = m["scores"]
        lines.append(
            f"| all | {target} ({UNITS[target]}) | {s['model'][target]['count']} | "
            f"{s['model'][target]['rmse']:.3f} | {s['persistence'][target]['rmse']:.3f} | "
            f"{s['climatology'][target]['rmse']:.3f} |"
        )
        for station, entry in m["by_station"].items():
            got = entry[target]
            if not got["count"]:
                lines.append(f"| {station} | {target} | 0 | not forecast: never reported | | |")
                continue
            r = got["rmse"]
            lines.append(
                f"| {station} | {target} | {got['count']} | {r['model']:.3f} | "
                f"{r['persistence']:.3f} | {r['climatology']:.3f} |"
            )
    skill = m["skill"]["persistence"]["air_temperature"]
    lines += [
        "",
        f"Temperature skill against persistence {skill:.2f} (goal 0.50); see docs/model.md.",
    ]
    return "\n".join(lines) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--epochs", type=int, default=TrainConfig().epochs)
    parser.add_argument("--data", default="synthetic,real")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--write-card",
        action="store_true",
        help="write the real-data figures into the model card's template (real-data.md)",
    )
    args = parser.parse_args()
    goals: list[tuple[str, bool]] = []
    for name in args.data.split(","):
        series, breaks = {"synthetic": synthetic, "real": real}[name]()
        began = time.perf_counter()
        result = train(
            series,
            TrainConfig(epochs=args.epochs, seed=args.seed),
            torch.device("cpu"),
            breaks=breaks,
        )
        goals += report(name, result, time.perf_counter() - began)
        if name == "real" and args.write_card:
            CARD_FIGURES.write_text(card_figures(result))
    print("\n== goals ==")
    for text, met in goals:
        print(f"[{'met' if met else 'MISSED'}] {text}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
