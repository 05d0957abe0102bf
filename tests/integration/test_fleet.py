"""Lab fleet integration: needs `lab fleet up` (demo profile) to have run.

Everything goes through Ansible over SSH with the generated inventory, as the roles will.
"""

import json
import re
import subprocess
from pathlib import Path

import pytest

pytestmark = pytest.mark.lab

REPO = Path(__file__).resolve().parents[2]
INVENTORY = REPO / "inventory" / "lab" / "generated-fleet.yml"
ANSIBLE = REPO / ".venv" / "bin" / "ansible"
DEMO = {"gpu-a100-1", "gpu-a100-2", "gpu-t4-1", "npu-910b-1", "npu-910b-2", "cpu-1"}


def ansible(pattern, *args, check=True):
    if not INVENTORY.exists():
        pytest.fail(f"{INVENTORY} missing: run `lab fleet up` first")
    proc = subprocess.run([str(ANSIBLE), pattern, "-i", str(INVENTORY), *args], capture_output=True, text=True,
                          cwd=REPO, timeout=300, check=False)
    if check:
        assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    return proc.stdout


def shell(host, command):
    out = ansible(host, "-m", "shell", "-a", command)
    # "<host> | CHANGED | rc=0 >>\n<stdout>\n" followed (with profile_tasks) by a recap
    body = out.split(">>\n", 1)[1]
    return re.split(r"\n\n|\nTASKS RECAP", body, maxsplit=1)[0]


def test_ansible_ping_all_machines_over_ssh():
    out = ansible("all", "-m", "ping", "-o")
    ok = set(re.findall(r"^(\S+) \| SUCCESS", out, re.M))
    assert DEMO <= ok


def test_machines_have_distinct_hostnames_in_facts():
    out = ansible("all", "-m", "setup", "-a", "filter=ansible_hostname", "-o")
    hostnames = dict(re.findall(r'^(\S+) \| SUCCESS => .*"ansible_hostname": "([^"]+)"', out, re.M))
    assert DEMO <= set(hostnames)
    assert all(hostnames[h] == h for h in DEMO)
    assert len(set(hostnames.values())) == len(hostnames)


def test_a100_machine_has_eight_gpus():
    assert len(shell("gpu-a100-1", "nvidia-smi -L").strip().splitlines()) == 8
    vendors = shell("gpu-a100-1", "cat /sys/bus/pci/devices/*/vendor").split()
    assert vendors.count("0x10de") == 8
    classes = shell("gpu-a100-1", "grep -l 0x10de /sys/bus/pci/devices/*/vendor | xargs -n1 dirname | "
                                  "xargs -I{} cat {}/class").split()
    assert classes == ["0x030200"] * 8
    csv = shell("gpu-a100-1", "nvidia-smi --query-gpu=name,memory.total --format=csv,noheader").splitlines()
    assert csv == ["NVIDIA A100-SXM4-40GB, 40960 MiB"] * 8
    devs = shell("gpu-a100-1", "ls /dev/nvidia*").split()
    assert {f"/dev/nvidia{i}" for i in range(8)} | {"/dev/nvidiactl", "/dev/nvidia-uvm"} <= set(devs)


def test_ascend_machine_has_eight_npus():
    out = shell("npu-910b-1", "npu-smi info")
    assert len(re.findall(r"^\| \d+\s+910B\S*\s+\| OK", out, re.M)) == 8
    assert "Version=" in shell("npu-910b-1", "cat /usr/local/Ascend/driver/version.info")
    assert len(shell("npu-910b-1", "ls /dev/davinci[0-9]*").split()) == 8
    assert "Processing accelerators" in shell("npu-910b-1", "lspci")


def test_cpu_machine_has_no_accelerators():
    out = shell("cpu-1", "cat /sys/bus/pci/devices/*/vendor; command -v nvidia-smi npu-smi || true")
    assert "0x10de" not in out and "0x19e5" not in out and "smi" not in out


def test_systemd_is_running_everywhere():
    out = ansible("all", "-m", "command", "-a", "systemctl is-system-running", "-o", check=False)
    states = dict(re.findall(r"^(\S+) \| \S+ \| rc=\d+ \| \(stdout\) (\S+)", out, re.M))
    assert DEMO <= set(states) and set(states.values()) <= {"running", "degraded"}, json.dumps(states)
