"""nvidia-smi / npu-smi stand-ins: outputs in the real formats, parsed back (no podman needed)."""

import itertools
import json
import re
import subprocess
import sys

import pytest
from labctl.fleet import accel
from labctl.fleet.fixtures import npu_smi, nvidia_smi
from labctl.fleet.models import make_machine


@pytest.fixture
def info_file(tmp_path, monkeypatch):
    def make(model, count, name="m1"):
        path = tmp_path / f"{name}.json"
        path.write_text(json.dumps(accel.accelerator_info(make_machine(name, model, count))))
        monkeypatch.setenv("LAB_ACCELERATORS_JSON", str(path))
        return path
    return make


def run(script, *args):
    proc = subprocess.run([sys.executable, script.__file__, *args], capture_output=True, text=True, check=False)
    return proc.returncode, proc.stdout, proc.stderr


def test_nvidia_smi_list(info_file):
    info_file("A100", 8)
    rc, out, _ = run(nvidia_smi, "-L")
    lines = out.splitlines()
    assert rc == 0 and len(lines) == 8
    m = re.fullmatch(r"GPU (\d+): (.+) \(UUID: (GPU-[0-9a-f-]{36})\)", lines[3])
    assert m and m.group(1) == "3" and m.group(2) == "NVIDIA A100-SXM4-40GB"


def test_nvidia_smi_query_csv_roundtrip(info_file):
    info_file("T4", 2)
    fields = "index,name,uuid,memory.total,driver_version,pci.bus_id"
    rc, out, _ = run(nvidia_smi, f"--query-gpu={fields}", "--format=csv")
    header, *rows = out.splitlines()
    assert rc == 0
    assert header == "index, name, uuid, memory.total [MiB], driver_version, pci.bus_id"
    assert len(rows) == 2
    idx, name, uuid, mem, drv, bus = rows[1].split(", ")
    assert (idx, name, mem, drv) == ("1", "Tesla T4", "15360 MiB", "550.127.05")
    assert uuid.startswith("GPU-") and re.fullmatch(r"00000000:[0-9A-F]{2}:00\.0", bus)
    rc, out, _ = run(nvidia_smi, "--query-gpu=name,memory.total", "--format=csv,noheader,nounits")
    assert out.splitlines() == ["Tesla T4, 15360"] * 2
    rc, out, _ = run(nvidia_smi, "--query-gpu=pci.bus_id,index", "--format=csv,noheader", "-i", "1")
    assert out.splitlines() == [rows[1].split(", ")[5] + ", 1"]


def test_nvidia_smi_rejects_unknown_field(info_file):
    info_file("A100", 1)
    rc, _, err = run(nvidia_smi, "--query-gpu=bogus", "--format=csv")
    assert rc == 2 and 'Field "bogus" is not a valid field to query.' in err


def test_nvidia_smi_table(info_file):
    info_file("A100", 8)
    rc, out, _ = run(nvidia_smi)
    lines = out.splitlines()
    assert rc == 0
    assert re.search(r"NVIDIA-SMI 550\.127\.05\s+Driver Version: 550\.127\.05\s+CUDA Version: 12\.4", out)
    assert all(len(line) == 91 for line in lines[1:] if line.startswith(("|", "+")))
    gpu_rows = [line for line in lines if re.match(r"\|\s+\d+\s+NVIDIA A100-SXM4-40GB\s+On\s+\|", line)]
    assert len(gpu_rows) == 8
    assert "40960MiB" in out and "No running processes found" in out


def test_nvidia_smi_without_nvidia_info_fails_like_no_driver(info_file):
    info_file("910B", 2)
    rc, out, _ = run(nvidia_smi, "-L")
    assert rc == 9 and "couldn't communicate with the NVIDIA driver" in out


def parse_npu_table(text):
    """Parse `npu-smi info` the way tools do: pairs of '| id name | health | ...' rows."""
    chips = []
    rows = [line for line in text.splitlines() if line.startswith("| ")]
    for first, second in itertools.pairwise(rows):
        m1 = re.match(r"\| (\d+)\s+(\S+)\s+\| (\S+)\s+\| (\S+)\s+(\d+)\s+(\d+)\s*/\s*(\d+)\s+\|", first)
        m2 = re.match(r"\| (\d+)\s+\| ([0-9A-F:.]+)\s+\| (\d+)\s+(\d+)\s*/\s*(\d+)\s+(\d+)\s*/\s*(\d+)\s+\|", second)
        if m1 and m2:
            chips.append({"npu": int(m1[1]), "name": m1[2], "health": m1[3], "bus": m2[2],
                          "hbm_total": int(m2[7])})
    return chips


def test_npu_smi_info_table(info_file):
    info_file("910B", 8)
    rc, out, _ = run(npu_smi, "info")
    assert rc == 0
    assert all(len(line) == 98 for line in out.splitlines())
    assert re.search(r"\| npu-smi 24\.1\.rc3\s+Version: 24\.1\.rc3\s+\|", out)
    chips = parse_npu_table(out)
    assert [c["npu"] for c in chips] == list(range(8))
    assert {c["name"] for c in chips} == {"910B3"} and {c["health"] for c in chips} == {"OK"}
    assert chips[0]["bus"] == "0000:C1:00.0" and chips[0]["hbm_total"] == 65536
    assert out.count("No running processes found in NPU") == 8


def test_npu_smi_list_and_map(info_file):
    info_file("910B", 8)
    _, out, _ = run(npu_smi, "info", "-l")
    assert re.search(r"^\tTotal Count\s+: 8$", out, re.M)
    assert len(re.findall(r"^\tNPU ID\s+: \d+$", out, re.M)) == 8
    _, out, _ = run(npu_smi, "info", "-m")
    rows = [line.split() for line in out.splitlines()[1:]]
    chips = [r for r in rows if r[-1] != "Mcu"]
    assert len(chips) == 8 and chips[7][:3] == ["7", "0", "7"] and " ".join(chips[0][3:]) == "Ascend 910B3"
    _, out, _ = run(npu_smi, "info", "-t", "board", "-i", "0")
    assert re.search(r"PCI Device ID\s+: 0xD802", out) and re.search(r"Software Version\s+: 24\.1\.rc3", out)


def test_npu_smi_without_ascend_info_fails(info_file):
    info_file("A100", 1)
    rc, _, _ = run(npu_smi, "info")
    assert rc != 0
