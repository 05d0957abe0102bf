"""Pure logic behind data_storage: JuiceFS command lines and status, and the mount-target decision."""

from __future__ import annotations

import json

import pytest
from ansible_collections.aicluster.platform.plugins.module_utils import storage

STATUS_OK = json.dumps({"Setting": {"Name": "aicluster", "UUID": "u-1", "Storage": "redis",
                                    "Bucket": "redis://10.77.0.1:6380/2", "SecretKey": "removed",
                                    "BlockSize": 4096, "Compression": "none", "TrashDays": 1},
                        "Sessions": []})


@pytest.mark.parametrize("url,has", [
    ("redis://:secret@10.0.0.5:6379/1", True),
    ("redis://user:secret@10.0.0.5/1", True),
    ("redis://10.0.0.5:6379/1", False),
    ("redis://user@10.0.0.5:6379/1", False),
    ("mysql://jfs:@(127.0.0.1:3306)/juicefs", False),
    ("tikv://10.0.0.1:2379,10.0.0.2:2379/jfs", False),
    ("", False),
])
def test_url_has_password(url, has):
    assert storage.url_has_password(url) is has


def test_format_command_keeps_secrets_out_of_argv():
    cmd = storage.format_command("/usr/local/bin/juicefs", "redis://h:6380/1", "vol", "s3", "https://b.example",
                                 "AK", {"trash_days": 7, "compress": "lz4", "hash-prefix": True, "skip": False,
                                        "unset": None})
    assert cmd == ["/usr/local/bin/juicefs", "format", "--no-update", "--storage=s3", "--bucket=https://b.example",
                   "--access-key=AK", "--compress=lz4", "--hash-prefix", "--trash-days=7", "redis://h:6380/1", "vol"]
    assert storage.command_env("mp", "sk") == {"META_PASSWORD": "mp", "SECRET_KEY": "sk"}
    assert storage.command_env(None, "") == {}


def test_parse_status_existing_volume_reports_no_secrets():
    exists, setting = storage.parse_status(0, "2025/01/01 log line\n" + STATUS_OK, "")
    assert exists is True
    assert setting["Name"] == "aicluster" and setting["Storage"] == "redis"
    assert "SecretKey" not in setting


def test_parse_status_not_formatted_is_the_only_absent_answer():
    err = ("2026/11/26 juicefs[1] <FATAL>: Load metadata: database is not formatted, "
           "please run `juicefs format ...` first")
    assert storage.parse_status(1, "", err) == (False, {})
    with pytest.raises(storage.StorageError, match=r"cannot read the JuiceFS metadata engine: .*connection refused"):
        storage.parse_status(1, "", "<FATAL>: dial tcp 10.0.0.5:6379: connect: connection refused")
    with pytest.raises(storage.StorageError, match="cannot parse"):
        storage.parse_status(0, "no json here", "")


def test_check_existing_refuses_another_volume_and_lists_differences():
    _, setting = storage.parse_status(0, STATUS_OK, "")
    assert storage.check_existing(setting, "aicluster", "redis", "redis://10.77.0.1:6380/2/") == []
    assert storage.check_existing(setting, "aicluster", "s3", None) == ["storage is 'redis', wanted 's3'"]
    with pytest.raises(storage.StorageError, match="already holds JuiceFS volume 'aicluster', not 'other'"):
        storage.check_existing(setting, "other")


def test_redact():
    assert storage.redact("AUTH s3cret failed", ["s3cret", None, ""]) == "AUTH ******** failed"


MOUNTINFO = """\
22 1 0:21 / / rw,relatime shared:1 - overlay overlay rw,lowerdir=/a
35 22 0:45 / /data/k8s rw,relatime shared:20 - fuse.juicefs JuiceFS:aicluster rw,user_id=0
36 22 0:46 / /mnt/with\\040space rw - tmpfs tmpfs rw
37 22 8:1 /srv/k8s /data/bound rw - ext4 /dev/sda1 rw
"""


def test_parse_mountinfo_and_mount_at():
    mounts = storage.parse_mountinfo(MOUNTINFO)
    assert [m["mount_point"] for m in mounts] == ["/", "/data/k8s", "/mnt/with space", "/data/bound"]
    assert storage.mount_at(mounts, "/data/k8s/")["source"] == "JuiceFS:aicluster"
    assert storage.mount_at(mounts, "/data/bound")["root"] == "/srv/k8s"
    assert storage.mount_at(mounts, "/data") is None


