"""The model card: rendered from the template with the version's own metrics and data."""

from __future__ import annotations

import json
from importlib import resources
from string import Template
from typing import Any

from fedeploy_inference.contract import LIMITS, UNITS, VARIABLES
from fedeploy_inference.features import TARGETS

_FORECASTS = ("model", "persistence", "diurnal_persistence", "climatology")
_BASELINES = ("persistence", "diurnal_persistence", "climatology")
_CARD_TARGETS = (("air_temperature", "temperature"), ("precipitation", "precipitation"))


def _signed(value: float | None) -> str:
    return "n/a" if value is None else f"{value:+.2f}"


def _with_interval(value: float | None, spread: list[float] | None) -> str:
    """`+0.45 [+0.40, +0.49]`; the interval is left out where there is none."""
    if spread is None:
        return _signed(value)
    return f"{_signed(value)} [{spread[0]:+.2f}, {spread[1]:+.2f}]"


def _plain(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.2f}"


def _score_rows(metrics: dict[str, Any]) -> str:
    rows = []
    for f in _FORECASTS:
        cells = [f.replace("_", " ")]
        for target, _ in _CARD_TARGETS:
            got = metrics["scores"][f][target]
            cells += [f"{got['bias']:+.3f}", f"{got['rmse']:.3f}", f"{got['mae']:.3f}"]
        rows.append("| " + " | ".join(cells) + " |")
    return "\n".join(rows)


def _skill_rows(metrics: dict[str, Any]) -> str:
    spread = metrics.get("skill_interval", {})
    return "\n".join(
        f"| {b.replace('_', ' ')} | "
        + " | ".join(
            _with_interval(metrics["skill"][b][t], spread.get(b, {}).get(t))
            for t, _ in _CARD_TARGETS
        )
        + " |"
        for b in _BASELINES
    )


def _event_rows(metrics: dict[str, Any]) -> str:
    rows = []
    for threshold, by_forecast in metrics.get("events", {}).items():
        for f, got in by_forecast.items():
            ets = _with_interval(
                got["equitable_threat_score"], got.get("equitable_threat_score_interval")
            )
            rows.append(
                f"| >= {threshold} mm/h | {f.replace('_', ' ')} | {got['hits']} | "
                f"{got['false_alarms']} | {got['misses']} | {got['correct_negatives']} | "
                f"{_plain(got['hit_rate'])} | {_plain(got['false_alarm_ratio'])} | "
                f"{_plain(got['frequency_bias'])} | {ets} |"
            )
    return "\n".join(rows) or "| (not recorded) | | | | | | | | | |"


def event_verdicts(metrics: dict[str, Any]) -> str:
    """Per threshold and baseline: ETS(model) - ETS(baseline) with its paired interval (both
    scored on the same resampled days) and what it says."""
    lines = []
    for threshold, by_forecast in metrics.get("events", {}).items():
        model = by_forecast.get("model", {})
        verdicts = model.get("equitable_threat_score_verdict", {})
        for base, spread in model.get("equitable_threat_score_difference_interval", {}).items():
            shown = "" if spread is None else f" [{spread[0]:+.3f}, {spread[1]:+.3f}]"
            lines.append(
                f"- >= {threshold} mm/h, ETS(model) - ETS({base.replace('_', ' ')}){shown}: "
                f"{verdicts.get(base, 'not measurable')}"
            )
    return "\n".join(lines) or "- (not recorded)"


def ablation_text(metrics: dict[str, Any]) -> str:
    """The Sentinel ablation as the card states it: untested (and why), or per target the RMSE
    with and without the scene features, their difference with its interval, and the verdict."""
    ablation = metrics.get("scene_ablation")
    if not ablation:
        return "Not measured by this version's training."
    seen = ablation["samples_with_scene"]
    if ablation["status"] != "measured":
        return (
            f"**Untested on this data**: {ablation['reason']} ({seen['train']} training and "
            f"{seen['test']} held-out samples had one). Nothing here says whether the scenes "
            "help."
        )
    first = next(iter(ablation["by_target"].values()))
    seeds = ", ".join(str(x) for x in first["seeds"])
    lines = [
        "The same network trained without the scene features (same samples and schedule; "
        f"{seen['train']} training and {seen['test']} held-out samples had a scene), each arm "
        f"with seeds {seeds}, paired by seed. Difference: mean over seeds of RMSE without minus "
        "RMSE with (positive: the scenes help), with its paired interval over seeds and days.",
        "",
        "| variable | RMSE with scenes | without | difference | per seed | verdict |",
        "|---|---|---|---|---|---|",
    ]
    for target, got in ablation["by_target"].items():
        spread = got["difference_interval"]
        interval = "" if spread is None else f" [{spread[0]:+.3f}, {spread[1]:+.3f}]"
        per_seed = ", ".join(
            f"{w - m:+.3f}"
            for w, m in zip(
                got["rmse_without_scenes_by_seed"], got["rmse_with_scenes_by_seed"], strict=True
            )
        )
        lines.append(
            f"| {target} | {got['rmse_with_scenes']:.3f} | {got['rmse_without_scenes']:.3f} | "
            f"{got['difference']:+.3f}{interval} | {per_seed} | the scenes {_said(got['verdict'])} |"
        )
    return "\n".join(lines)


