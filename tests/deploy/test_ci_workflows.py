"""GitHub workflows (issue 17): actionlint (with ShellCheck) clean without ignoring the node20
deprecation, also with every pin read as the release it names; actions pinned by commit; least
permissions per job; images signed by digest before any deploy and verified at admission (Kyverno);
pip-audit and Trivy as gates on the hash-pinned lock files and the images built from them; the base
image by digest; amd64 and arm64 images; the smoke test on the routed paths."""

from __future__ import annotations

import fnmatch
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.deploy.deploy_testlib import ROOT, Run, tool

pytestmark = pytest.mark.deploy

WF = ROOT / ".github" / "workflows"
WORKFLOWS = sorted(WF.glob("*.yml"))
DOCKERFILE = ROOT / "deploy" / "docker" / "Dockerfile"
SIGNATURE_POLICY = ROOT / "deploy" / "policies" / "connector-image-signatures.yaml"
CHART_VALUES = ROOT / "deploy" / "helm" / "connector" / "values.yaml"
TARGETS = {"control-plane", "data-plane", "worker", "edge"}

# `uses: owner/repo[/path]@<40 hex> # <release>`
PIN = re.compile(
    r"^\s*(?:-\s+)?uses:\s+([\w.-]+/[\w./-]+)@([0-9a-f]{40})\s+#\s+(v?\d+(?:\.\d+)*)\s*$"
)
USES = re.compile(r"^\s*(?:-\s+)?uses:\s+(\S+)")


def load(name: str) -> dict[str, Any]:
    doc: dict[Any, Any] = yaml.safe_load((WF / name).read_text())
    doc["on"] = doc.pop(True, doc.get("on"))  # PyYAML reads the `on:` key as boolean True
    return doc


def steps(job: dict[str, Any]) -> list[dict[str, Any]]:
    return list(job.get("steps", []))


def uses(job: dict[str, Any]) -> list[str]:
    return [s.get("uses", "") for s in steps(job)]


def runs(job: dict[str, Any]) -> str:
    return "\n".join(s.get("run", "") for s in steps(job))


def step_index(job: dict[str, Any], predicate: Any) -> int:
    return next(i for i, s in enumerate(steps(job)) if predicate(s))


def actionlint(run: Run, *paths: Path) -> Any:
    # No -ignore: a node20 action (removed from runners on 2026-09-23) is a finding.
    return run(tool("actionlint"), "-shellcheck", tool("shellcheck"), *paths)


# --------------------------------------------------------------------------- actionlint


def test_actionlint(run: Run) -> None:
    proc = actionlint(run, *WORKFLOWS)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_actionlint_on_the_releases_the_pins_name(run: Run, tmp_path: Path) -> None:
    """actionlint knows runtimes and inputs by release tag, not by commit: the same workflows with
    each pin replaced by its major release must pass too (no node20 action, no unknown input)."""
    for path in WORKFLOWS:
        lines = []
        for line in path.read_text().splitlines():
            match = PIN.match(line)
            if match:
                action, _, release = match.groups()
                major = release if not release.startswith("v") else release.split(".")[0]
                line = line[: line.index("uses:")] + f"uses: {action}@{major}"
            lines.append(line)
        (tmp_path / path.name).write_text("\n".join(lines) + "\n")
    proc = actionlint(run, *sorted(tmp_path.glob("*.yml")))
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_actionlint_refuses_a_node20_action(run: Run, tmp_path: Path) -> None:
    bad = tmp_path / "node20.yml"
    bad.write_text(
        "on: push\npermissions: {}\njobs:\n  a:\n    runs-on: ubuntu-24.04\n"
        "    steps:\n      - uses: actions/checkout@v4\n"
    )
    proc = actionlint(run, bad)
    assert proc.returncode != 0
    assert 'runtime "node20" is deprecated' in proc.stdout


def test_actionlint_catches_errors(run: Run, tmp_path: Path) -> None:
    bad = tmp_path / "bad.yml"
    bad.write_text(
        "on: push\njobs:\n  a:\n    runs-on: ubuntu-latest\n    needs: [missing]\n"
        "    steps:\n      - run: echo ${{ github.event.pull_request.title }}\n"
    )
    proc = run(tool("actionlint"), bad)
    assert proc.returncode != 0


