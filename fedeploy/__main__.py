"""The `fedeploy` command (and `python -m fedeploy`): sets the embedded Go runtime's garbage
collector target (fedeploy/go_runtime.py), then runs the command line (fedeploy/cli.py)."""

from __future__ import annotations

from fedeploy.go_runtime import with_go_gc_percent


def main() -> None:
    """Entry point of the `fedeploy` command."""
    with_go_gc_percent()
    from fedeploy.cli import main as run

    run()


if __name__ == "__main__":
    main()
