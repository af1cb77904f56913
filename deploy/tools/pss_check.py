"""Pod Security Standards, level `restricted` (Kubernetes 1.30), evaluated on a pod spec.

The API server enforces these checks on namespaces labelled
`pod-security.kubernetes.io/enforce: restricted`; no offline tool ships them, so this module
implements the published table (https://kubernetes.io/docs/concepts/security/pod-security-standards/,
"Baseline" and "Restricted" controls, policy version 1.30) over a pod template's `spec` and
metadata. `check_pod(metadata, spec)` returns the violations; an empty list means admitted.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

ALLOWED_VOLUME_TYPES = {
    "configMap",
    "csi",
    "downwardAPI",
    "emptyDir",
    "ephemeral",
    "persistentVolumeClaim",
    "projected",
    "secret",
}
SAFE_SYSCTLS = {
    "kernel.shm_rmid_forced",
    "net.ipv4.ip_local_port_range",
    "net.ipv4.ip_unprivileged_port_start",
    "net.ipv4.tcp_syncookies",
    "net.ipv4.ping_group_range",
    "net.ipv4.ip_local_reserved_ports",
    "net.ipv4.tcp_keepalive_time",
    "net.ipv4.tcp_fin_timeout",
    "net.ipv4.tcp_keepalive_intvl",
    "net.ipv4.tcp_keepalive_probes",
}
SELINUX_TYPES = {"", "container_t", "container_init_t", "container_kvm_t", "container_engine_t"}
PROFILE_OK = {"RuntimeDefault", "Localhost"}


def _containers(spec: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    for key in ("initContainers", "containers", "ephemeralContainers"):
        for c in spec.get(key) or []:
            yield f"{key}[{c.get('name')}]", c


def check_pod(metadata: dict[str, Any], spec: dict[str, Any]) -> list[str]:
    errors: list[str] = []
    psc = spec.get("securityContext") or {}
    annotations = (metadata or {}).get("annotations") or {}

    # --- baseline
    for field in ("hostNetwork", "hostPID", "hostIPC"):
        if spec.get(field):
            errors.append(f"{field}=true")
    if (psc.get("windowsOptions") or {}).get("hostProcess"):
        errors.append("windowsOptions.hostProcess")
    for vol in spec.get("volumes") or []:
        kinds = set(vol) - {"name"}
        if "hostPath" in kinds:
            errors.append(f"volume {vol.get('name')}: hostPath")
        # restricted: only the listed volume types
        for kind in kinds - ALLOWED_VOLUME_TYPES:
            errors.append(f"volume {vol.get('name')}: type {kind} not allowed")
    for key, value in annotations.items():
        if key.startswith("container.apparmor.security.beta.kubernetes.io/") and not (
            value == "runtime/default" or value.startswith("localhost/")
        ):
            errors.append(f"AppArmor annotation {key}={value}")
    _selinux(psc.get("seLinuxOptions"), "pod", errors)
    _apparmor(psc.get("appArmorProfile"), "pod", errors)
    for sysctl in psc.get("sysctls") or []:
        if sysctl.get("name") not in SAFE_SYSCTLS:
            errors.append(f"sysctl {sysctl.get('name')} not allowed")

    # --- restricted, pod level
    pod_non_root = psc.get("runAsNonRoot") is True
    if psc.get("runAsUser") == 0:
        errors.append("pod runAsUser=0")
    pod_seccomp = (psc.get("seccompProfile") or {}).get("type")
    if pod_seccomp == "Unconfined":
        errors.append("pod seccompProfile Unconfined")

    for where, c in _containers(spec):
        sc = c.get("securityContext") or {}
        if sc.get("privileged"):
            errors.append(f"{where}: privileged")
        if (sc.get("windowsOptions") or {}).get("hostProcess"):
            errors.append(f"{where}: windowsOptions.hostProcess")
        for port in c.get("ports") or []:
            if port.get("hostPort"):
                errors.append(f"{where}: hostPort {port['hostPort']}")
        _selinux(sc.get("seLinuxOptions"), where, errors)
        _apparmor(sc.get("appArmorProfile"), where, errors)
        if sc.get("procMount", "Default") != "Default":
            errors.append(f"{where}: procMount {sc['procMount']}")
        caps = sc.get("capabilities") or {}
        for cap in caps.get("add") or []:
            if cap != "NET_BIND_SERVICE":
                errors.append(f"{where}: capability {cap} added")
        if "ALL" not in (caps.get("drop") or []):
            errors.append(f"{where}: capabilities.drop must contain ALL")
        if sc.get("allowPrivilegeEscalation") is not False:
            errors.append(f"{where}: allowPrivilegeEscalation must be false")
        if sc.get("runAsNonRoot") is False or not (pod_non_root or sc.get("runAsNonRoot")):
            errors.append(f"{where}: runAsNonRoot must be true (pod or container)")
        if sc.get("runAsUser") == 0:
            errors.append(f"{where}: runAsUser=0")
        seccomp = (sc.get("seccompProfile") or {}).get("type")
        if seccomp == "Unconfined" or (seccomp is None and pod_seccomp not in PROFILE_OK):
            errors.append(f"{where}: seccompProfile must be RuntimeDefault or Localhost")
    return errors


def _selinux(opts: dict[str, Any] | None, where: str, errors: list[str]) -> None:
    if not opts:
        return
    if opts.get("type", "") not in SELINUX_TYPES:
        errors.append(f"{where}: seLinuxOptions.type {opts['type']}")
    for field in ("user", "role"):
        if opts.get(field):
            errors.append(f"{where}: seLinuxOptions.{field} set")


def _apparmor(profile: dict[str, Any] | None, where: str, errors: list[str]) -> None:
    if profile and profile.get("type") == "Unconfined":
        errors.append(f"{where}: appArmorProfile Unconfined")
