"""The plan report as text for people, JSON for pipelines and Markdown for pull requests."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import urlsplit

from fedeploy.plan.run import PlanReport


def as_json(report: PlanReport) -> str:
    return json.dumps(report.to_dict(), indent=2, sort_keys=True) + "\n"


# Resource types counted apart: they are how the program reaches clouds and other stacks, not
# something it deploys.
_PROVIDER_PREFIX = "pulumi:providers:"
_STACK_REFERENCE = "pulumi:pulumi:StackReference"


def _counts(data: dict[str, Any]) -> str:
    """`N resources (of them P providers, R stack references)`, over every site."""
    types: dict[str, int] = {}
    for site in data["sites"].values():
        for typ, count in site["resources"].items():
            types[typ] = types.get(typ, 0) + count
    providers = sum(n for t, n in types.items() if t.startswith(_PROVIDER_PREFIX))
    references = types.get(_STACK_REFERENCE, 0)
    total = data["summary"]["resources"]
    return (
        f"{total} resources (of them {providers} provider(s) and {references} stack reference(s))"
    )


def _verdict(data: dict[str, Any]) -> str:
    summary = data["summary"]
    if data["errors"]:
        return f"INVALID: {len(data['errors'])} error(s)"
    distinct = len({(f["rule"], f["message"]) for f in _advisories(data)})
    advisories = f"{summary['advisories']} advisory finding(s), {distinct} distinct"
    if summary["violations"]:
        return f"{summary['violations']} violation(s), {advisories}"
    return f"clean: {summary['sites']} site(s), {_counts(data)}, {advisories}"


def _advisories(data: dict[str, Any]) -> list[dict[str, Any]]:
    return [
        {**f, "site": name}
        for name, site in data["sites"].items()
        for f in site["findings"]
        if f["enforcement"] != "mandatory"
    ]


def _repeated(data: dict[str, Any]) -> dict[tuple[str, str], list[str]]:
    """(rule, message) -> its places (`site/resource`), for advisories found in several places."""
    places: dict[tuple[str, str], list[str]] = {}
    for finding in _advisories(data):
        key = (finding["rule"], finding["message"])
        places.setdefault(key, []).append(f"{finding['site']}/{finding['resource']}")
    return {key: where for key, where in places.items() if len(where) > 1}


def _site_order(data: dict[str, Any]) -> list[str]:
    """Sites in deployment order (what others read first, the hub last), then any others."""
    ordered = [name for wave in data["deployment_order"] for name in wave if name in data["sites"]]
    return ordered + [name for name in data["sites"] if name not in ordered]


def _kind(site: dict[str, Any]) -> str:
    """The site's kind, and `storage only` for a storage-only site (its `site` output says so)."""
    role = (site["outputs"].get("site") or {}).get("role")
    return f"{site['kind']}, storage only" if role == "storage" else site["kind"]


def _exposure(exposure: dict[str, Any]) -> str:
    """One line: the public URL (or none), through what, who may write, whose tokens count."""
    if not exposure["public_url"]:
        return f"not public; writes: {exposure['writes']}"
    return (
        f"public at {exposure['public_url']} through {exposure['through']} "
        f"(from namespace {exposure['admits']}); reads anonymous; writes: {exposure['writes']} "
        f"from issuer {exposure['issuer']}; assets: {exposure.get('assets', 'not served')}"
        + (f"; STAC Browser at {exposure['browser']}" if "browser" in exposure else "")
    )


def _monitoring(summary: dict[str, Any]) -> str:
    """One line: where it is installed, what is scraped, which alerts."""
    if summary["mode"] == "off":
        return "off (monitoring.enabled false): nothing scraped, no alert"
    where = (
        "where the cluster serves monitoring.coreos.com/v1"
        if summary["mode"] == "auto"
        else "always"
    )
    scraped = ", ".join(summary["targets"]) or "no scrape target"
    alerts = summary["alerts"]
    settings = summary.get("settings", {})
    changed = (
        "; alert settings changed from the chart's defaults: "
        + ", ".join(f"{key} {value}" for key, value in settings.items())
        if settings
        else ""
    )
    return (
        f"{where}: {scraped}; {len(alerts)} alert(s){': ' if alerts else ''}{', '.join(alerts)}"
        + changed
    )


def _polytope_key(site: Any) -> str:
    """The keys of the Polytope Secret as the site's stack file sets them (`polytope_credentials`,
    whose `email` makes the service send an ECMWF key as EmailKey); None site: not known."""
    if site is None:
        return "key, and email where polytope_credentials sets one"
    services = getattr(site, "services", None)
    sentinel = getattr(getattr(services, "ingestion", None), "sentinel", None)
    credentials = getattr(sentinel, "polytope_credentials", None)
    if credentials is not None and credentials.email:
        return "key and email: an ECMWF key, sent as EmailKey"
    return "key alone, sent as Bearer"


