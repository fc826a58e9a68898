"""The model card: rendered from the template with the version's own metrics and data."""

from __future__ import annotations

from importlib import resources
from string import Template
from typing import Any

from fedeploy_inference.contract import LIMITS, UNITS, VARIABLES


def _rmse(metrics: dict[str, Any], forecast: str, target: str) -> str:
    return f"{metrics['scores'][forecast][target]['rmse']:.3f}"


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
    return template.substitute(
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
