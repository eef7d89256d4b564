# -*- coding: utf-8 -*-
# Copyright: contributors to the dataprotection.databases collection
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Crash-consistent volume snapshots of Qdrant and Weaviate storage, on a real btrfs on a loop device.

No Qdrant or Weaviate server can run on the test machines, and these snapshots
do not contact one: the test fills a storage directory with files (what the
server would have written), snapshots it, and restores it.  It proves the
snapshot, the manifest (``consistency: crash``), the restore and the
refusals; that a server recovers from such a copy is the servers' own
crash-recovery guarantee and is not shown here.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import hashlib
import os

from harness.dbservers import free_port
from harness.loopfs import btrfs_fs  # noqa: F401  pylint: disable=unused-import
from harness.playbook import run_tasks, task


def tree_digest(top):
    """{relative path: sha256} of every file below ``top``."""
    found = {}
    for dirpath, dirnames, filenames in os.walk(top):
        for name in filenames:
            path = os.path.join(dirpath, name)
            with open(path, "rb") as handle:
                found[os.path.relpath(path, top)] = hashlib.sha256(handle.read()).hexdigest()
    return found


def test_qdrant_storage_snapshot_and_restore(tmp_path, btrfs_fs):
    storage = btrfs_fs.subvolume("qdrant")
    os.makedirs(os.path.join(storage, "collections", "points", "0", "wal"))
    for index in range(20):
        with open(os.path.join(storage, "collections", "points", "0", "segment-%02d" % index), "wb") as handle:
            handle.write(os.urandom(4096) * 4)
    with open(os.path.join(storage, "collections", "points", "0", "wal", "open-1"), "wb") as handle:
        handle.write(os.urandom(10000))
    before = tree_digest(storage)
    repo = {"type": "local", "path": str(tmp_path / "repo")}
    assert run_tasks([task("backup_repo", "repo", repo=repo)])["repo"]["changed"]
    args = dict(repo=repo, cluster="vectors", engine="qdrant", method="volume-snapshot", snapshot={"provider": "btrfs", "data_dir": storage})
    run = run_tasks([task("backup", "taken", **args), task("backup_info", "info", repo=repo, cluster="vectors")])
    taken = run["taken"]["backup"]
    assert taken["consistency"] == "crash" and taken["type"] == "snapshot" and taken["objects"] == [], run
    assert any("crash-consistent" in warning for warning in run["taken"].get("warnings", [])), run["taken"]
    assert [b["backup_id"] for b in run["info"]["backups"]] == [taken["backup_id"]]

    with open(os.path.join(storage, "collections", "points", "0", "segment-00"), "wb") as handle:
        handle.write(b"changed after the backup")
    target = btrfs_fs.path("qdrant-restored")
    restore = dict(repo=repo, cluster="vectors", engine="qdrant", backup_id=taken["backup_id"])
    run = run_tasks([
        task("restore", "start", data_dir=target, start=True, **restore),
        task("restore", "pitr", data_dir=target, engine="qdrant", repo=repo, cluster="vectors", restore_time="2026-01-01T00:00:00Z"),
        task("restore", "restored", data_dir=target, **restore),
    ])
    assert run["start"]["failed"] and "start is not offered" in run["start"]["msg"], run["start"]
    assert run["pitr"]["failed"] and "does not support pitr" in run["pitr"]["msg"], run["pitr"]
    assert run["restored"]["restored"]["from"].startswith("snapshot "), run
    assert tree_digest(target) == before


def test_weaviate_on_lvm_needs_the_storage_directory(tmp_path):
    repo = {"type": "local", "path": str(tmp_path / "repo")}
    assert run_tasks([task("backup_repo", "repo", repo=repo)])["repo"]["changed"]
    run = run_tasks([
        task("backup", "lvm", repo=repo, cluster="w", engine="weaviate", method="volume-snapshot", snapshot={"provider": "lvm"}),
        # nothing listens on this port: the native method is refused before anything is written
        task("backup", "native", repo=repo, cluster="w", engine="weaviate", method="weaviate-backup",
             connection={"host": "127.0.0.1", "port": free_port()}),
        task("backup", "mongodb", repo=repo, cluster="m", engine="mongodb", method="volume-snapshot", snapshot={"provider": "btrfs"},
             connection={"bin_dir": str(tmp_path)}),
    ])
    assert run["lvm"]["failed"] and "needs snapshot.data_dir" in run["lvm"]["msg"], run["lvm"]
    assert run["native"]["failed"] and "cannot reach Weaviate" in run["native"]["msg"], run["native"]
    assert run["mongodb"]["failed"] and "mongosh" in run["mongodb"]["msg"], run["mongodb"]  # no MongoDB shell on this machine
    assert not os.path.exists(os.path.join(repo["path"], "w")) and not os.path.exists(os.path.join(repo["path"], "m"))