def sources(release: Any, site: Any = None) -> list[str]:
    """What an ingestion release copies from, one line a source, with the credentials each
    needs (the Secret and its keys) or none; [] for another release. `site`: the site's stack
    file settings (what its Polytope key is made of), None where not known."""
    sentinel = ((release.values if release is not None else {}) or {}).get("sentinel") or {}
    if not sentinel.get("enabled"):
        return []
    secret = sentinel.get("credentialsSecret")
    lines = []
    for source in sentinel.get("sources") or []:
        url = source.get("url") or sentinel.get("defaultSourceUrl") or ""
        if secret:
            login = f"credentials: Secret {secret} (username, password)"
        elif "dataspace.copernicus.eu" in url:
            login = (
                "no credentials set: Copernicus Data Space downloads need an account (credentials)"
            )
        else:
            login = "no credentials"
        lines.append(f"source {source['name']} (Sentinel, STAC API {url}): {login}")
    lines += [
        f"source {source['name']} (ECMWF open data, {source.get('model', 'ifs')} "
        f"{source.get('stream', 'oper')}/{source.get('type', 'fc')}, {source.get('url')}): "
        "no credentials (anonymous)"
        for source in sentinel.get("ecmwfSources") or []
    ]
    key = sentinel.get("eumetsatCredentialsSecret")
    lines += [
        f"source {source['name']} (EUMETSAT Data Store, {', '.join(source['collections'])}, "
        f"{source.get('url')}): API key: Secret {key} (consumer_key, consumer_secret)"
        for source in sentinel.get("eumetsatSources") or []
    ]
    polytope = sentinel.get("polytopeCredentialsSecret")
    lines += [
        f"source {source['name']} (Polytope, collection {source.get('collection')}, "
        f"{len(source.get('requests') or [])} request(s), {source.get('url')}): key: Secret "
        f"{polytope} ({_polytope_key(site)}), sent to {_host(source.get('url'))} only"
        for source in sentinel.get("polytopeSources") or []
    ]
    eodag = sentinel.get("eodagCredentialsSecret")
    image = sentinel.get("eodagImage") or {}
    shown_image = _image_reference(image) if image else "(none)"
    lines += [
        f"source {source['name']} (EODAG, provider {source['provider']}, "
        f"{', '.join(source['collections'])}"
        + (f", {source['url']}" if source.get("url") else "")
        + "): "
        + (
            f"credentials: Secret {eodag} (username, password)"
            if eodag
            else "no credentials set: Copernicus Data Space downloads need an account "
            "(eodag_credentials)"
            if source["provider"] == "cop_dataspace" and not source.get("url")
            else "no credentials"
        )
        + f"; runs on image {shown_image} (with the eodag extra)"
        for source in sentinel.get("eodagSources") or []
    ]
    return lines


def _image_reference(image: dict[str, Any]) -> str:
    """The image reference a chart's `image` values name, as the stack file gives it:
    `repository[:tag][@digest]` (a digest alone: no empty tag after a ':')."""
    reference = str(image.get("repository"))
    if image.get("tag"):
        reference += f":{image['tag']}"
    if image.get("digest"):
        reference += f"@{image['digest']}"
    return reference


def _host(url: Any) -> str:
    """The host of `url` (its text where it has none)."""
    return urlsplit(str(url)).hostname or str(url)