def _said(verdict: str) -> str:
    return {
        "help": "help",
        "hurt": "hurt",
        "no measurable difference": "make no measurable difference",
    }.get(verdict, "are untested")


def _station_rows(metrics: dict[str, Any]) -> str:
    rows = []
    for station, entry in sorted(metrics.get("by_station", {}).items()):
        for target in TARGETS:
            got = entry.get(target, {"count": 0})
            if not got["count"]:
                rows.append(f"| {station} | {target} | 0 | not forecast | | | | | | |")
                continue
            rmse, spread = got["rmse"], got.get("skill_interval", {})
            skills = [_with_interval(got["skill"][b], spread.get(b)) for b in _BASELINES]
            rows.append(
                f"| {station} | {target} | {got['count']} | "
                + " | ".join(f"{rmse[f]:.3f}" for f in _FORECASTS)
                + " | "
                + " | ".join(skills)
                + " |"
            )
    return "\n".join(rows) or "| (not recorded) | | | | | | | | | |"


def _lead_rows(metrics: dict[str, Any]) -> str:
    by_lead = metrics.get("skill_by_lead_hour")
    if not by_lead:
        return "| (not recorded) | | | | | | | | |"
    counts = metrics["scores"]["model"]
    spread = metrics.get("skill_interval_by_lead_hour", {})
    rows = []
    for i in range(len(by_lead["persistence"]["air_temperature"])):
        cells = [str(i + 1)]
        for target in TARGETS:
            cells.append(str(counts[target]["count_by_lead_hour"][i]))
            cells += [
                _with_interval(
                    by_lead[b][target][i], spread.get(b, {}).get(target, [None] * (i + 1))[i]
                )
                for b in _BASELINES
            ]
        rows.append("| " + " | ".join(cells) + " |")
    return "\n".join(rows)


def _bootstrap(metrics: dict[str, Any]) -> str:
    b = metrics.get("bootstrap")
    if not b:
        return "not recorded"
    return (
        f"{b['resamples']} resamples of {b['block_count']} blocks (each a UTC day of the origin "
        f"with every station's samples of it; per station, that station's days), seed {b['seed']}"
    )


def _periods(metrics: dict[str, Any]) -> str:
    spans = metrics.get("periods", {})
    return "; ".join(f"{name} {p['start']} to {p['end']}" for name, p in spans.items()) or (
        "not recorded"
    )


def _selection(data: dict[str, Any]) -> str:
    chosen = data.get("training", {})
    if not chosen:
        return ""
    kept = chosen["best_epoch"]
    # A network correcting the NWP starts as the NWP itself: epoch 0 is that, untrained.
    untrained = " (0: the untrained network, the NWP itself)" if kept == 0 else ""
    return (
        f"Epochs: best validation loss at epoch {kept}{untrained} of {chosen['epochs_run']} "
        f"run (at most {chosen['max_epochs']}); validation: origins from "
        f"{chosen['validation_start']} up to the held-out period, "
        f"{chosen['validation_samples']} samples. Precipitation forecasts below "
        f"{chosen.get('dry_below_mm', 0.0):g} mm are given as 0 (the amount that gave the best "
        "equitable threat score for hours of at least 0.1 mm on the validation period)."
    )


_NWP_NAMES = {
    "nwp_raw": "NWP, raw (nearest grid point)",
    "nwp_lapse_corrected": "NWP, lapse-rate corrected",
    "persistence": "persistence",
    "climatology": "climatology",
    "model_without_nwp": "model without the NWP input",
    "model_with_nwp": "model with the NWP input",
}


def _not_read(source: dict[str, Any]) -> str:
    """The sentence naming the ingested NWP sources training did not read, and why."""
    return (
        "Ingested but not read: "
        + "; ".join(f"{k} ({v})" for k, v in source["sources_not_read"].items())
        + "."
    )


