"""The API against its own OpenAPI schema: schemathesis with every check, bounded in examples,
on a real server on 127.0.0.1. Every status and body it meets must be in the schema; methods
the schema does not list get 405 with Allow."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.test_api import server

pytestmark = pytest.mark.slow
__all__ = ["server"]

MAX_EXAMPLES = 40  # per operation and phase; about 200 requests, ~15 s here


def test_api_conforms_to_its_schema(server: str, tmp_path: Path) -> None:
    command = [
        str(Path(sys.executable).parent / "st"),
        "run",
        server + "/openapi.json",
        "--checks", "all",
        "--phases", "examples,coverage,fuzzing",
        "--max-examples", str(MAX_EXAMPLES),
        "--workers", "1",
        "--request-timeout", "30",
        "--seed", "20261124",
        "--generation-database", "none",
        "--no-color",
    ]  # fmt: skip
    done = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-6000:] + done.stderr[-2000:]
    assert "No issues found" in done.stdout
