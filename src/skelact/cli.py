"""The ``skelact`` command line: one command per pipeline stage.

This module only parses options and calls stage functions; it imports them lazily so that
``skelact --help`` stays instant (no torch import) and so that no other module imports Typer.
"""

from __future__ import annotations

from pathlib import Path

import typer

from skelact import __version__

app = typer.Typer(
    name="skelact",
    help="Skeleton-based action recognition on NTU RGB+D: synth -> preprocess -> train -> test -> report.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


def _version_callback(value: bool) -> None:
    if value:
        typer.echo(f"skelact {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(
        False, "--version", callback=_version_callback, is_eager=True, help="Show the version."
    ),
) -> None:
    """Skeleton-based action recognition on NTU RGB+D."""


def _fail(message: str) -> None:
    """Print a user-facing error (no traceback) and exit non-zero."""
    typer.secho(f"error: {message}", fg=typer.colors.RED, err=True)
    raise typer.Exit(code=1)


# --- synth (owner: data generation) ---

# --- end synth ---

# --- preprocess (owner: preprocessing) ---

# --- end preprocess ---

# --- validate (owner: data path) ---

# --- end validate ---

# --- flops (owner: models) ---

# --- end flops ---

# --- train, test, predict (owner: engine) ---

# --- end train ---

# --- report (owner: pipeline) ---

# --- end report ---


def main() -> None:
    app()


if __name__ == "__main__":
    main()
