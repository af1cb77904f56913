"""Fixtures for the offline deployment tests (issue 7).

The tests run under the main venv and shell out to the validation toolchain that
`bash deploy/tools/install.sh` puts into .venv-tools / .venv-checkov (tooling.md §10). A missing
tool is a failure with an actionable message, never a skip.
"""

from __future__ import annotations

from typing import Any

import pytest
import yaml

from tests.deploy.deploy_testlib import RENDERED, SCENARIOS, Run, make_runner, validate


@pytest.fixture(scope="session")
def run() -> Run:
    return make_runner()


@pytest.fixture(scope="session")
def rendered(run: Run) -> dict[str, list[dict[str, Any]]]:
    """Render every scenario once per session (Helm Go SDK) and load the manifests."""
    proc = validate(run, "render")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return {
        name: [d for d in yaml.safe_load_all((RENDERED / f"{name}.yaml").read_text()) if d]
        for name in SCENARIOS
    }