def test_yamllint(run: Run) -> None:
    proc = run(
        tool("yamllint"),
        "-s",
        "-c",
        ".yamllint.yaml",
        "deploy",
        "ops",
        ".github",
        "docker-compose.yaml",
        ".checkov.yaml",
        ".hadolint.yaml",
        ".yamllint.yaml",
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr


# --------------------------------------------------------------------------- pins and permissions


def test_every_action_is_pinned_by_commit_with_its_release() -> None:
    releases: dict[tuple[str, str], set[str]] = {}
    for path in WORKFLOWS:
        for number, line in enumerate(path.read_text().splitlines(), 1):
            found = USES.match(line)
            if not found:
                continue
            pinned = PIN.match(line)
            assert pinned, f"{path.name}:{number}: not pinned to a commit with a # release: {line}"
            action, sha, release = pinned.groups()
            releases.setdefault((action.split("/")[0] + "/" + action.split("/")[1], sha), set())
            releases[(action.split("/")[0] + "/" + action.split("/")[1], sha)].add(release)
    assert releases
    # one commit, one release name (codeql-action's init/analyze/upload-sarif share one)
    assert {k: v for k, v in releases.items() if len(v) > 1} == {}


def test_least_permissions_per_job() -> None:
    may_write = {
        "packages": {"build", "publish"},
        "id-token": {"publish", "deploy-staging", "deploy-production"},
        "security-events": {"codeql", "semgrep", "image-scan"},
    }
    for path in WORKFLOWS:
        wf = load(path.name)
        assert wf["permissions"] == {}, f"{path.name}: the workflow grants by default"
        for name, job in wf["jobs"].items():
            granted = job.get("permissions")
            assert isinstance(granted, dict), f"{path.name}:{name} has no explicit permissions"
            for scope, level in granted.items():
                assert level in {"read", "write"}, (name, scope, level)
                if level == "write":
                    assert name in may_write.get(scope, set()), f"{name} writes {scope}"
            if "actions/checkout" in " ".join(uses(job)):
                assert granted.get("contents") == "read", name
                checkout = next(s for s in steps(job) if "actions/checkout" in s.get("uses", ""))
                assert checkout["with"]["persist-credentials"] is False, name


# --------------------------------------------------------------------------- the pipeline


def test_pipeline_order_build_publish_sign_then_deploy() -> None:
    wf = load("ci-cd.yml")
    assert wf["on"]["push"] == {"branches": ["main", "develop"], "tags": ["v*"]}
    jobs = wf["jobs"]
    assert set(jobs["build"]["needs"]) == {"lint", "types", "test", "deploy-check", "pip-audit"}
    publish = jobs["publish"]
    assert publish["needs"] == "build"
    # every push, branches and v* tags alike, publishes and signs (no branch filter here)
    assert publish["if"] == "github.event_name == 'push'"
    for name in ("deploy-staging", "deploy-production"):
        assert jobs[name]["needs"] == "publish", name
    assert "refs/heads/develop" in jobs["deploy-staging"]["if"]
    assert "refs/tags/v" in jobs["deploy-production"]["if"]
    script = runs(publish)
    assert 'echo "image=${image}@${digest}"' in script  # the index's digest, not a tag
    assert 'cosign sign --yes "$IMAGE"' in script
    assert 'cosign verify "$IMAGE" --certificate-identity "$IDENTITY"' in script
    sign = next(s for s in steps(publish) if "cosign sign" in s.get("run", ""))
    assert sign["env"]["IMAGE"] == "${{ steps.index.outputs.image }}"
    assert any(u.startswith("sigstore/cosign-installer@") for u in uses(publish))


def test_no_workflow_run_trigger_skips_tags() -> None:
    # Signing once lived in a workflow_run of security.yml filtered to branches, so tag builds
    # (releases) were never signed. A workflow_run, if any comes back, must not filter branches.
    for path in WORKFLOWS:
        trigger = load(path.name)["on"]
        if isinstance(trigger, dict) and "workflow_run" in trigger:
            assert "branches" not in (trigger["workflow_run"] or {}), path.name


def test_pip_audit_gates_on_the_hash_pinned_lock_files() -> None:
    for name in ("ci-cd.yml", "security.yml"):
        job = load(name)["jobs"]["pip-audit"]
        assert "continue-on-error" not in job
        script = runs(job)
        assert "--require-hashes" in script
        assert "--strict" in script
        locks = re.findall(r"-r (\S+)", script)
        assert set(locks) == {
            "deploy/docker/requirements.lock",
            "deploy/docker/requirements-edge.lock",
        }, name
        for lock in locks:
            text = (ROOT / lock).read_text()
            pins = re.findall(r"^([A-Za-z0-9_.-]+)==\S+ \\$", text, re.M)
            assert pins, lock
            blocks = re.split(r"\n(?=[A-Za-z0-9_.-]+==)", text.split("\n", 1)[1])
            assert all("--hash=sha256:" in b for b in blocks if b.strip()), lock
    dockerfile = DOCKERFILE.read_text()
    assert "-r requirements.lock" in dockerfile
    assert "-r requirements-edge.lock" in dockerfile
    assert "--require-hashes" in dockerfile


def test_trivy_gates_each_image_before_it_is_pushed() -> None:
    build = load("ci-cd.yml")["jobs"]["build"]
    trivy_at = step_index(build, lambda s: "aquasecurity/trivy-action" in s.get("uses", ""))
    push_at = step_index(build, lambda s: "--push" in s.get("run", ""))
    assert trivy_at < push_at
    trivy = steps(build)[trivy_at]
    assert "continue-on-error" not in trivy
    assert trivy["with"]["exit-code"] == "1"
    assert trivy["with"]["severity"] == "HIGH,CRITICAL"
    assert trivy["with"]["image-ref"] == "${{ env.LOCAL_IMAGE }}"
    scan = load("security.yml")["jobs"]["image-scan"]
    sarif = next(s for s in steps(scan) if "aquasecurity/trivy-action" in s.get("uses", ""))
    # with SARIF output Trivy applies the severity filter only when told to
    assert sarif["with"]["limit-severities-for-sarif"] is True
    assert sarif["with"]["exit-code"] == "1"


def test_base_image_is_pinned_by_digest_everywhere() -> None:
    default = re.search(r"^ARG BASE_IMAGE=(\S+)$", DOCKERFILE.read_text(), re.M)
    assert default, "the Dockerfile has no ARG BASE_IMAGE default"
    assert re.fullmatch(r"[\w./-]+:[\w.-]+@sha256:[0-9a-f]{64}", default.group(1))
    for name in ("ci-cd.yml", "security.yml"):
        assert load(name)["env"]["BASE_IMAGE"] == default.group(1), name
    for job in (load("ci-cd.yml")["jobs"]["build"], load("security.yml")["jobs"]["image-scan"]):
        for line in runs(job).splitlines():
            if "docker buildx build" in line:
                assert '--build-arg "BASE_IMAGE=${BASE_IMAGE}"' in runs(job)


def test_amd64_and_arm64_images_joined_in_one_index() -> None:
    jobs = load("ci-cd.yml")["jobs"]
    matrix = jobs["build"]["strategy"]["matrix"]
    assert set(matrix["target"]) == TARGETS
    assert set(matrix["arch"]) == {"amd64", "arm64"}
    runners = {i["arch"]: i["runner"] for i in matrix["include"]}
    assert runners == {"amd64": "ubuntu-24.04", "arm64": "ubuntu-24.04-arm"}
    assert jobs["build"]["runs-on"] == "${{ matrix.runner }}"
    assert '--platform "linux/${ARCH}"' in runs(jobs["build"])
    index = runs(jobs["publish"])
    assert "docker buildx imagetools create" in index
    assert '"${sha_tag}-amd64" "${sha_tag}-arm64"' in index


def test_deploys_plan_the_root_module_with_their_environments_tfvars() -> None:
    """One root module, the environment only its tfvars (decision 0027)."""
    jobs = load("ci-cd.yml")["jobs"]
    for name, env in (("deploy-staging", "staging"), ("deploy-production", "production")):
        job = jobs[name]
        assert job["env"]["TF_DIR"] == "deploy/terraform/stack"
        tfvars = ROOT / job["env"]["TF_DIR"] / job["env"]["TF_VARS_FILE"]
        assert tfvars.resolve() == ROOT / "deploy" / "terraform" / "environments" / f"{env}.tfvars"
        assert tfvars.exists(), tfvars
        assert 'terraform plan -input=false -var-file="$TF_VARS_FILE"' in runs(job)


def test_deploys_smoke_test_the_routed_paths_and_the_cluster() -> None:
    jobs = load("ci-cd.yml")["jobs"]
    for name, namespace in (
        ("deploy-staging", "connector-staging"),
        ("deploy-production", "connector-prod"),
    ):
        job = jobs[name]
        assert job["env"]["NAMESPACE"] == namespace
        assert 'smoke-test.sh "$CONNECTOR_URL" --namespace "$NAMESPACE"' in runs(job)
        assert "terraform apply" in runs(job)
        assert "deploy/tools/install-terraform.sh" in runs(job)
    smoke = (ROOT / "deploy" / "tools" / "smoke-test.sh").read_text()
    probes = set(re.findall(r"\$(?:BASE_URL|DP_URL)(/[\w./-]+)", smoke))
    assert probes == {
        "/.well-known/dspace-version",
        "/dsp/2025-1/catalog/request",
        "/public/smoke-test",
    }
    routed = yaml.safe_load(CHART_VALUES.read_text())["ingress"]
    prefixes = routed["controlPlanePaths"] + routed["dataPlanePaths"]
    for path in probes:
        assert any(path.startswith(p) for p in prefixes), f"{path} is not routed by the Ingress"


# --------------------------------------------------------------------------- admission


def test_kyverno_verifies_the_signature_ci_makes(run: Run) -> None:
    policy = yaml.safe_load(SIGNATURE_POLICY.read_text())
    assert policy["spec"]["validationFailureAction"] == "Enforce"
    rule = policy["spec"]["rules"][0]
    assert rule["match"]["any"][0]["resources"]["namespaces"] == ["connector-*"]
    verify = rule["verifyImages"][0]
    assert verify["required"] is True
    assert verify["mutateDigest"] is True
    repository = yaml.safe_load(CHART_VALUES.read_text())["image"]["repository"]
    for target in TARGETS:
        image = f"{repository}:v1.2.3-{target}"
        assert any(fnmatch.fnmatch(image, ref) for ref in verify["imageReferences"]), image
    keyless = verify["attestors"][0]["entries"][0]["keyless"]
    assert keyless["issuer"] == "https://token.actions.githubusercontent.com"
    subject = re.compile(keyless["subjectRegExp"])
    repo = "https://github.com/" + repository.removeprefix("ghcr.io/")
    workflow = f"{repo}/.github/workflows/ci-cd.yml"
    for ref in ("refs/heads/main", "refs/heads/develop", "refs/tags/v1.2.3"):
        assert subject.match(f"{workflow}@{ref}"), ref
    for identity in (
        f"{workflow}@refs/heads/feature",
        f"{workflow}@refs/pull/7/merge",
        f"{repo}/.github/workflows/security.yml@refs/heads/main",
        "https://github.com/someone-else/x/.github/workflows/ci-cd.yml@refs/heads/main",
    ):
        assert not subject.match(identity), identity
    # the signing job's identity is this workflow file
    assert (WF / "ci-cd.yml").exists()
    code = (
        "import sys, yaml\n"
        "from cloudcoil.models.kyverno.v1 import ClusterPolicy\n"
        "p = ClusterPolicy.model_validate(yaml.safe_load(open(sys.argv[1])))\n"
        "k = p.spec.rules[0].verify_images[0].attestors[0].entries[0].keyless\n"
        "print(p.metadata.name, k.issuer, bool(k.subject_reg_exp))\n"
    )
    proc = run(tool("python"), "-c", code, SIGNATURE_POLICY)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout.split() == [
        "connector-verify-images",
        "https://token.actions.githubusercontent.com",
        "True",
    ]
