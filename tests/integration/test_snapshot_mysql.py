# -*- coding: utf-8 -*-
# Copyright: contributors to the dataprotection.databases collection
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Volume-snapshot backups of a real MariaDB 10.11 on btrfs.

Real: the server's data directory is a btrfs subvolume of a loop device; the
backup holds FLUSH TABLES WITH READ LOCK on one mariadb client session around
a read-only btrfs snapshot and records the binlog position and GTID read under
the lock.  The restore by id makes a writable subvolume from the snapshot and
MariaDB started on it holds the data of the backup moment; a point-in-time
restore replays the binary logs archived by log_backup (state synced) from
that position with the module's own replay server and starts the server.
Both through ansible-playbook.

Not real: the failures under the lock.  A direct core-level run (no
ansible-playbook) with the btrfs provider's create replaced by one that first
checks that the lock is held (another session's INSERT times out) and then
fails, and a run whose FLUSH TABLES WITH READ LOCK gives up behind a long
UPDATE after lock_wait_timeout; after each, an INSERT completes within seconds.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json
import os
import subprocess
import time

import pytest

from ansible_collections.dataprotection.databases.plugins.module_utils import snapshot_backup
from ansible_collections.dataprotection.databases.plugins.module_utils.backup import BackupRequest
from ansible_collections.dataprotection.databases.plugins.module_utils.errors import EngineError
from ansible_collections.dataprotection.databases.plugins.module_utils.repoadmin import ensure_present
from ansible_collections.dataprotection.databases.plugins.module_utils.snapshots import btrfs
from harness.dbservers import free_port, mysql_uid, socket_query, stop_pid
from harness.loopfs import btrfs_fs  # noqa: F401  pylint: disable=unused-import
from harness.playbook import iso, now, run_tasks, task


def mariadb_on_btrfs(mariadb_factory, mariadb_on_datadir, btrfs_fs):
    """A MariaDB whose data directory is the btrfs subvolume ``mysql``."""
    initial = mariadb_factory()
    password = initial.password
    initial.stop()
    subvolume = btrfs_fs.subvolume_from("mysql", initial.data_dir)
    return mariadb_on_datadir(subvolume, password=password), subvolume


def timed_insert(db, value):
    """An INSERT that may wait at most 5 s for a lock; returns the seconds it took."""
    clock = time.monotonic()
    db.sql("SET SESSION lock_wait_timeout = 5; INSERT INTO shop.items VALUES (%d, 'after a failed backup')" % value)
    return time.monotonic() - clock


def test_btrfs_snapshot_backup_restore_by_id_and_point_in_time(tmp_path, server_tmp_path, mariadb_factory, mariadb_on_datadir, btrfs_fs):
    db, subvolume = mariadb_on_btrfs(mariadb_factory, mariadb_on_datadir, btrfs_fs)
    db.sql("CREATE DATABASE shop; CREATE TABLE shop.items(id int PRIMARY KEY, note text) ENGINE=InnoDB;"
           "INSERT INTO shop.items SELECT seq, CONCAT('row ', seq) FROM shop.seq_1_to_5000")
    # The pid file a server with the default pid-file leaves in its data directory: a restore must not keep it.
    with open(os.path.join(subvolume, "dbhost.pid"), "w") as handle:
        handle.write("%d\n" % db.pid)
    repo = {"type": "local", "path": str(tmp_path / "repo")}
    args = dict(repo=repo, cluster="shop", engine="mysql", method="volume-snapshot", connection=db.connection, snapshot={"provider": "btrfs"})
    run = run_tasks([dict(task("backup_repo", "repo", repo=repo), check_mode=False), task("backup", "planned", **args)], check=True)
    assert "plan" in run["planned"], run["planned"]
    plan = run["planned"]["plan"]
    assert run["planned"]["changed"] and plan["data_dir"] == subvolume and plan["flavor"] == "mariadb", run
    assert plan["quiesce"].startswith("FLUSH TABLES WITH READ LOCK") and plan["snapshot"]["subvolume"] == subvolume
    assert btrfs_fs.subvolumes() == ["mysql"], "check mode made a snapshot"

    run = run_tasks([task("backup", "taken", **args),
                     task("backup_info", "info", repo=repo, cluster="shop", verify=True)])
    taken = run["taken"]["backup"]
    assert taken["type"] == "snapshot" and taken["consistency"] == "application" and len(taken["snapshots"]) == 1, run
    assert taken["quiesce_seconds"] < 30 and db.password not in run.stdout
    status = db.sql("SHOW MASTER STATUS").split("\t")
    assert taken["positions"] == {"binlog_file": status[0], "binlog_pos": int(status[1]), "gtid": db.sql("SELECT @@gtid_binlog_pos")}, taken
    assert taken["positions"]["gtid"] and taken["positions"]["binlog_file"].startswith("mysql-bin.")
    manifest = json.load(open(os.path.join(repo["path"], "shop", "backups", taken["backup_id"], "manifest.json")))
    assert manifest["identity"] and manifest["identity"].endswith("/1") and manifest["flavor"] == "mariadb", manifest
    assert manifest["engine_version"].startswith("10.11.") and manifest["lock_wait_timeout"] == 60 and manifest["objects"] == []
    assert [b["backup_id"] for b in run["info"]["backups"]] == [taken["backup_id"]] and run["info"]["verification"]["ok"], run["info"]
    # Nothing is locked after the backup.
    assert timed_insert(db, 5001) < 3

    db.sql("INSERT INTO shop.items VALUES (5002, 'moment 1')")
    time.sleep(1.1)
    middle = now()
    time.sleep(1.1)
    db.sql("INSERT INTO shop.items VALUES (5003, 'moment 2')")
    run = run_tasks([task("log_backup", "synced", repo=repo, cluster="shop", engine="mysql", connection=db.connection, state="synced")])
    synced = run["synced"]
    assert synced["shipped"] and [w["base_backups"] for w in synced["windows"]] == [[taken["backup_id"]]], synced
    assert synced["windows"][0]["start"] < iso(middle) < synced["windows"][0]["end"], synced["windows"]

    target = btrfs_fs.path("restored")
    restore_args = dict(repo=repo, cluster="shop", engine="mysql", backup_id=taken["backup_id"], data_dir=target)
    run = run_tasks([task("restore", "restored", **restore_args), task("restore", "again", **restore_args)])
    restored = run["restored"]["restored"]
    assert restored["from"] == "snapshot %s" % taken["snapshots"][0]["id"] and restored["removed"] == ["dbhost.pid"], run["restored"]
    assert run["again"]["failed"] and "not empty" in run["again"]["msg"], run["again"]
    st = os.stat(target)
    assert oct(st.st_mode & 0o777) == "0o750" and st.st_uid == mysql_uid() and not os.path.exists(os.path.join(target, "dbhost.pid"))
    copy = mariadb_on_datadir(target, password=db.password)
    assert copy.sql("SELECT COUNT(*), MAX(id) FROM shop.items") == "5000\t5000"
    copy.stop()

    sockets = server_tmp_path / "run"
    sockets.mkdir()
    os.chown(str(sockets), mysql_uid(), -1)
    pitr_args = dict(repo=repo, cluster="shop", engine="mysql", restore_time=iso(middle), data_dir=btrfs_fs.path("pitr"),
                     start=True, port=free_port(), socket_dir=str(sockets))
    run = run_tasks([task("restore", "planned", **pitr_args)], check=True)
    plan = run["planned"]["plan"]
    assert plan["backup_id"] == taken["backup_id"] and plan["source"] == "snapshot" and plan["recovery"] == "point-in-time", run
    assert plan["binlogs"]["start_file"] == taken["positions"]["binlog_file"] and plan["binlogs"]["files"][0] == taken["positions"]["binlog_file"]
    run = run_tasks([task("restore", "pitr", **pitr_args)])
    restored = run["pitr"].get("restored") or {}
    server = restored.get("server") or {}
    try:
        assert run["pitr"]["changed"] and restored["binlogs"] >= 1 and restored["replay"]["from"].startswith(taken["positions"]["binlog_file"])
        assert socket_query(server["socket"], db.password, "SELECT COUNT(*), GROUP_CONCAT(id ORDER BY id) FROM shop.items WHERE id > 5000") == [
            "2\t5001,5002"]
        assert socket_query(server["socket"], db.password, "SELECT COUNT(*) FROM shop.items") == ["5002"]
    finally:
        if server.get("pid"):
            stop_pid(server["pid"])


def core_backup(repo, db, options=None):
    request = BackupRequest("mysql", "volume-snapshot", "shop", connection=db.connection, snapshot={"provider": "btrfs"}, options=options)
    return snapshot_backup.run_backup(repo, request)


def test_failures_under_the_lock_leave_writes_unblocked(tmp_path, mariadb_factory, mariadb_on_datadir, btrfs_fs, monkeypatch):
    db, subvolume = mariadb_on_btrfs(mariadb_factory, mariadb_on_datadir, btrfs_fs)
    db.sql("CREATE DATABASE shop; CREATE TABLE shop.items(id int PRIMARY KEY, note text) ENGINE=InnoDB; INSERT INTO shop.items VALUES (1, 'one')")
    repo = {"type": "local", "path": str(tmp_path / "repo")}
    ensure_present(repo)
    seen = []

    def failing_create(plan, backup_id, labels=None, timeout=None, taken=None):
        # The read lock is held now: another session's write waits, and gives up after its lock_wait_timeout.
        proc = db.sql("SET SESSION lock_wait_timeout = 1; INSERT INTO shop.items VALUES (2, 'under the lock')", check=False)
        seen.append(proc.stderr)
        raise EngineError("the provider failed on purpose")

    monkeypatch.setattr(btrfs, "create", failing_create)
    with pytest.raises(EngineError) as err:
        core_backup(repo, db)
    assert "failed on purpose" in str(err.value)
    assert len(seen) == 1 and "Lock wait timeout exceeded" in seen[0], seen
    assert timed_insert(db, 3) < 3
    assert btrfs_fs.subvolumes() == ["mysql"] and not os.path.exists(os.path.join(repo["path"], "shop", "backups"))
    monkeypatch.undo()

    # A long write keeps FLUSH TABLES WITH READ LOCK waiting (and every writer behind it) until lock_wait_timeout.
    long_query = subprocess.Popen(["mariadb", "--no-defaults", "--socket=%s" % db.socket, "--user=root", "-e",
                                   "UPDATE shop.items SET note = SLEEP(20) WHERE id = 1"], env=dict(os.environ, MYSQL_PWD=db.password),
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        time.sleep(1)
        clock = time.monotonic()
        with pytest.raises(EngineError) as err:
            core_backup(repo, db, options={"lock_wait_timeout": 2})
        waited = time.monotonic() - clock
        assert "gave up" in str(err.value) and "lock_wait_timeout" in err.value.hint, (str(err.value), err.value.hint)
        assert 1.5 < waited < 15, waited
        assert timed_insert(db, 4) < 3
    finally:
        long_query.kill()
        long_query.wait()
    assert btrfs_fs.subvolumes() == ["mysql"] and db.sql("SELECT COUNT(*) FROM shop.items") == "3"
