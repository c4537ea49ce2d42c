"""The ``branch-agent`` command."""

from __future__ import annotations

import click

from branch_agent import __version__


@click.group()
@click.version_option(__version__, prog_name="branch-agent")
def main() -> None:
    """Record branch activity offline and sync it to HQ."""


if __name__ == "__main__":
    main()