def as_text(report: PlanReport) -> str:
    data = report.to_dict()
    lines = ["fedeploy plan (offline: no credentials, provider answers are stand-ins)", ""]
    for error in data["errors"]:
        lines.append(f"error: {error}")
    if data["errors"]:
        lines.append("")
    if data["deployment_order"]:
        lines.append(
            "deployment order: "
            + "  ->  ".join("[" + ", ".join(w) + "]" for w in data["deployment_order"])
        )
        lines.append("")
    repeated = _repeated(data)
    for name in _site_order(data):
        site = data["sites"][name]
        lines.append(
            f"site {name} ({_kind(site)}, {site['environment']}): {site['resource_count']} resources"
        )
        for typ, count in site["resources"].items():
            lines.append(f"    {count:4d}  {typ}")
        releases = {release.name: release for release in report.sites[name].releases}
        for service, wiring in site["services"].items():
            shown = ", ".join(
                f"{k}={v}"
                for k, v in wiring.items()
                if k not in ("manifests", "chart", "namespace", "exposure", "wis2", "monitoring")
            )
            kinds = ", ".join(f"{n} {k}" for k, n in wiring["manifests"].items())
            lines.append(
                f"  service {service} ({wiring['chart']} in {wiring['namespace']}): {shown}"
            )
            lines.append(f"      renders {kinds}")
            if "exposure" in wiring:
                lines.append(f"      exposure: {_exposure(wiring['exposure'])}")
            if "monitoring" in wiring:
                lines.append(f"      monitoring: {_monitoring(wiring['monitoring'])}")
            if "wis2" in wiring:
                wis2 = wiring["wis2"]
                lines.append(
                    f"      WIS2 topics (broker {wis2['broker']}): {', '.join(wis2['topics'])}"
                )
            lines.extend(
                f"      {line}"
                for line in sources(releases.get(service), report.federation.sites.get(name))
            )
        shared = 0
        for finding in site["findings"]:
            mark = "VIOLATION" if finding["enforcement"] == "mandatory" else "advisory"
            if mark == "advisory" and (finding["rule"], finding["message"]) in repeated:
                shared += 1
                continue
            lines.append(
                f"  {mark} [{finding['rule']}] {finding['resource']}: {finding['message']}"
            )
        if shared:
            lines.append(f"  {shared} advisory finding(s) shared with other sites: see below")
        lines.append("")
    if repeated:
        lines.append("advisories found in several places (each once, with its places):")
        for (rule, message), places in sorted(repeated.items()):
            lines.append(f"  advisory [{rule}] {message}")
            lines.append(f"      at {len(places)} places: {', '.join(places)}")
        lines.append("")
    if data["references"]:
        lines.append("stack references:")
        for ref in data["references"]:
            lines.append(f"  {ref['stack']} reads {ref['reads']} ({ref['because']})")
        lines.append("")
    lines.append(_verdict(data))
    return "\n".join(lines) + "\n"


def mermaid(report: PlanReport) -> str:
    """The federation as a Mermaid flowchart: sites, hub, stack references, replication."""
    data = report.to_dict()
    lines = ["flowchart LR"]
    sites = report.federation.sites
    for name in sorted(sites):
        site = sites[name]
        kind = site.kind if site is not None else "invalid"
        node = name.replace("-", "_")
        shape = (
            f'{node}{{{{"{name}<br/>hub"}}}}' if kind == "hub" else f'{node}["{name}<br/>{kind}"]'
        )
        lines.append(f"  {shape}")
    seen = set()
    for ref in report.federation.references:
        src, dst = ref.stack.replace("-", "_"), ref.target.replace("-", "_")
        if ref.output == "storage" and "replicate_to" in ref.because:
            bucket = ref.because.split(".")[3]
            edge = f"  {src} -. replicates {bucket} .-> {dst}"
        else:
            edge = f"  {src} -- reads contract --> {dst}"
        if edge not in seen:
            seen.add(edge)
            lines.append(edge)
    for name, site in data["sites"].items():
        if any(f["enforcement"] == "mandatory" for f in site["findings"]):
            lines.append(f"  style {name.replace('-', '_')} stroke:#d00,stroke-width:3px")
    return "\n".join(lines)


def as_markdown(report: PlanReport) -> str:
    data = report.to_dict()
    out = ["## fedeploy plan", "", f"**{_verdict(data)}**", ""]
    if data["errors"]:
        out += (
            ["### Errors", ""]
            + [f"- `{e}`".replace("\n", "`<br/>`") for e in data["errors"]]
            + [""]
        )
    out += ["### Federation", "", "```mermaid", mermaid(report), "```", ""]
    if data["deployment_order"]:
        out += [
            "Deployment order: "
            + " → ".join(", ".join(f"`{s}`" for s in w) for w in data["deployment_order"]),
            "",
        ]
    if data["sites"]:
        out += [
            "### Sites",
            "",
            "| site | kind | resources | services | violations | advisories |",
            "|---|---|---|---|---|---|",
        ]
        for name, site in data["sites"].items():
            violations = sum(f["enforcement"] == "mandatory" for f in site["findings"])
            advisories = len(site["findings"]) - violations
            services = ", ".join(site["services"]) or "none"
            out.append(
                f"| `{name}` | {_kind(site)} | {site['resource_count']} | {services} | {violations} | {advisories} |"
            )
        out.append("")
    findings = [(n, f) for n, s in data["sites"].items() for f in s["findings"]]
    if findings:
        out += [
            "### Findings",
            "",
            "| site | level | rule | resource | message |",
            "|---|---|---|---|---|",
        ]
        for name, f in findings:
            level = "violation" if f["enforcement"] == "mandatory" else "advisory"
            message = f["message"].replace("|", "\\|").replace("\n", " ")
            out.append(f"| `{name}` | {level} | `{f['rule']}` | `{f['resource']}` | {message} |")
        out.append("")
    for name, site in data["sites"].items():
        out += [f"<details><summary><code>{name}</code>: resources by type</summary>", ""]
        out += [f"- {count} × `{typ}`" for typ, count in site["resources"].items()]
        out += ["", "</details>", ""]
    return "\n".join(out)


FORMATS = {"text": as_text, "json": as_json, "markdown": as_markdown}