def nwp_text(metrics: dict[str, Any]) -> str:
    """The card's NWP section: the NWP baseline (raw and lapse-rate corrected) beside
    persistence, climatology and the model with and without the NWP input, with the data each
    figure rests on; where no forecast was ingested, that sentence."""
    got = metrics.get("nwp")
    if not got:
        return "Not evaluated: this version's metrics predate NWP input."
    source = got.get("source") or {}
    if got.get("status") != "measured":
        read = ""
        if source.get("products") is not None:
            read = (
                f" ({source['products']} product(s) read; stations not covered: "
                + (", ".join(f"{k}: {v}" for k, v in source["not_covered"].items()) or "none")
                + (
                    "; failed: " + ", ".join(source["failed_products"])
                    if source.get("failed_products")
                    else ""
                )
                + ")"
            )
        return (
            f"No NWP baseline and no NWP input: {got.get('reason', 'no forecast ingested')}"
            f"{read}. The model is trained on observations alone."
            + (" " + _not_read(source) if source.get("sources_not_read") else "")
        )
    data = got["data"]
    kind = (
        "**synthetic** (observations plus a seeded error model, `synthetic_nwp`)"
        if source.get("synthetic")
        else "as ingested"
    )
    runs = source.get("runs") or ["?", "?"]
    rests_on = (
        f"All rows rest on the same {data['values']} temperature values ({data['samples']} of "
        f"{data['held_out_samples']} held-out samples x lead hours the NWP covers) at "
        f"{len(data['stations'])} station(s) ({', '.join(data['stations'])}), origins "
        f"{data['origins']['start']} to {data['origins']['end']}; NWP: "
        f"{source.get('products')} product(s) of model(s) {', '.join(source.get('models', []))}, "
        f"runs {runs[0]} to {runs[1]}, {kind}; the newest run at least "
        f"{source.get('available_after_hours', 0):g} h old at the origin, "
        f"{source.get('method', '')}."
    )
    correction = source.get("lapse_rate_correction") or {}
    notes = []
    if correction:
        notes.append(
            "Height correction per station: "
            + ", ".join(f"{k} {v}" for k, v in correction.items())
            + "."
        )
    if source.get("not_covered"):
        notes.append(
            "Not covered: "
            + "; ".join(f"{k} ({v})" for k, v in source["not_covered"].items())
            + "."
        )
    if source.get("sources_not_read"):
        notes.append(_not_read(source))
    if source.get("failed_products"):
        notes.append(
            f"{len(source['failed_products'])} product(s) could not be read and were left out: "
            + "; ".join(list(source["failed_products"].values())[:5])
            + "."
        )
    skill = got.get("skill_of_model_with_nwp", {})
    spread = got.get("skill_interval_of_model_with_nwp", {})
    published = got.get("published", "model_with_nwp")
    if published != "model_with_nwp":
        notes.append(
            "This version is the model without the NWP input: the one with it is trained and "
            "scored here for evaluation, not published (`--nwp-input` publishes it): batch runs "
            "do not feed forecasts yet, and HTTP clients must send each station's (`forecast`)."
        )
    rows = []
    for f, label in _NWP_NAMES.items():
        score = got["scores"][f]
        label += " (this version)" if f == published else ""
        against = "" if f == "model_with_nwp" else _with_interval(skill.get(f), spread.get(f))
        rows.append(
            f"| {label} | {score['bias']:+.3f} | {score['rmse']:.3f} | {score['mae']:.3f} | "
            f"{score['count']} | {against} |"
        )
    return "\n".join(
        [
            "Temperature (degC) on the held-out hours the NWP covers; precipitation from the NWP is "
            "not read. " + rests_on,
            "",
            "| forecast | bias | RMSE | MAE | values | skill of the model with the NWP input "
            "against it |",
            "|---|---|---|---|---|---|",
            *rows,
            "",
            *notes,
        ]
    ).strip()


def nwp_input(features: dict[str, Any], metrics: dict[str, Any] | None = None) -> str:
    """The card's line on the NWP input: used or not (a model's contract), and why not."""
    if features.get("nwp"):
        return (
            " and, per lead hour, the NWP 2 m temperature forecast for the station from the "
            "site's ingested ECMWF products (nearest grid point, lapse-rate corrected; a model "
            "trained with it is only served where it can be fed)"
        )
    if ((metrics or {}).get("nwp") or {}).get("status") == "measured":
        return (
            "; no NWP input (forecasts were ingested: a model with them is evaluated in "
            '"NWP at the stations" but not published: batch runs do not feed them yet)'
        )
    return "; no NWP input (none was ingested where it was trained)"


MEASURED_SOURCES = "templates/real-data.json"


