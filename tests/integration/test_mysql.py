# -*- coding: utf-8 -*-
# Copyright: contributors to the dataprotection.databases collection
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""MySQL family end to end against a real MariaDB 10.11 with mariabackup, through ansible-playbook.

Full backup and restore by id; binary log archiving (the host command's
shipping pass run as the server's user, and state synced) with writes at
three moments and a point-in-time restore to the middle one, on a local
repository and on the S3 protocol server with encryption; a binlog missing
from the archive; and the refusals.  MySQL 8 with Percona XtraBackup cannot
run here: its command lines and output files are covered by
tests/unit/test_mysql.py.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json
import os
import select
import subprocess
import time

import pytest

from harness.dbservers import free_port, mysql_uid, socket_query, stop_pid
from harness.playbook import iso, now, run_tasks, task, with_connection


def ship_pass(agent, config_path):
    """One binlog-ship pass of the host command, run as the server's user like the cron line does."""
    return subprocess.run(["runuser", "-u", "mysql", "--", agent["agent_command"], "--config", config_path, "binlog-ship", "-v"],
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, universal_newlines=True, timeout=120, check=False)


def test_full_backup_and_restore_by_id(tmp_path, mariadb_factory, mariadb_on_datadir, server_tmp_path):
    db = mariadb_factory()
    db.sql("CREATE DATABASE shop; CREATE TABLE shop.items(id int PRIMARY KEY, note text) ENGINE=InnoDB;"
           "INSERT INTO shop.items SELECT seq, CONCAT('row ', seq) FROM shop.seq_1_to_5000;"
           "CREATE TABLE shop.legacy(id int) ENGINE=Aria; INSERT INTO shop.legacy VALUES (1), (2)")
    repo = {"type": "local", "path": str(tmp_path / "repo")}
    run = run_tasks([task("backup_repo", "repo", repo=repo)])
    assert run["repo"]["changed"], run

    backup_args = dict(repo=repo, cluster="shop", engine="mysql", method="xtrabackup", connection=db.connection, labels={"reason": "test"})
    run = run_tasks([task("backup", "planned", **backup_args)], check=True)
    plan = run["planned"]["plan"]
    assert run["planned"]["changed"] and plan["flavor"] == "mariadb" and "mariabackup" in plan["tools"] and plan["log_bin"], run
    assert not os.path.exists(os.path.join(repo["path"], "shop", "backups")), "check mode wrote a backup"

    run = run_tasks([task("backup", "taken", **backup_args), task("backup_info", "info", repo=repo, cluster="shop", verify=True)])
    taken = run["taken"]["backup"]
    assert taken["status"] == "completed" and taken["objects"] == ["backup.xbstream.zst"], run
    positions = taken["positions"]
    status = db.sql("SELECT @@gtid_binlog_pos")
    assert positions["binlog_file"].startswith("mysql-bin.") and positions["binlog_pos"] > 4 and positions["gtid"] == status, positions
    assert positions["to_lsn"] >= positions["from_lsn"] > 0 and taken["size"] > taken["stored_size"] > 0
    assert db.password not in run.stdout and db.password not in json.dumps(run.results)
    assert run["info"]["verification"]["ok"] and [b["backup_id"] for b in run["info"]["backups"]] == [taken["backup_id"]]
    manifest = json.load(open(os.path.join(repo["path"], "shop", "backups", taken["backup_id"], "manifest.json")))
    assert manifest["engine_version"].startswith("10.11.") and manifest["flavor"] == "mariadb" and manifest["server_id"] == "1"
    assert manifest["tools"]["mariabackup"].startswith("10.11") and manifest["labels"] == {"reason": "test"}

    db.sql("INSERT INTO shop.items VALUES (5001, 'after the backup')")
    target = str(server_tmp_path / "restored")
    restore_args = dict(repo=repo, cluster="shop", engine="mysql", backup_id=taken["backup_id"], data_dir=target)
    run = run_tasks([task("restore", "planned", **restore_args)], check=True)
    assert run["planned"]["plan"]["backup_id"] == taken["backup_id"] and run["planned"]["plan"]["owner"] == "mysql", run
    assert not os.path.exists(target)
    run = run_tasks([task("restore", "restored", **restore_args), task("restore", "again", **restore_args)])
    assert run["restored"]["changed"] and run["restored"]["restored"]["bytes"] == taken["size"], run
    assert run["again"]["failed"] and "is not empty" in run["again"]["msg"] and "force: true" in run["again"]["msg"]
    st = os.stat(target)
    assert oct(st.st_mode & 0o777) == "0o750" and st.st_uid == mysql_uid()
    assert all(os.stat(os.path.join(root, name)).st_uid == mysql_uid() for root, dirs, files in os.walk(target) for name in files)
    assert not [name for name in os.listdir(os.path.dirname(target)) if name.startswith(".dp-restore-")], "staging left behind"

    restored = mariadb_on_datadir(target, password=db.password)
    assert restored.sql("SELECT COUNT(*), MAX(id) FROM shop.items") == "5000\t5000"
    assert restored.sql("SELECT COUNT(*) FROM shop.legacy") == "2"
    run = run_tasks([task("restore", "busy", force=True, **restore_args)])
    assert run["busy"]["failed"] and "in use" in run["busy"]["msg"], run["busy"]
    assert restored.sql("SELECT COUNT(*) FROM shop.items") == "5000"


@pytest.mark.parametrize("variant", ["local", "s3-encrypted"])
def test_binlog_archiving_and_point_in_time_restore(variant, tmp_path, mariadb_factory, server_tmp_path, agent, request):
    db = mariadb_factory()
    if variant == "local":
        repo = {"type": "local", "path": str(server_tmp_path / "repo")}  # the shipping runs as mysql: it must own the repository
    else:
        s3 = request.getfixturevalue("s3_server")
        repo = s3.repo_spec(s3.make_bucket(), encryption_key="binlog passphrase")
        repo = dict((k, v) for k, v in repo.items() if v is not None)
    common = dict(repo=repo, cluster="shop", engine="mysql", connection=db.connection)
    log_args = dict(common, scheduler="none", rotate_interval=1, **agent)
    run = run_tasks([task("backup_repo", "repo", repo=repo, **({"owner": "mysql"} if variant == "local" else {}))])
    assert run["repo"]["changed"], run

    run = run_tasks([task("log_backup", "planned", **log_args)], check=True)
    assert run["planned"]["changed"] and run["planned"]["plan"]["write_config"], run
    assert not os.listdir(agent["config_dir"])
    run = run_tasks([task("log_backup", "enabled", **log_args), task("log_backup", "again", **log_args)])
    enabled = run["enabled"]
    assert enabled["changed"] and not enabled["restart_required"] and enabled["scheduler"] == "none", run
    assert "binlog-ship --follow" in enabled["ship_command"]
    assert run["again"]["changed"] is False, run["again"]
    st = os.stat(enabled["config_path"])
    assert oct(st.st_mode & 0o777) == "0o600" and st.st_uid == mysql_uid()
    assert json.load(open(enabled["config_path"]))["binlog_index"].endswith("mysql-bin.index")

    db.sql("CREATE DATABASE shop; CREATE TABLE shop.orders(id int PRIMARY KEY, note text);"
           "INSERT INTO shop.orders SELECT seq, 'before backup' FROM shop.seq_1_to_100")
    run = run_tasks([task("backup", "base", **common)])
    assert run["base"]["backup"]["status"] == "completed", run
    base_id = run["base"]["backup"]["backup_id"]

    db.sql("BEGIN; INSERT INTO shop.orders VALUES (101, 'moment 1'); INSERT INTO shop.orders VALUES (102, 'moment 1'); COMMIT;"
           "CREATE TABLE shop.later(id int); INSERT INTO shop.later VALUES (1)")
    time.sleep(1.1)
    if variant == "local":
        # The interval (1 s) is due: one pass rotates and ships, as the cron line runs it.
        shipped = ship_pass(agent, enabled["config_path"])
        assert shipped.returncode == 0 and '"rotated": true' in shipped.stdout, (shipped.stdout, shipped.stderr)
    else:
        # The resident form the systemd service runs: passes every --poll seconds until stopped.
        follower = subprocess.Popen(["runuser", "-u", "mysql", "--", agent["agent_command"], "--config", enabled["config_path"],
                                     "binlog-ship", "--follow", "--poll", "0.5"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                    universal_newlines=True)
        try:
            # A line is printed after each pass that shipped something.
            ready = select.select([follower.stdout], [], [], 60)[0]
            line = follower.stdout.readline() if ready else ""
        finally:
            follower.terminate()
            out, err = follower.communicate(timeout=30)
        assert '"rotated": true' in line and "mysql-bin.000001" in line, (line, out, err)
    time.sleep(1.1)
    middle = now()
    time.sleep(1.1)
    db.sql("BEGIN; INSERT INTO shop.orders VALUES (201, 'moment 2'); INSERT INTO shop.later VALUES (2); COMMIT")
    time.sleep(1.1)
    db.sql("INSERT INTO shop.orders VALUES (301, 'moment 3')")

    run = run_tasks([task("log_backup", "synced", state="synced", **log_args)])
    synced = run["synced"]
    assert synced["shipped"] and synced["synced_binlog"] and len(synced["windows"]) == 1, run
    window = synced["windows"][0]
    assert window["base_backups"] == [base_id] and window["start"] < iso(middle) < window["end"], window

    target = str(server_tmp_path / "pitr")
    sockets = server_tmp_path / "run"
    sockets.mkdir()
    os.chown(str(sockets), mysql_uid(), -1)
    restore_args = dict(repo=repo, cluster="shop", engine="mysql", restore_time=iso(middle), data_dir=target,
                        start=True, port=free_port(), socket_dir=str(sockets))
    run = run_tasks([task("restore", "planned", **restore_args)], check=True)
    plan = run["planned"]["plan"]
    assert plan["recovery"] == "point-in-time" and plan["backup_id"] == base_id and plan["binlogs"]["files"], run
    assert plan["binlogs"]["start_position"] == run["planned"]["plan"]["binlogs"]["start_position"] > 4 and not os.path.exists(target)
    run = run_tasks([task("restore", "pitr", **restore_args)])
    restored = run["pitr"].get("restored", {})
    assert run["pitr"]["changed"] and restored["binlogs"] >= 1, run["pitr"]
    server = restored["server"]
    try:
        got = socket_query(server["socket"], db.password,
                           "SELECT (SELECT GROUP_CONCAT(id ORDER BY id) FROM shop.orders WHERE id > 100), (SELECT COUNT(*) FROM shop.later)")
        assert got == ["101,102\t1"]
        assert socket_query(server["socket"], db.password, "SELECT COUNT(*) FROM shop.orders WHERE id <= 100") == ["100"]
    finally:
        stop_pid(server["pid"])


def test_binlog_missing_from_the_archive_splits_the_window(tmp_path, mariadb_factory, server_tmp_path, agent):
    """A binlog deleted from the archive (as if purged before it was shipped): the chain stops before it."""
    db = mariadb_factory()
    repo = {"type": "local", "path": str(server_tmp_path / "repo")}
    common = dict(repo=repo, cluster="gap", engine="mysql", connection=db.connection)
    log_args = dict(common, scheduler="none", **agent)
    run_tasks([task("backup_repo", "repo", repo=repo, owner="mysql")])
    db.sql("CREATE DATABASE g; CREATE TABLE g.t(id int)")
    run = run_tasks([task("log_backup", "enabled", **log_args), task("backup", "base", **common)])
    assert run["base"]["backup"]["status"] == "completed", run
    moments = []
    for value in (1, 2, 3):
        time.sleep(1.1)
        db.sql("INSERT INTO g.t VALUES (%d)" % value)
        moments.append(now())
        run = run_tasks([task("log_backup", "synced", state="synced", **log_args)])
        assert run["synced"]["shipped"], run
    whole = run["synced"]["windows"]
    assert len(whole) == 1 and whole[0]["end"] > iso(moments[2]), whole
    archive = os.path.join(repo["path"], "gap", "logs", "binlog")
    names = sorted(os.listdir(archive))
    assert len(names) >= 3, names
    os.unlink(os.path.join(archive, names[-2]))  # the file holding the second write

    target = str(server_tmp_path / "t")
    run = run_tasks([
        task("backup_info", "info", repo=repo, cluster="gap"),
        task("restore", "late", repo=repo, cluster="gap", engine="mysql", restore_time=iso(moments[2]), data_dir=target),
    ])
    windows = run["info"]["clusters"][0]["windows"]
    late = run["late"]
    assert late["failed"] and late["error"]["kind"] == "recovery_window" and "outside every recoverable window" in late["msg"], late
    assert len(late["windows"]) == 1 and late["windows"][0]["end"] < iso(moments[2]), late["windows"]
    assert windows == late["windows"], (windows, late["windows"])
    assert not os.path.exists(target)

    run = run_tasks([task("log_backup", "disabled", state="disabled", **log_args), task("log_backup", "again", state="disabled", **log_args)])
    assert run["disabled"]["changed"] and run["again"]["changed"] is False, run
    assert not os.listdir(agent["config_dir"]) and names == sorted(os.listdir(archive) + [names[-2]])


def test_refusals_change_nothing(tmp_path, mariadb_factory, server_tmp_path, agent):
    db = mariadb_factory()
    repo = {"type": "local", "path": str(tmp_path / "repo")}
    common = dict(repo=repo, cluster="db", engine="mysql", connection=db.connection)
    run_tasks([task("backup_repo", "repo", repo=repo)])
    before_backup = now()
    time.sleep(1.1)
    run = run_tasks([task("backup", "base", **common)])
    assert run["base"]["backup"]["status"] == "completed", run
    backup_id = run["base"]["backup"]["backup_id"]

    db.sql("CREATE USER 'weak'@'127.0.0.1' IDENTIFIED BY 'weak-pw'; GRANT SELECT, RELOAD ON *.* TO 'weak'@'127.0.0.1'")
    weak = dict(db.connection, user="weak", password="weak-pw", socket=None)
    statement = mariadb_factory(extra_args=["--binlog-format=STATEMENT"])
    nolog = mariadb_factory(extra_args=["--skip-log-bin"])
    target = str(server_tmp_path / "t")
    occupied = server_tmp_path / "occupied"
    occupied.mkdir()
    (occupied / "keep.txt").write_text("precious")
    log_args = dict(scheduler="none", **agent)
    run = run_tasks([
        task("backup", "badpw", **with_connection(common, dict(db.connection, password="not-the-password-7", socket=None))),
        task("backup", "unreachable", **with_connection(common, dict(db.connection, port=free_port(), socket=None))),
        task("backup", "weak", **with_connection(common, weak)),
        task("backup", "badmethod", method="pg-basebackup", **common),
        task("backup", "otherdb", **with_connection(common, statement.connection)),
        task("log_backup", "statement", repo=repo, cluster="st", engine="mysql", connection=statement.connection, **log_args),
        task("log_backup", "nolog", repo=repo, cluster="nl", engine="mysql", connection=nolog.connection, **log_args),
        task("log_backup", "weaklog", repo=repo, cluster="db", engine="mysql",
             connection=dict(weak, user="weak"), **log_args),
        task("restore", "early", repo=repo, cluster="db", engine="mysql", restore_time=iso(before_backup), data_dir=target),
        task("restore", "future", repo=repo, cluster="db", engine="mysql", restore_time="2999-01-01T00:00:00Z", data_dir=target),
        task("restore", "unknown", repo=repo, cluster="db", engine="mysql", backup_id="db-xtrabackup-20200101000000", data_dir=target),
        task("restore", "occupied", repo=repo, cluster="db", engine="mysql", backup_id=backup_id, data_dir=str(occupied)),
    ])
    assert run["badpw"]["failed"] and "wrong user name or password" in run["badpw"]["msg"], run["badpw"]
    assert run["unreachable"]["failed"] and "cannot reach" in run["unreachable"]["msg"], run["unreachable"]
    weak_msg = run["weak"]["msg"]
    assert run["weak"]["failed"] and "PROCESS" in weak_msg and "LOCK TABLES" in weak_msg and "BINLOG MONITOR" in weak_msg, weak_msg
    assert "RELOAD" not in weak_msg.split("needs:")[1].split(".")[0], weak_msg
    assert run["badmethod"]["failed"] and "xtrabackup" in run["badmethod"]["msg"], run["badmethod"]
    assert run["otherdb"]["failed"] and "belongs to another database" in run["otherdb"]["msg"], run["otherdb"]
    assert run["statement"]["failed"] and "binlog_format is STATEMENT" in run["statement"]["msg"] and "ROW" in run["statement"]["msg"]
    assert run["nolog"]["failed"] and "log_bin is off" in run["nolog"]["msg"], run["nolog"]
    assert run["weaklog"]["failed"] and "BINLOG MONITOR" in run["weaklog"]["msg"], run["weaklog"]
    early = run["early"]
    assert early["failed"] and early["error"]["kind"] == "recovery_window" and "none" in early["msg"], early
    assert run["future"]["failed"] and "in the future" in run["future"]["msg"]
    assert run["unknown"]["failed"] and backup_id in run["unknown"]["msg"]
    assert run["occupied"]["failed"] and "is not empty" in run["occupied"]["msg"]
    assert (occupied / "keep.txt").read_text() == "precious" and not os.path.exists(target)
    assert os.listdir(os.path.join(repo["path"], "db", "backups")) == [backup_id]
    assert sorted(os.listdir(repo["path"])) == sorted(["db", "dataprotection.json"]) or "st" not in os.listdir(repo["path"])
    assert not os.listdir(agent["config_dir"])


def test_a_binlog_schedule_is_the_shipping_with_the_cron_period(tmp_path, mariadb_factory, server_tmp_path, agent):
    """backup_schedule with binlog-archive: the cron's period becomes the rotation interval of the shipping it sets up."""
    db = mariadb_factory()
    repo = {"type": "local", "path": str(server_tmp_path / "repo")}
    run_tasks([task("backup_repo", "repo", repo=repo, owner="mysql")])
    cron_dir = tmp_path / "cron.d"
    sched = dict(repo=repo, name="shop-binlogs", cluster="shop", engine="mysql", method="binlog-archive", connection=db.connection,
                 cron="*/10 * * * *", scheduler="cron", scheduler_dir=str(cron_dir), **agent)
    run = run_tasks([task("backup_schedule", "made", **sched), task("backup_schedule", "again", **sched)])
    made = run["made"]
    assert made["changed"] and made["shipping_interval_seconds"] == 600 and made["scheduler"] == "cron", run
    assert run["again"]["changed"] is False, run["again"]
    assert json.load(open(made["config_path"]))["rotate_interval"] == 600
    line = [text for text in open(str(cron_dir / "dataprotection-binlog-shop")).read().splitlines() if not text.startswith("#")][0]
    fields = line.split(None, 6)
    assert fields[:6] == ["*", "*", "*", "*", "*", "mysql"] and "binlog-ship" in fields[6], line
    db.sql("CREATE DATABASE s; CREATE TABLE s.t(id int); INSERT INTO s.t VALUES (1); FLUSH BINARY LOGS")
    command = fields[6].replace(">/dev/null 2>&1", "").split()
    shipped = subprocess.run(["runuser", "-u", "mysql", "--"] + command, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             universal_newlines=True, timeout=120, check=False)
    assert shipped.returncode == 0, shipped.stderr
    assert os.listdir(os.path.join(repo["path"], "shop", "logs", "binlog"))
    run = run_tasks([task("backup_schedule", "gone", **dict(sched, state="absent"))])
    assert run["gone"]["changed"] and not os.path.exists(str(cron_dir / "dataprotection-binlog-shop")), run
    assert not os.path.exists(made["config_path"])
