"""Each role's entry module, loaded as `python -m connector <role>` loads it (connector.runtime.lean
first), keeps out the libraries it never uses at idle: they cost resident memory in every
process of the role (docs/benchmarks.md, Runtime)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[3]

_LOADED = (
    "import importlib, json, sys\n"
    "import connector.runtime.lean\n"
    "connector.runtime.lean.skip_unused_imports()\n"
    "importlib.import_module(sys.argv[1])\n"
    "print(json.dumps(sorted(n for n, m in sys.modules.items() if m is not None)))\n"
)


def _loaded(module: str) -> set[str]:
    result = subprocess.run(
        [sys.executable, "-c", _LOADED, module],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return set(json.loads(result.stdout))


def _packages(loaded: set[str]) -> set[str]:
    return {name.split(".")[0] for name in loaded} | loaded


@pytest.mark.parametrize(
    ("module", "absent"),
    [
        # The data plane: opaque tokens (joserfc only to seal a refresh answer), no workflows,
        # no DSP schema validation, no YAML unless --config.
        (
            "dataplane.app",
            {"temporalio", "joserfc", "cryptography.hazmat", "jsonschema", "yaml", "boto3"},
        ),
        ("api.app", {"jsonschema", "yaml", "boto3", "temporalio.worker"}),
        # The worker serves its health port with uvicorn on a bare ASGI app, not FastAPI.
        ("workers.main", {"fastapi", "jsonschema", "yaml"}),
    ],
)
def test_role_entry_module_leaves_out_what_the_role_does_not_use(
    module: str, absent: set[str]
) -> None:
    loaded = _packages(_loaded(module))
    assert module in loaded
    assert absent.isdisjoint(loaded), sorted(absent & loaded)
    # connector.runtime.lean's markers hold: these take their "not installed" path in every role.
    # (click stays: uvicorn's package imports its command line, and every role runs uvicorn.)
    assert {"rich", "pygments", "watchfiles", "pydantic.v1"}.isdisjoint(loaded)
