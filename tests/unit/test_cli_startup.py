"""What every `fedeploy` command pays before it starts: the CLI loads no module that only the
`bridge` commands use. Loading the bridge's HTTP client and job models with the CLI cost each
`fedeploy plan` about 0.18 s of its start (issue 35: a one-site change in a fresh process
under 1.5 s, of which importing the plan's own modules takes about 0.9 s)."""

from __future__ import annotations

import json
import subprocess
import sys

from typer.testing import CliRunner

from fedeploy.cli import app

BRIDGE_ONLY = ("httpx", "fedeploy.bridge.client", "fedeploy.bridge.jobs")


def test_the_cli_loads_no_bridge_only_module() -> None:
    code = (
        "import json, sys; import fedeploy.cli; "
        f"print(json.dumps([m for m in {BRIDGE_ONLY!r} if m in sys.modules]))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert json.loads(out.stdout) == []


def test_bridge_commands_still_load_what_they_need() -> None:
    result = CliRunner().invoke(app, ["bridge", "submit", "--help"], env={})
    assert result.exit_code == 0, result.output
    done = CliRunner().invoke(app, ["bridge", "status", "1"], env={})
    assert done.exit_code == 2
    assert "FEDEPLOY_BRIDGE_URL" in done.output
