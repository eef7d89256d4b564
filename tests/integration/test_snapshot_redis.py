# -*- coding: utf-8 -*-
# Copyright: contributors to the dataprotection.databases collection
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Volume-snapshot backups of a real Redis 7 on btrfs, through ansible-playbook.

Real: the server's dir is a btrfs subvolume of a loop device; the backup runs
BGSAVE and waits for it before a read-only btrfs snapshot, and records what
the datafile method records of the RDB (keyspace, replication id and offset).
The restore makes a writable subvolume from the snapshot, removes what the
running server had left in its dir (a save's temp file, a pid file), and
starts redis-server on it as the redis user: that server holds the keys of
the backup moment, not those written after it.  Once with the RDB only, once
with appendonly yes (the started server loads the AOF).

Not covered here: providers other than btrfs, and a failing BGSAVE (the
datafile tests cover RdbSnapshot's refusal of one).
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json
import os
import pwd

import pytest

from harness.dbservers import free_port, stop_pid
from harness.loopfs import btrfs_fs  # noqa: F401  pylint: disable=unused-import
from harness.playbook import run_tasks, task


def resp(*args):
    out = ["*%d\r\n" % len(args)]
    for arg in args:
        data = str(arg)
        out.append("$%d\r\n%s\r\n" % (len(data.encode("utf-8")), data))
    return "".join(out)


@pytest.mark.parametrize("appendonly", [False, True], ids=["rdb", "aof"])
def test_btrfs_snapshot_backup_and_restore_with_start(appendonly, tmp_path, server_tmp_path, redis_factory, btrfs_fs):
    subvolume = btrfs_fs.subvolume("redis")
    # The redis user (the restored server's) must reach the restored subvolume next to it.
    os.chmod(btrfs_fs.workdir, 0o711)
    os.chmod(btrfs_fs.mount, 0o755)
    db = redis_factory(dir=subvolume, save="", appendonly=appendonly)
    db.cli("--pipe", input="".join(resp("SET", "key:%d" % i, "value %d" % i) for i in range(1000)) + resp("HSET", "h", "a", "1"))
    # What a running server may leave in its dir: a save's temp file (its child was killed), a pid file.
    for name in ("temp-4242.rdb", "redis-old.pid"):
        with open(os.path.join(subvolume, name), "w") as handle:
            handle.write("stale\n")
    repo = {"type": "local", "path": str(tmp_path / "repo")}
    args = dict(repo=repo, cluster="cache", engine="redis", method="volume-snapshot", connection={"host": db.host, "port": db.port},
                snapshot={"provider": "btrfs"})
    run = run_tasks([dict(task("backup_repo", "repo", repo=repo), check_mode=False), task("backup", "planned", **args)], check=True)
    assert "plan" in run["planned"], run["planned"]
    plan = run["planned"]["plan"]
    assert plan["data_dir"] == subvolume and plan["quiesce"].startswith("BGSAVE") and "identity" not in plan, plan
    assert plan["appendonly"] is appendonly and plan["keyspace"] == {"db0": {"keys": 1001, "expires": 0}}
    assert btrfs_fs.subvolumes() == ["redis"], "check mode made a snapshot"

    saves = int(db.cli("INFO", "persistence").split("rdb_saves:")[1].split()[0])
    run = run_tasks([task("backup", "taken", **args), task("backup_info", "info", repo=repo, cluster="cache", verify=True)])
    taken = run["taken"]["backup"]
    assert taken["type"] == "snapshot" and taken["consistency"] == "application" and len(taken["snapshots"]) == 1, run
    assert int(db.cli("INFO", "persistence").split("rdb_saves:")[1].split()[0]) == saves + 1, "the backup ran no BGSAVE"
    assert set(taken["positions"]) == {"rdb_snapshot_time", "master_replid", "master_repl_offset"}, taken["positions"]
    assert taken["positions"]["master_replid"] == db.cli("INFO", "replication").split("master_replid:")[1].split()[0]
    assert [b["backup_id"] for b in run["info"]["backups"]] == [taken["backup_id"]] and run["info"]["verification"]["ok"], run["info"]
    manifest = json.load(open(os.path.join(repo["path"], "cache", "backups", taken["backup_id"], "manifest.json")))
    assert manifest["keyspace"] == {"db0": {"keys": 1001, "expires": 0}} and manifest["keyspace_exact"] is True, manifest
    assert manifest["identity"] is None and manifest["redis"]["rdb_version"] >= 10 and manifest["redis"]["dir"] == subvolume
    if appendonly:
        assert manifest["aof"]["filename"] == "appendonly.aof" and manifest["aof"]["keyspace"] == manifest["keyspace"], manifest["aof"]
    else:
        assert manifest["aof"] is None and manifest["end_time"] == manifest["positions"]["rdb_snapshot_time"]

    db.cli("--pipe", input="".join(resp("SET", "after:%d" % i, "x") for i in range(50)))
    assert db.cli("DBSIZE") == "1051"
    target = btrfs_fs.path("restored")
    sockets = server_tmp_path / "sockets"
    sockets.mkdir()
    os.chown(str(sockets), pwd.getpwnam("redis").pw_uid, -1)
    port = free_port()
    restore_args = dict(repo=repo, cluster="cache", engine="redis", backup_id=taken["backup_id"], data_dir=target, start=True, port=port,
                        socket_dir=str(sockets))
    run = run_tasks([task("restore", "restored", **restore_args)])
    restored = run["restored"].get("restored") or {}
    server = restored.get("server") or {}
    try:
        assert restored["from"] == "snapshot %s" % taken["snapshots"][0]["id"], run["restored"]
        assert sorted(restored["removed"]) == ["redis-old.pid", "temp-4242.rdb"], restored
        assert server["loaded_from"] == ("aof" if appendonly else "rdb") and server["keyspace_check"]["ok"], server
        assert server["keyspace_check"]["actual"] == {"db0": {"keys": 1001, "expires": 0}}
        copy = ["-p", str(port)]
        assert db.cli(*(copy + ["DBSIZE"])) == "1001" and db.cli(*(copy + ["GET", "key:999"])) == "value 999"
        assert db.cli(*(copy + ["EXISTS", "after:0"])) == "0" and db.cli(*(copy + ["HGET", "h", "a"])) == "1"
        st = os.stat(target)
        assert oct(st.st_mode & 0o777) == "0o750" and st.st_uid == pwd.getpwnam("redis").pw_uid
        assert not os.path.exists(os.path.join(target, "temp-4242.rdb"))
    finally:
        if server.get("pid"):
            stop_pid(server["pid"])
