"""Shared test fixtures: where the reference vectors live."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("SKELACT_SHARED", REPO_ROOT.parent / "shared"))
REFERENCE = SHARED / "reference"


@pytest.fixture(scope="session")
def reference_dir() -> Path:
    """The read-only reference vectors (../shared/reference); tests fail loudly without them."""
    if not (REFERENCE / "README.md").is_file():
        raise FileNotFoundError(
            f"reference vectors not found at {REFERENCE}; set SKELACT_SHARED to the shared/ folder"
        )
    return REFERENCE