def info(kind="dir", mount=None, entries=(), link=None, error=None, dev_ino=(1, 2), path="/data/k8s"):
    return {"path": path, "kind": kind, "mount": mount, "entries": list(entries), "link": link, "error": error,
            "dev_ino": dev_ino}


JFS = {"mount_point": "/data/k8s", "root": "/", "fstype": "fuse.juicefs", "source": "JuiceFS:aicluster"}
EXT4 = {"mount_point": "/data/k8s", "root": "/srv", "fstype": "ext4", "source": "/dev/sda1"}


@pytest.mark.parametrize("target,kwargs,state", [
    (info(kind="absent", dev_ino=None), {"fstype": "fuse.juicefs"}, "empty"),
    (info(), {"fstype": "fuse.juicefs"}, "empty"),
    (info(mount=JFS, entries=["kubeflow"]), {"fstype": "fuse.juicefs", "source": "JuiceFS:aicluster"}, "ready"),
    (info(mount=EXT4, dev_ino=(8, 9)), {"same_as": "/srv", "same_as_dev_ino": (8, 9)}, "ready"),
    (info(kind="symlink", link="/mnt/cephfs/k8s/", dev_ino=None), {"link_to": "/mnt/cephfs/k8s"}, "ready"),
    (info(entries=["old"]), {"allow_nonempty": True}, "ready"),
    (info(mount=EXT4, entries=["x"]), {"allow_nonempty": True}, "ready"),
    (info(kind="absent", dev_ino=None), {"allow_nonempty": True}, "empty"),
])
def test_evaluate_target_accepts(target, kwargs, state):
    assert storage.evaluate_target(target, **kwargs) == state


@pytest.mark.parametrize("target,kwargs,message", [
    (info(entries=["a", "b", "c", "d", "e", "f"]), {"fstype": "fuse.juicefs", "source": "JuiceFS:aicluster"},
     r"/data/k8s is a non-empty directory \(6 entries: a, b, c, d, e, \.\.\.\) that is not the wanted "
     r"fuse\.juicefs JuiceFS:aicluster: refusing to mount over it"),
    (info(mount=JFS), {"fstype": "fuse.juicefs", "source": "JuiceFS:other"},
     r"already a mount point of fuse\.juicefs JuiceFS:aicluster, not the wanted fuse\.juicefs JuiceFS:other"),
    (info(mount=EXT4), {"fstype": "fuse.juicefs"}, r"mount point of ext4 /dev/sda1 \(/srv\)"),
    (info(mount=EXT4, dev_ino=(8, 1)), {"same_as": "/mnt/cephfs/k8s", "same_as_dev_ino": (8, 9)},
     r"not the wanted bind mount of /mnt/cephfs/k8s"),
    (info(kind="symlink", link="/elsewhere", dev_ino=None), {"fstype": "fuse.juicefs"}, r"is a symlink to /elsewhere"),
    (info(kind="symlink", link="/elsewhere", dev_ino=None), {"link_to": "/mnt/x"},
     r"symlink to /elsewhere, not /mnt/x"),
    (info(kind="file", dev_ino=None), {"fstype": "fuse.juicefs"}, r"is a file, not a directory"),
    (info(error="Transport endpoint is not connected"), {"fstype": "fuse.juicefs"},
     r"cannot list /data/k8s: Transport endpoint is not connected"),
    (info(kind="file", dev_ino=None), {"allow_nonempty": True}, r"is a file"),
])
def test_evaluate_target_refuses(target, kwargs, message):
    with pytest.raises(storage.StorageError, match=message):
        storage.evaluate_target(target, **kwargs)


def test_inspect_target_on_real_paths(tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    full = tmp_path / "full"
    full.mkdir()
    (full / "f").write_text("x")
    link = tmp_path / "link"
    link.symlink_to(full)
    assert storage.inspect_target(str(tmp_path / "nope"), [])["kind"] == "absent"
    assert storage.inspect_target(str(empty), [])["entries"] == []
    assert storage.inspect_target(str(full), [])["entries"] == ["f"]
    assert storage.inspect_target(str(link), [])["link"] == str(full)
    assert storage.inspect_target(str(full / "f"), [])["kind"] == "file"
