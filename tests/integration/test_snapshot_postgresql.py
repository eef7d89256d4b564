# -*- coding: utf-8 -*-
# Copyright: contributors to the dataprotection.databases collection
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Volume-snapshot backups of a real PostgreSQL 15, through ansible-playbook.

btrfs, for real: the server's data directory lies on a btrfs subvolume of a
loop device; the backup holds the server in backup mode (pg_backup_start /
pg_backup_stop) around a read-only snapshot, keeps the backup_label in the
manifest and stores the WAL from the backup's start to its stop.  The restore
makes a writable subvolume from the snapshot, and PostgreSQL started on it
holds the data of the backup moment.  The same backup streamed into the
repository restores from there after the snapshot is gone, and serves as the
base of a point-in-time restore.

AWS EBS: the same backup mode around EBS snapshots of volumes in moto's EC2
API in server mode (the EC2 protocol over HTTP on loopback): moto stores no
block data, so that test proves the orchestration (quiesce, create, wait, tag,
manifest, retention's deletion, restore into a zone), not the data.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json
import os
import shutil
import time

import pytest

from harness.loopfs import btrfs_fs  # noqa: F401  pylint: disable=unused-import
from harness.playbook import iso, now, run_tasks, task

ZONE = "us-east-1a"


def rows(server, sql):
    return server.psql(sql).strip().splitlines()


def wait_promoted(server):
    deadline = time.monotonic() + 120
    while rows(server, "SELECT pg_is_in_recovery()") != ["f"]:
        assert time.monotonic() < deadline, "the restored server did not finish recovery"
        time.sleep(0.2)


def pg_on_btrfs(postgres_factory, postgres_on_datadir, btrfs_fs, settings=None):
    """A PostgreSQL whose data directory is the btrfs subvolume ``pgdata``."""
    initial = postgres_factory(settings=settings)
    password = initial.password
    initial.stop()
    subvolume = btrfs_fs.subvolume("pgdata")
    for name in os.listdir(initial.data_dir):
        source = os.path.join(initial.data_dir, name)
        if os.path.isdir(source) and not os.path.islink(source):
            shutil.copytree(source, os.path.join(subvolume, name), symlinks=True)
        else:
            shutil.copy2(source, os.path.join(subvolume, name))
    os.chmod(btrfs_fs.mount, 0o755)
    return postgres_on_datadir(subvolume, password=password), subvolume


def manifest_of(repo, cluster, backup_id):
    with open(os.path.join(repo["path"], cluster, "backups", backup_id, "manifest.json")) as handle:
        return json.load(handle)


def test_btrfs_snapshot_backup_and_restore(tmp_path, postgres_factory, postgres_on_datadir, btrfs_fs):
    pg, subvolume = pg_on_btrfs(postgres_factory, postgres_on_datadir, btrfs_fs)
    pg.psql("CREATE TABLE items(id int PRIMARY KEY, note text); INSERT INTO items SELECT g, 'row ' || g FROM generate_series(1, 20000) g")
    repo = {"type": "local", "path": str(tmp_path / "repo")}
    args = dict(repo=repo, cluster="orders", engine="postgresql", method="volume-snapshot", connection=pg.connection,
                snapshot={"provider": "btrfs"}, labels={"reason": "test"})
    assert run_tasks([task("backup_repo", "repo", repo=repo)])["repo"]["changed"]
    run = run_tasks([task("backup", "planned", **args)], check=True)
    assert "plan" in run["planned"], run
    plan = run["planned"]["plan"]
    assert run["planned"]["changed"] and plan["provider"] == "btrfs" and plan["snapshot"]["subvolume"] == subvolume, run
    assert plan["data_dir"] == subvolume and btrfs_fs.subvolumes() == ["pgdata"], "check mode made a snapshot"

    run = run_tasks([task("backup", "taken", **args), task("backup_info", "info", repo=repo, cluster="orders", verify=True)])
    taken = run["taken"]["backup"]
    assert taken["type"] == "snapshot" and taken["consistency"] == "application" and len(taken["snapshots"]) == 1, run
    assert all(name.startswith("wal-") for name in taken["objects"]) and taken["objects"], taken
    assert taken["positions"]["start_wal"] <= taken["positions"]["stop_wal"] and taken["positions"]["timeline"] == 1
    assert pg.password not in run.stdout
    snapshot_path = taken["snapshots"][0]["id"]
    assert btrfs_fs.subvolumes() == ["%s/%s" % (".dataprotection-snapshots", taken["backup_id"]), "pgdata"]
    manifest = manifest_of(repo, "orders", taken["backup_id"])
    assert manifest["backup_label"].startswith("START WAL LOCATION: ") and "LABEL: %s" % taken["backup_id"] in manifest["backup_label"]
    assert manifest["snapshots"][0]["uuid"] and manifest["consistency"] == "application" and manifest["type"] == "snapshot"
    info = run["info"]
    assert [b["backup_id"] for b in info["backups"]] == [taken["backup_id"]] and info["verification"]["ok"], info
    # The snapshot holds no backup_label (non-exclusive backup mode): restores write the manifest's.
    assert not os.path.exists(os.path.join(snapshot_path, "backup_label"))

    pg.psql("INSERT INTO items VALUES (20001, 'after the backup')")
    target = btrfs_fs.path("restored")
    restore_args = dict(repo=repo, cluster="orders", engine="postgresql", backup_id=taken["backup_id"], data_dir=target)
    run = run_tasks([task("restore", "planned", **restore_args)], check=True)
    assert run["planned"]["plan"]["source"] == "snapshot" and not os.path.exists(target), run
    run = run_tasks([task("restore", "restored", **restore_args), task("restore", "again", **restore_args)])
    assert run["restored"]["restored"]["from"] == "snapshot %s" % snapshot_path, run
    assert run["again"]["failed"] and "not empty" in run["again"]["msg"], run["again"]
    assert os.path.isfile(os.path.join(target, "backup_label"))
    pg.stop()
    restored = postgres_on_datadir(target, password=pg.password)
    wait_promoted(restored)
    assert rows(restored, "SELECT count(*), max(id) FROM items") == ["20000|20000"]
