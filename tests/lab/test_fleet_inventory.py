"""Generated inventory, podman arguments, image definition (no podman needed)."""

import subprocess
from pathlib import Path

import yaml
from labctl.fleet import image, inventory, runtime
from labctl.fleet.models import load_profile, make_machine

REPO = Path(__file__).resolve().parents[2]


def _machines():
    machines = load_profile("demo")
    runtime._assign_addresses(machines)
    return machines


def test_addresses_are_static_and_in_the_lab_subnet():
    machines = _machines()
    assert [m.address for m in machines] == [f"10.77.0.{10 + i}" for i in range(6)]
    extra = make_machine("late", "T4", 1)
    runtime._assign_addresses([*machines, extra])
    assert extra.address == "10.77.0.16"


def test_inventory_groups_and_hostvars(tmp_path):
    key = tmp_path / "id_ed25519"
    path = inventory.write_inventory(_machines(), key, tmp_path / "generated-fleet.yml")
    doc = yaml.safe_load(path.read_text())
    groups = doc["all"]["children"]["lab_fleet"]["children"]
    assert set(groups) == {"nvidia_nodes", "ascend_nodes", "cpu_nodes"}
    assert set(groups["nvidia_nodes"]["hosts"]) == {"gpu-a100-1", "gpu-a100-2", "gpu-t4-1"}
    assert set(groups["ascend_nodes"]["hosts"]) == {"npu-910b-1", "npu-910b-2"}
    assert set(groups["cpu_nodes"]["hosts"]) == {"cpu-1"}
    hv = groups["nvidia_nodes"]["hosts"]["gpu-a100-1"]
    assert hv["ansible_host"] == "10.77.0.10" and hv["ansible_user"] == "root"
    assert hv["ansible_ssh_private_key_file"] == str(key.resolve())
    assert "-o StrictHostKeyChecking=no" in hv["ansible_ssh_common_args"]
    assert hv["ansible_host_key_checking"] is False
    assert "-o UserKnownHostsFile=/dev/null" in hv["ansible_ssh_common_args"]
    assert (hv["lab_accelerator_model"], hv["lab_accelerator_count"], hv["lab_rack"]) == ("A100", 8, "r01")


def test_inventory_parses_with_ansible(tmp_path):
    path = inventory.write_inventory(_machines(), tmp_path / "k", tmp_path / "inv.yml")
    ansible_inventory = REPO / ".venv" / "bin" / "ansible-inventory"
    if not ansible_inventory.exists():
        return
    out = subprocess.run([str(ansible_inventory), "-i", str(path), "--graph", "lab_fleet"], capture_output=True,
                         text=True, check=True, cwd=tmp_path).stdout
    assert "@nvidia_nodes" in out and "npu-910b-2" in out and "cpu-1" in out


def test_default_inventory_path():
    assert inventory.INVENTORY_PATH == REPO / "inventory" / "lab" / "generated-fleet.yml"


def test_run_args_mount_fixtures_at_production_paths(tmp_path):
    gpu, npu, cpu = (m for m in _machines() if m.name in ("gpu-a100-1", "npu-910b-1", "cpu-1"))
    args = runtime.run_args(gpu, "img:1", tmp_path / "ak", tmp_path / "gpu")
    joined = " ".join(args)
    assert args[-2:] == ["img:1", "/sbin/init"]
    assert "--runtime runc" in joined and "--ulimit nofile=" in joined and "--ulimit nproc=" in joined
    assert "--device /dev/fuse" in joined and "--cap-add SYS_ADMIN" in joined
    assert "--ip 10.77.0.10" in joined and "--hostname gpu-a100-1" in joined
    assert f"{tmp_path}/gpu/pci:/sys/bus/pci/devices:ro" in joined
    assert "nvidia_smi.py:/usr/bin/nvidia-smi:ro" in joined
    assert "--device /dev/null:/dev/nvidia7" in joined and "/dev/null:/dev/nvidiactl" in joined
    joined = " ".join(runtime.run_args(npu, "img:1", tmp_path / "ak", tmp_path / "npu"))
    assert "npu_smi.py:/usr/local/sbin/npu-smi:ro" in joined
    assert "/usr/local/Ascend/driver/version.info:ro" in joined and "/dev/null:/dev/davinci_manager" in joined
    joined = " ".join(runtime.run_args(cpu, "img:1", tmp_path / "ak", tmp_path / "cpu"))
    assert "smi" not in joined and "/dev/null:" not in joined


def test_image_tag_is_the_definition_hash():
    a = image.definition("http://mirror.example/debian", "http://mirror.example/debian-security")
    b = image.definition("http://other.example/debian", "http://mirror.example/debian-security")
    assert image.image_ref(a).startswith("localhost/aicluster-lab-node:")
    assert image.image_ref(a) == image.image_ref(dict(a))
    assert image.image_ref(a) != image.image_ref(b)
    assert {"python3", "systemd", "openssh-server", "fuse3", "pciutils", "python3-apt"} <= set(a["packages"])


def test_host_mirror_reads_deb822_and_one_line_sources(tmp_path):
    (tmp_path / "sources.list.d").mkdir()
    (tmp_path / "sources.list").write_text("deb [arch=amd64] http://proxy.lan:3142/debian bookworm main\n")
    (tmp_path / "sources.list.d" / "debian.sources").write_text(
        "Types: deb\nURIs: http://proxy.lan:3142/debian-security\nSuites: bookworm-security\nComponents: main\n")
    assert image.host_mirror(tmp_path) == ("http://proxy.lan:3142/debian", "http://proxy.lan:3142/debian-security")


def test_host_limits_are_raised(tmp_path):
    d = tmp_path / "fs" / "inotify"
    d.mkdir(parents=True)
    (d / "max_user_instances").write_text("128\n")
    (d / "max_user_watches").write_text("999999\n")
    runtime.ensure_host_limits(tmp_path)
    assert (d / "max_user_instances").read_text() == "8192"
    assert (d / "max_user_watches").read_text() == "999999\n"
