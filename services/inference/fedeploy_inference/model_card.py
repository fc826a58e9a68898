"""The model card: rendered from the template with the version's own metrics and data."""

from __future__ import annotations

from importlib import resources
from string import Template
from typing import Any

from fedeploy_inference.contract import LIMITS, UNITS, VARIABLES
from fedeploy_inference.features import TARGETS


def _rmse(metrics: dict[str, Any], forecast: str, target: str) -> str:
    return f"{metrics['scores'][forecast][target]['rmse']:.3f}"


def _signed(value: float | None) -> str:
    return "n/a" if value is None else f"{value:+.2f}"


def _station_rows(metrics: dict[str, Any]) -> str:
    rows = []
    for station, entry in sorted(metrics.get("by_station", {}).items()):
        for target in TARGETS:
            got = entry.get(target, {"count": 0})
            if not got["count"]:
                rows.append(f"| {station} | {target} | 0 | not forecast | | | |")
                continue
            rmse = got["rmse"]
            rows.append(
                f"| {station} | {target} | {got['count']} | {rmse['model']:.3f} | "
                f"{rmse['persistence']:.3f} | {rmse['climatology']:.3f} | "
                f"{_signed(got['skill']['persistence'])} / {_signed(got['skill']['climatology'])} |"
            )
    return "\n".join(rows) or "| (not recorded) | | | | | | |"


def _lead_rows(metrics: dict[str, Any]) -> str:
    by_lead = metrics.get("skill_by_lead_hour")
    if not by_lead:
        return "| (not recorded) | | | | | |"
    counts = metrics["scores"]["model"]
    rows = []
    for i in range(len(by_lead["persistence"]["air_temperature"])):
        cells = [str(i + 1)]
        for target in TARGETS:
            cells.append(str(counts[target].get("count_by_lead_hour", ["?"] * (i + 1))[i]))
            cells += [_signed(by_lead[b][target][i]) for b in ("persistence", "climatology")]
        rows.append("| " + " | ".join(cells) + " |")
    return "\n".join(rows)


def _selection(data: dict[str, Any]) -> str:
    chosen = data.get("training", {})
    if not chosen:
        return ""
    return (
        f"Epochs: best validation loss at epoch {chosen['best_epoch']} of {chosen['epochs_run']} "
        f"run (at most {chosen['max_epochs']}); validation: origins from "
        f"{chosen['validation_start']} up to the held-out period, "
        f"{chosen['validation_samples']} samples."
    )


def dataset_title(data: dict[str, Any]) -> str:
    """The data's name, marked `(synthetic)` when it is: the card's and the plot's title."""
    name = str(data.get("name") or data.get("source", "unnamed data"))
    return f"{name} (synthetic)" if data.get("synthetic") else name


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
    rows = "\n".join(
        f"| {f} | {_rmse(metrics, f, 'air_temperature')} | {_rmse(metrics, f, 'precipitation')} |"
        for f in ("model", "persistence", "climatology")
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
        metric_rows=rows,
        skill_t=metrics["skill"]["persistence"]["air_temperature"],
        skill_p=metrics["skill"]["persistence"]["precipitation"],
        lead_model=scores["model"]["air_temperature"]["rmse_by_lead_hour"],
        lead_persistence=scores["persistence"]["air_temperature"]["rmse_by_lead_hour"],
        stations=len(data["stations"]),
        period=f"{data['period']['start']} to {data['period']['end']}",
    )
