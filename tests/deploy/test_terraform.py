"""Terraform: `terraform fmt -check`, python-hcl2 parse + wiring, secrets only as sensitive vars."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest

from tests.deploy.deploy_testlib import ROOT, Run, tool, validate

pytestmark = pytest.mark.deploy

TF = ROOT / "deploy" / "terraform"
ENVIRONMENTS = ("dev", "staging", "production")
ROOT_MODULE = TF / "stack"


def hcl(run: Run, path: Path) -> dict[str, Any]:
    code = (
        "import hcl2, json, sys\n"
        "from hcl2.utils import SerializationOptions\n"
        "opts = SerializationOptions(\n"
        "    strip_string_quotes=True, explicit_blocks=False, with_comments=False)\n"
        "print(json.dumps(hcl2.load(open(sys.argv[1]), serialization_options=opts)))\n"
    )
    proc = run(tool("python"), "-c", code, path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    loaded: dict[str, Any] = json.loads(proc.stdout)
    return loaded


def test_terraform_fmt_check(run: Run) -> None:
    proc = run(tool("terraform"), "fmt", "-check", "-recursive", "-diff", TF)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_terraform_fmt_detects_bad_formatting(run: Run, tmp_path: Path) -> None:
    (tmp_path / "bad.tf").write_text('variable "x" {\ntype=string\n  default =   "a"\n}\n')
    proc = run(tool("terraform"), "fmt", "-check", tmp_path)
    assert proc.returncode != 0


def test_hcl_parse_wiring_and_secrets(run: Run) -> None:
    proc = validate(run, "hcl")
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_layout(run: Run) -> None:
    """One root module, each environment only its values (decision 0027)."""
    for module in ("namespace", "postgres", "valkey", "temporal", "connector"):
        assert list((TF / "modules" / module).glob("*.tf")), module
    for name in ("main.tf", "variables.tf", "versions.tf", "moved.tf"):
        assert (ROOT_MODULE / name).exists(), name
    environments = sorted(p.relative_to(TF).as_posix() for p in (TF / "environments").iterdir())
    assert environments == sorted(f"environments/{env}.tfvars" for env in ENVIRONMENTS)
    roots = [
        p.parent.relative_to(TF).as_posix()
        for p in sorted(TF.rglob("*.tf"))
        if "backend" in json.dumps(hcl(run, p).get("terraform", []))
    ]
    assert roots == ["stack"], roots


def test_production_tfvars_follow_the_seed(run: Run) -> None:
    v = hcl(run, TF / "environments" / "production.tfvars")
    assert v["environment"] == "production"
    assert v["namespace"] == "connector-prod"
    assert v["database_storage_size"] == "100Gi"
    assert v["redis_storage_size"] == "20Gi"
    assert v["storage_class"] == "fast-ssd"
    assert v["tls_secret_name"] == "connector-tls"
    assert (v["control_plane_replicas"], v["data_plane_replicas"]) == (3, 2)
    assert (v["control_plane_cpu_request"], v["control_plane_memory_limit"]) == ("500m", "4Gi")
    assert (v["data_plane_cpu_limit"], v["data_plane_memory_limit"]) == ("4000m", "8Gi")


def test_secrets_are_sensitive_and_not_in_tfvars(run: Run) -> None:
    variables = {
        k: v
        for block in hcl(run, ROOT_MODULE / "variables.tf")["variable"]
        for k, v in block.items()
    }
    for name in (
        "database_password",
        "temporal_database_password",
        "redis_password",
        "management_api_keys",
        "temporal_api_key",
        "identity_key_pem",
    ):
        assert variables[name]["sensitive"] is True, name
    for env in ENVIRONMENTS:
        text = (TF / "environments" / f"{env}.tfvars").read_text()
        assert "password" not in text.replace("TF_VAR_database_password", "").replace(
            "TF_VAR_temporal_database_password", ""
        ).replace("TF_VAR_redis_password", ""), env


def test_temporal_module_is_server_only_on_postgres(run: Run) -> None:
    text = (TF / "modules" / "temporal" / "values.tf").read_text()
    assert 'repository = "https://go.temporal.io/helm-charts"' in text
    assert 'pluginName      = "postgres12"' in text
    assert "cassandra" not in text.lower()
    # (shims.elasticsearchTool = false only switches a compatibility shim off)
    assert "elasticsearch" not in text.lower().replace("elasticsearchtool", "")


def test_connector_module_uses_our_chart(run: Run) -> None:
    text = (TF / "modules" / "connector" / "values.tf").read_text()
    assert '"${path.module}/../../../helm/connector"' in text
    assert (TF / "modules" / "connector" / "../../../helm/connector/Chart.yaml").resolve().exists()
    for values in ("values-dev.yaml", "values-staging.yaml", "values-prod.yaml"):
        assert values in text


def test_moved_blocks_keep_existing_state_in_place(run: Run, tmp_path: Path) -> None:
    """State planned through an environment root calling `module "stack"` keeps every resource
    when the root is stack/ itself (decision 0027): Terraform plans that state with the real
    stack/moved.tf over stand-ins of the real module calls (one terraform_data each) and moves
    every one without destroying anything."""
    calls = {
        name: "count" in args
        for block in hcl(run, ROOT_MODULE / "main.tf")["module"]
        for name, args in block.items()
    }

    def stack(folder: Path, source: str) -> None:
        folder.mkdir(parents=True)
        (folder / "main.tf").write_text(
            "".join(
                f'module "{name}" {{\n  source = "{source}"\n'
                + ("  count  = 1\n" if counted else "")
                + "}\n"
                for name, counted in calls.items()
            )
        )

    (tmp_path / "stand_in").mkdir()
    (tmp_path / "stand_in" / "main.tf").write_text('resource "terraform_data" "r" {}\n')
    stack(tmp_path / "stack", "../stand_in")
    (tmp_path / "env").mkdir()
    (tmp_path / "env" / "main.tf").write_text('module "stack" {\n  source = "../stack"\n}\n')
    stack(tmp_path / "root", "../stand_in")
    shutil.copy(ROOT_MODULE / "moved.tf", tmp_path / "root" / "moved.tf")

    terraform = tool("terraform")
    for argv, cwd in (
        (("init", "-input=false", "-no-color"), "env"),
        (("apply", "-auto-approve", "-input=false", "-no-color"), "env"),
        (("init", "-input=false", "-no-color"), "root"),
    ):
        proc = run(terraform, *argv, cwd=tmp_path / cwd)
        assert proc.returncode == 0, proc.stdout + proc.stderr
    shutil.copy(tmp_path / "env" / "terraform.tfstate", tmp_path / "root")
    proc = run(terraform, "plan", "-input=false", "-no-color", cwd=tmp_path / "root")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "Plan: 0 to add, 0 to change, 0 to destroy." in proc.stdout, proc.stdout
    for name, counted in calls.items():
        index = "[0]" if counted else ""
        moved = f"module.stack.module.{name}{index}.terraform_data.r has moved to module.{name}"
        assert moved in proc.stdout, name
