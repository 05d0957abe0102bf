# Copyright: AI cluster platform maintainers
# Apache License 2.0 (see galaxy.yml)
"""NVIDIA GPU support, the pure parts (no Ansible, no I/O): driver versions from nvidia-smi, installed
package versions from dpkg-query / rpm, the daemon.json settings of ``nvidia-ctk runtime configure``
(merged by module_utils.docker_daemon), and the rules of the NVIDIA device
plugin's configuration API (k8s-device-plugin ``api/config/v1``, v0.18.0) used to validate a
time-slicing configuration before anything is installed.
"""

from __future__ import annotations

import re

# ----------------------------------------------------------------------------------- driver
NVIDIA_SMI_DRIVER_ARGS = ("--query-gpu=driver_version", "--format=csv,noheader")
_VERSION = re.compile(r"^\d+(\.\d+)*$")


def parse_driver_version(rc, stdout, stderr=""):
    """``nvidia-smi --query-gpu=driver_version --format=csv,noheader`` -> ``(version, error)``.

    One line per GPU; they agree on a machine with one driver. A failing nvidia-smi (no driver loaded:
    "NVIDIA-SMI has failed because it couldn't communicate with the NVIDIA driver") gives its message."""
    lines = [line.strip() for line in (stdout or "").splitlines() if line.strip()]
    if rc != 0:
        detail = " ".join(((stderr or "").strip() or " ".join(lines)).split())
        return None, f"nvidia-smi exited {rc}: {detail or 'no output'}"
    versions = [line for line in lines if _VERSION.match(line)]
    if not versions:
        return None, f"nvidia-smi printed no driver version ({' '.join(lines)[:200] or 'no output'})"
    distinct = sorted(set(versions), key=version_key)
    if len(distinct) > 1:
        return distinct[0], f"nvidia-smi reports several driver versions: {', '.join(distinct)}"
    return distinct[0], None


def version_key(version):
    """``"550.54.15"`` -> ``(550, 54, 15)``; non-numeric parts compare as 0 (``"535"`` < ``"535.1"``)."""
    parts = []
    for part in str(version).strip().split("."):
        digits = re.match(r"\d+", part)
        parts.append(int(digits.group()) if digits else 0)
    while len(parts) > 1 and parts[-1] == 0:
        parts.pop()
    return tuple(parts)


def version_at_least(found, minimum):
    if not minimum:
        return True
    if not found:
        return False
    return version_key(found) >= version_key(minimum)


# ----------------------------------------------------------------------------------- packages
DPKG_FORMAT = "${Package}\\t${Version}\\t${db:Status-Abbrev}\\t${db:Status-Want}\\n"
RPM_FORMAT = "%{NAME}\\t%{VERSION}-%{RELEASE}\\n"


def dpkg_query_command(dpkg_query, names):
    return [dpkg_query, "-W", "-f=" + DPKG_FORMAT.replace("\\t", "\t").replace("\\n", "\n"), "--", *names]


def parse_dpkg_query(names, stdout):
    """``{name: {"version": str|None, "installed": bool, "held": bool}}``; dpkg-query exits 1 for an
    unknown package but still prints the others, so the exit code is not looked at."""
    found = {}
    for line in (stdout or "").splitlines():
        fields = line.split("\t")
        if len(fields) < 4:
            continue
        name, version, abbrev, want = (f.strip() for f in fields[:4])
        installed = len(abbrev) >= 2 and abbrev[1] in ("i", "W", "t")  # not half-installed/configured
        found[name.split(":", 1)[0]] = {"version": version if installed else None, "installed": installed,
                                        "held": want == "hold"}
    return {n: found.get(n, {"version": None, "installed": False, "held": False}) for n in names}


def rpm_query_command(rpm, names):
    return [rpm, "-q", "--qf", RPM_FORMAT.replace("\\t", "\t").replace("\\n", "\n"), "--", *names]


def parse_rpm_query(names, stdout):
    found = {}
    for line in (stdout or "").splitlines():
        fields = line.split("\t")
        if len(fields) == 2 and " " not in fields[0]:
            found[fields[0].strip()] = fields[1].strip()
    return {n: {"version": found.get(n), "installed": n in found, "held": False} for n in names}


def package_version_matches(installed, wanted):
    """An installed version matches a pin given with or without the epoch (``1:``) or the Debian revision."""
    if not installed:
        return False
    if not wanted:
        return True
    strip = re.compile(r"^\d+:")
    have, want = strip.sub("", installed), strip.sub("", wanted)
    return have == want or ("-" not in want and have.split("-", 1)[0] == want)


def nvidia_docker_settings(runtime_name="nvidia", runtime_path="nvidia-container-runtime", runtime_args=None,
                           default_runtime=False):
    """The daemon.json settings of ``nvidia-ctk runtime configure --runtime=docker [--set-as-default]``."""
    settings = [{"path": ["runtimes", runtime_name], "value": {"path": runtime_path, "args": list(runtime_args or [])}}]
    if default_runtime:
        settings.append({"path": ["default-runtime"], "value": runtime_name})
    return settings