def measured_sources() -> list[dict[str, Any]]:
    """The data sets behind the card's measured-data figures (`real-data.md`): name, source and
    test period of each, as `benchmarks/model_skill.py --write-card` recorded them beside the
    figures; empty where none is recorded."""
    path = resources.files("fedeploy_inference").joinpath(MEASURED_SOURCES)
    return json.loads(path.read_text()) if path.is_file() else []


def figure_sources(data: dict[str, Any], metrics: dict[str, Any]) -> dict[str, Any]:
    """Where each published figure came from: the held-out scores of `metrics.json` (and the
    card's evaluation) from the version's own data and test period; the card's measured-data
    section from the data sets `measured_sources` names; the NWP section from the products read
    (synthetic or not) and the held-out values it scored."""
    return {
        "metrics.json": {
            "data": dataset_title(data),
            "source": data.get("source"),
            "synthetic": bool(data.get("synthetic", False)),
            "test_period": metrics.get("periods", {}).get("test"),
        },
        "model-card.md#on-measured-station-data": measured_sources(),
        "model-card.md#nwp-at-the-stations": {
            "status": metrics.get("nwp", {}).get("status"),
            "nwp": metrics.get("nwp", {}).get("source"),
            "scored": metrics.get("nwp", {}).get("data"),
        },
    }


def dataset_title(data: dict[str, Any]) -> str:
    """The data's name, marked `(synthetic)` when it is and its name does not say so already:
    the card's and the plot's title."""
    name = str(data.get("name") or data.get("source", "unnamed data"))
    said = "synthetic" in name.lower()
    return f"{name} (synthetic)" if data.get("synthetic") and not said else name


def render_model_card(
    manifest: dict[str, Any], metrics: dict[str, Any], data: dict[str, Any]
) -> str:
    """Markdown card for a version from its manifest, metrics and data description."""
    template = Template(
        resources.files("fedeploy_inference").joinpath("templates/model-card.md").read_text()
    )
    features = manifest["features"]
    inputs = "\n".join(
        f"| `{v}` | {UNITS[v]} | {LIMITS[v][0]:g} to {LIMITS[v][1]:g} |" for v in VARIABLES
    )
    scores = metrics["scores"]
    summary = (
        f"{data['rows']} observations from {len(data['stations'])} station(s), "
        f"{data['windows']} window objects under `{data['source']}`, "
        f"{data['period']['start']} to {data['period']['end']}; "
        f"{data['samples']['train']} training and {data['samples']['test']} held-out samples. "
        f"{data.get('note', '')}"
    ).strip()
    reported = data.get("forecast_variables", {})
    station_rows = "\n".join(
        f"| {station} | {', '.join(f'`{t}`' for t in made) or 'none'} | "
        f"{', '.join(f'`{t}`' for t in TARGETS if t not in made) or 'none'} |"
        for station, made in sorted(reported.items())
    )
    real_data = resources.files("fedeploy_inference").joinpath("templates/real-data.md")
    return template.substitute(
        real_data=real_data.read_text().strip(),
        dataset=dataset_title(data),
        station_scores=_station_rows(metrics),
        lead_skill=_lead_rows(metrics),
        scored_t=scores["model"]["air_temperature"]["count"],
        scored_p=scores["model"]["precipitation"]["count"],
        selection=_selection(data),
        station_variables=station_rows or "| (none recorded) | | |",
        name=manifest["name"],
        version=manifest["version"],
        created=manifest["created"],
        code_version=manifest["code_version"],
        weights_sha256=manifest["files"]["weights.pt"]["sha256"],
        horizon=features["horizon_hours"],
        context=features["context_hours"],
        anchor=features["anchor_hours"],
        input_rows=inputs,
        data_summary=summary,
        split=data["split"],
        metric_rows=_score_rows(metrics),
        skill_rows=_skill_rows(metrics),
        confidence=f"{metrics.get('bootstrap', {}).get('confidence', 0.95):.0%}",
        bootstrap=_bootstrap(metrics),
        event_rows=_event_rows(metrics),
        event_verdicts=event_verdicts(metrics),
        ablation=ablation_text(metrics),
        nwp=nwp_text(metrics),
        nwp_input=nwp_input(features, metrics),
        nwp_limit=(
            "it does not see neighbouring stations, and of numerical weather prediction only "
            "the 2 m temperature at the grid point nearest the station"
            if features.get("nwp")
            else "it does not see neighbouring stations or numerical weather prediction"
        ),
        periods=_periods(metrics),
        lead_model=scores["model"]["air_temperature"]["rmse_by_lead_hour"],
        lead_persistence=scores["persistence"]["air_temperature"]["rmse_by_lead_hour"],
        stations=len(data["stations"]),
        period=f"{data['period']['start']} to {data['period']['end']}",
    )