# ----------------------------------------------------------------------------------- device plugin config
MIG_STRATEGIES = ("none", "single", "mixed")
DEVICE_LIST_STRATEGIES = ("envvar", "volume-mounts", "cdi-annotations", "cdi-cri")
DEVICE_ID_STRATEGIES = ("uuid", "index")
RESOURCE_PREFIX = "nvidia.com"
MAX_RESOURCE_NAME = 63
CONFIG_VERSION = "v1"
_DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
_UUID = re.compile(r"^[0-9a-fA-F]{8}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{12}$")
_LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")


def resource_name_problem(name):
    """``NewResourceName``: the ``nvidia.com/`` prefix is added when missing; at most 63 characters;
    the name part a DNS-1123 subdomain."""
    if not isinstance(name, str) or not name:
        return "no resource name specified"
    full = name if name.startswith(RESOURCE_PREFIX + "/") else f"{RESOURCE_PREFIX}/{name}"
    if len(full) > MAX_RESOURCE_NAME:
        return f"fully-qualified resource name must be {MAX_RESOURCE_NAME} characters or less: {full}"
    part = full.split("/", 1)[1]
    if len(part) > 253 or not _DNS_SUBDOMAIN.match(part):
        return f"incorrect format for resource name '{full}': not a lowercase RFC 1123 subdomain"
    return None


def _device_ref_ok(ref):
    ref = str(ref)
    if re.fullmatch(r"\d+", ref) or re.fullmatch(r"\d+:\d+", ref):
        return True
    if ref.startswith("GPU-"):
        return bool(_UUID.match(ref[4:]))
    if ref.startswith("MIG-"):
        rest = ref[4:]
        if _UUID.match(rest):
            return True
        parts = rest.split("/", 2)
        return (len(parts) == 3 and parts[0].startswith("GPU-") and bool(_UUID.match(parts[0][4:]))
                and all(re.fullmatch(r"\d+", p) for p in parts[1:]))
    return False


def _devices_problem(devices):
    """``ReplicatedDevices``: ``"all"``, a count > 0, or a list of GPU/MIG indices or UUIDs."""
    if isinstance(devices, bool):
        return "devices: unrecognized type"
    if isinstance(devices, str):
        return None if devices == "all" else f"devices: unrecognized string value {devices!r} (only \"all\")"
    if isinstance(devices, int):
        return None if devices > 0 else "devices: a count must be > 0"
    if isinstance(devices, list):
        bad = [str(d) for d in devices if not _device_ref_ok(d)]
        return f"devices: unsupported device reference(s) {', '.join(bad)}" if bad else None
    return "devices: unrecognized type"


def _bool_problem(section, key, where):
    if key in section and not isinstance(section[key], bool):
        return f"{where}.{key}: expected true or false, got {section[key]!r}"
    return None


def replicated_problems(section, where):
    """``ReplicatedResources`` / ``ReplicatedResource`` UnmarshalJSON, in the plugin's words."""
    if not isinstance(section, dict):
        return [f"{where}: expected a mapping"]
    problems = [p for p in (_bool_problem(section, "renameByDefault", where),
                            _bool_problem(section, "failRequestsGreaterThanOne", where)) if p]
    resources = section.get("resources")
    if resources is None or resources == []:
        return [*problems, f"{where}: no resources specified"]
    if not isinstance(resources, list):
        return [*problems, f"{where}.resources: expected a list"]
    for i, resource in enumerate(resources):
        here = f"{where}.resources[{i}]"
        if not isinstance(resource, dict):
            problems.append(f"{here}: expected a mapping")
            continue
        if "name" not in resource:
            problems.append(f"{here}: no resource name specified")
        else:
            problem = resource_name_problem(resource["name"])
            if problem:
                problems.append(f"{here}: {problem}")
        if "devices" in resource:
            problem = _devices_problem(resource["devices"])
            if problem:
                problems.append(f"{here}: {problem}")
        if "replicas" not in resource:
            problems.append(f"{here}: no replicas specified")
            continue
        replicas = resource["replicas"]
        if isinstance(replicas, bool) or not isinstance(replicas, int):
            problems.append(f"{here}.replicas: expected an integer, got {replicas!r}")
        elif replicas < 2:
            problems.append(f"{here}: number of replicas must be >= 2 (got {replicas})")
        if "rename" in resource:
            problem = resource_name_problem(resource["rename"])
            if problem:
                problems.append(f"{here}.rename: {problem}")
    return problems


def _one_of(value, allowed, what):
    if value is None or value in allowed:
        return None
    return f"unknown {what}: {value} (one of {', '.join(allowed)})"


def config_problems(config, where="config"):
    """Every reason the device plugin (v0.18.0) would refuse this config file, as sentences.

    Follows ``api/config/v1`` (``version`` v1; ``sharing.timeSlicing``/``sharing.mps`` resources with a
    name and ``replicas`` >= 2; resource names; device references) and the flag checks of
    ``cmd/nvidia-device-plugin`` (``unknown MIG strategy``, MPS not with ``migStrategy: mixed``), plus one
    rule of the README: time-slicing and MPS are not set together."""
    if not isinstance(config, dict):
        return [f"{where}: expected a mapping (the plugin's config file), got {type(config).__name__}"]
    problems = []
    version = config.get("version") or CONFIG_VERSION
    if version != CONFIG_VERSION:
        problems.append(f"{where}: unknown version: {version}")
    flags = config.get("flags") or {}
    if not isinstance(flags, dict):
        problems.append(f"{where}.flags: expected a mapping")
        flags = {}
    mig = flags.get("migStrategy")
    problem = _one_of(mig, MIG_STRATEGIES, "MIG strategy")
    if problem:
        problems.append(f"{where}.flags.migStrategy: {problem}")
    for key in ("failOnInitError", "gdsEnabled", "mofedEnabled", "gdrcopyEnabled"):
        problem = _bool_problem(flags, key, f"{where}.flags")
        if problem:
            problems.append(problem)
    plugin = flags.get("plugin") or {}
    if isinstance(plugin, dict):
        strategy = plugin.get("deviceListStrategy")
        for item in strategy if isinstance(strategy, list) else [strategy]:
            problem = _one_of(item, DEVICE_LIST_STRATEGIES, "device list strategy")
            if problem:
                problems.append(f"{where}.flags.plugin.deviceListStrategy: {problem}")
        problem = _one_of(plugin.get("deviceIDStrategy"), DEVICE_ID_STRATEGIES, "device ID strategy")
        if problem:
            problems.append(f"{where}.flags.plugin.deviceIDStrategy: {problem}")
    sharing = config.get("sharing") or {}
    if not isinstance(sharing, dict):
        return [*problems, f"{where}.sharing: expected a mapping"]
    for kind in ("timeSlicing", "mps"):
        if sharing.get(kind) is not None:
            problems.extend(replicated_problems(sharing[kind], f"{where}.sharing.{kind}"))
    if sharing.get("timeSlicing") is not None and sharing.get("mps") is not None:
        problems.append(f"{where}.sharing: timeSlicing and mps are mutually exclusive (set one)")
    if sharing.get("mps") is not None and mig == "mixed":
        problems.append(f"{where}: using migStrategy mixed is not supported with MPS")
    return problems


def config_name_problem(name):
    """A config is chosen by the node label ``nvidia.com/device-plugin.config=<name>`` and is a
    ConfigMap key: a label value (at most 63 of ``A-Za-z0-9-_.``, alphanumeric at both ends)."""
    if not isinstance(name, str) or not name or len(name) > 63 or not _LABEL_VALUE.match(name):
        return (f"config name {name!r} must be a label value (1-63 characters of A-Z, a-z, 0-9, '-', '_', '.', "
                "starting and ending with a letter or digit): nodes select it with the label "
                "nvidia.com/device-plugin.config")
    return None


def time_slicing_config(replicas=0, rename_by_default=False, fail_requests_greater_than_one=False,
                        mig_strategy="none", resource="nvidia.com/gpu"):
    """The plugin config file of the role's simple settings: no sharing when ``replicas`` is 0 or None,
    else time-slicing of ``resource`` with that many replicas (left for validation to judge)."""
    config = {"version": CONFIG_VERSION, "flags": {"migStrategy": mig_strategy}}
    if replicas not in (0, None):
        config["sharing"] = {"timeSlicing": {
            "renameByDefault": rename_by_default,
            "failRequestsGreaterThanOne": fail_requests_greater_than_one,
            "resources": [{"name": resource, "replicas": replicas}],
        }}
    return config


def config_set_problems(configs, default=None):
    """Problems of a set of named configs (``config.map``) and the default among them."""
    if not isinstance(configs, dict) or not configs:
        return ["no device plugin configuration given (expected a mapping of name -> config)"]
    problems = []
    for name in sorted(configs, key=str):
        problem = config_name_problem(name)
        if problem:
            problems.append(problem)
        problems.extend(config_problems(configs[name], where=f"config {name}"))
    if default and default not in configs:
        names = ", ".join(sorted(map(str, configs)))
        problems.append(f"default config {default!r} is not one of the configs ({names})")
    return problems


def sharing_summary(config):
    """``(strategy, replicas)`` of a valid config for ``nvidia.com/gpu``: what GFD labels and what the
    capacity is multiplied by."""
    sharing = (config or {}).get("sharing") or {}
    for kind, strategy in (("mps", "mps"), ("timeSlicing", "time-slicing")):
        section = sharing.get(kind)
        if section:
            for resource in section.get("resources") or []:
                name = resource.get("name", "")
                if name in ("gpu", "nvidia.com/gpu"):
                    return strategy, int(resource.get("replicas", 1))
    return "none", 1
