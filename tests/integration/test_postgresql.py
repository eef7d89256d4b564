# -*- coding: utf-8 -*-
# Copyright: contributors to the dataprotection.databases collection
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""PostgreSQL end to end against a real PostgreSQL 15, through ansible-playbook.

Full backup and restore by id; WAL archiving through the host command with
writes at three moments and a point-in-time restore to the middle one; the
same on the S3 protocol server with encryption; and the refusals.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json
import os
import subprocess
import time

import pytest

from harness.dbservers import free_port
from harness.playbook import iso, now, run_tasks, task, with_connection


def local_repo(tmp_path, **extra):
    return dict({"type": "local", "path": str(tmp_path / "repo")}, **extra)


def rows(server, sql):
    return server.psql(sql).strip().splitlines()


def restored_rows(postgres_on_datadir, data_dir, sql):
    """Start PostgreSQL on a restored directory, wait until recovery is over, run ``sql``."""
    restored = postgres_on_datadir(data_dir)
    try:
        deadline = time.monotonic() + 120
        while rows(restored, "SELECT pg_is_in_recovery()") != ["f"]:
            assert time.monotonic() < deadline, "the restored server did not finish recovery"
            time.sleep(0.2)
        return rows(restored, sql), restored
    finally:
        restored.stop()


def test_full_backup_and_restore_by_id(tmp_path, postgres_factory, postgres_on_datadir, server_tmp_path):
    pg = postgres_factory()
    pg.psql("CREATE TABLE items(id int PRIMARY KEY, note text); INSERT INTO items SELECT g, 'row ' || g FROM generate_series(1, 5000) g")
    repo = local_repo(tmp_path)
    run = run_tasks([task("backup_repo", "repo", repo=repo)])
    assert run["repo"]["changed"], run

    backup_args = dict(repo=repo, cluster="orders", engine="postgresql", connection=pg.connection, labels={"reason": "test"})
    run = run_tasks([task("backup", "planned", **backup_args)], check=True)
    planned = run["planned"]
    assert planned["changed"] and planned["plan"]["server_version"].startswith("15") and planned["plan"]["compression"] == "zstd", run
    assert not os.path.exists(os.path.join(repo["path"], "orders", "backups")), "check mode wrote a backup"

    run = run_tasks([task("backup", "taken", **backup_args), task("backup_info", "info", repo=repo, cluster="orders", verify=True)])
    taken = run["taken"]["backup"]
    assert taken["status"] == "completed" and taken["objects"] == ["base.tar.zst"], run
    assert taken["positions"]["timeline"] == 1 and taken["positions"]["start_lsn"] and taken["size"] > taken["stored_size"] > 0
    assert pg.connection["password"] not in run.stdout and pg.connection["password"] not in json.dumps(run.results)
    info = run["info"]
    assert [b["backup_id"] for b in info["backups"]] == [taken["backup_id"]] and info["verification"]["ok"]
    manifest = json.load(open(os.path.join(repo["path"], "orders", "backups", taken["backup_id"], "manifest.json")))
    assert manifest["system_identifier"] == rows(pg, "SELECT system_identifier FROM pg_control_system()")[0]
    assert manifest["engine_version"].startswith("15.") and manifest["labels"] == {"reason": "test"}

    pg.psql("INSERT INTO items VALUES (5001, 'after the backup')")
    target = str(server_tmp_path / "restored")
    restore_args = dict(repo=repo, cluster="orders", engine="postgresql", backup_id=taken["backup_id"], data_dir=target)
    run = run_tasks([task("restore", "planned", **restore_args)], check=True)
    assert run["planned"]["changed"] and run["planned"]["plan"]["backup_id"] == taken["backup_id"] and not os.path.exists(target), run
    run = run_tasks([task("restore", "restored", **restore_args), task("restore", "again", **restore_args)])
    assert run["restored"]["changed"] and run["restored"]["restored"]["bytes"] == taken["size"], run
    assert run["again"]["failed"] and "is not empty" in run["again"]["msg"] and "force: true" in run["again"]["msg"]
    st = os.stat(target)
    assert oct(st.st_mode & 0o777) == "0o700" and st.st_uid == int(subprocess.check_output(["id", "-u", "postgres"]))
    auto_conf = open(os.path.join(target, "postgresql.auto.conf")).read()
    assert "archive_mode = 'off'" in auto_conf
    got, dummy = restored_rows(postgres_on_datadir, target, "SELECT count(*), max(id) FROM items")
    assert got == ["5000|5000"]


@pytest.mark.parametrize("variant", ["local", "s3-encrypted"])
def test_wal_archiving_and_point_in_time_restore(variant, tmp_path, postgres_factory, postgres_on_datadir, server_tmp_path, agent, request):
    pg = postgres_factory()
    if variant == "local":
        repo = local_repo(server_tmp_path)  # the archive_command runs as postgres: it must reach the repository
    else:
        s3 = request.getfixturevalue("s3_server")
        repo = s3.repo_spec(s3.make_bucket(), encryption_key="pitr passphrase")
        repo = dict((k, v) for k, v in repo.items() if v is not None)
    common = dict(repo=repo, cluster="shop", engine="postgresql", connection=pg.connection)
    log_args = dict(common, archive_timeout=5, wait_timeout=30, **agent)
    owner = {"owner": "postgres"} if variant == "local" else {}
    run = run_tasks([task("backup_repo", "repo", repo=repo, **owner)])
    assert run["repo"]["changed"], run
    run = run_tasks([task("log_backup", "planned", **log_args)], check=True)
    assert run["planned"]["changed"] and run["planned"]["plan"]["alter_system"]["archive_mode"] == "on", run
    assert pg.setting("archive_mode") == "off"

    run = run_tasks([task("log_backup", "enabled", **log_args), task("log_backup", "again", **log_args)])
    enabled = run["enabled"]
    assert enabled["changed"] and enabled["restart_required"] and "wal-push" in enabled["archive_command"], run
    assert run["again"]["changed"] is False, (run["again"]["settings_before"], run["again"]["settings_after"])
    config = json.load(open(enabled["config_path"]))
    assert oct(os.stat(enabled["config_path"]).st_mode & 0o777) == "0o600" and config["system_identifier"]
    pg.restart()
    assert pg.setting("archive_mode") == "on"

    pg.psql("CREATE TABLE orders(id int, note text); INSERT INTO orders SELECT g, 'before backup' FROM generate_series(1, 100) g")
    run = run_tasks([task("backup", "base", **common)])
    assert run["base"]["backup"]["status"] == "completed", run
    base_id = run["base"]["backup"]["backup_id"]

    pg.psql("BEGIN; INSERT INTO orders VALUES (101, 'moment 1'); INSERT INTO orders VALUES (102, 'moment 1'); COMMIT")
    pg.psql("CREATE TABLE later(id int); INSERT INTO later VALUES (1)")
    time.sleep(1.2)
    middle = now()
    time.sleep(1.2)
    pg.psql("BEGIN; INSERT INTO orders VALUES (201, 'moment 2'); INSERT INTO later VALUES (2); COMMIT")
    time.sleep(1.2)
    pg.psql("INSERT INTO orders VALUES (301, 'moment 3')")

    run = run_tasks([task("log_backup", "synced", state="synced", **log_args)])
    synced = run["synced"]
    assert synced.get("synced_segment") and len(synced["windows"]) == 1, run
    window = synced["windows"][0]
    assert window["base_backups"] == [base_id]
    assert window["start"] < iso(middle) < window["end"]

    target = str(server_tmp_path / "pitr")
    restore_args = dict(repo=repo, cluster="shop", engine="postgresql", restore_time=iso(middle), data_dir=target)
    run = run_tasks([task("restore", "planned", **restore_args)], check=True)
    plan = run["planned"]["plan"]
    assert plan["recovery"] == "point-in-time" and plan["wal"]["segments"] >= 1 and not os.path.exists(target), run
    run = run_tasks([task("restore", "pitr", **restore_args)])
    assert run["pitr"]["changed"] and run["pitr"]["restored"]["wal_segments"] >= 1, run
    got, dummy = restored_rows(postgres_on_datadir, target,
                               "SELECT (SELECT string_agg(id::text, ',' ORDER BY id) FROM orders WHERE id > 100), (SELECT count(*) FROM later)")
    assert got == ["101,102|1"]


def test_refusals_change_nothing(tmp_path, postgres_factory, server_tmp_path, agent, s3_server):
    pg = postgres_factory()
    repo = local_repo(tmp_path)
    common = dict(repo=repo, cluster="db", engine="postgresql", connection=pg.connection)
    run_tasks([task("backup_repo", "repo", repo=repo)])
    before_backup = now()
    time.sleep(1.1)
    run = run_tasks([task("backup", "base", **common)])
    assert run["base"]["backup"]["status"] == "completed", run
    backup_id = run["base"]["backup"]["backup_id"]
    target = str(server_tmp_path / "t")
    bad_pw = dict(pg.connection, password="wrong")
    unreachable = dict(pg.connection, port=free_port())
    other = postgres_factory()
    run = run_tasks([
        task("restore", "early", repo=repo, cluster="db", engine="postgresql", restore_time=iso(before_backup), data_dir=target),
        task("restore", "malformed", repo=repo, cluster="db", engine="postgresql", restore_time="25/11/2026 10:00", data_dir=target),
        task("restore", "future", repo=repo, cluster="db", engine="postgresql", restore_time="2999-01-01T00:00:00Z", data_dir=target),
        task("restore", "unknown", repo=repo, cluster="db", engine="postgresql", backup_id="db-pg-basebackup-20200101000000", data_dir=target),
        task("backup", "badpw", **with_connection(common, bad_pw)),
        task("backup", "unreachable", **with_connection(common, unreachable)),
        task("backup", "badmethod", method="xtrabackup", **common),
        task("backup", "otherdb", **with_connection(common, other.connection)),
        task("log_backup", "noagent", agent_command=str(server_tmp_path / "missing"), config_dir=agent["config_dir"], **common),
        task("restore", "redis_pitr", repo=repo, cluster="db", engine="redis", restore_time=iso(before_backup), data_dir=target),
        task("backup", "mongodb", repo=repo, cluster="db2", engine="mongodb", connection={}),
    ])
    early = run["early"]
    assert early["failed"] and "outside every recoverable window" in early["msg"] and early["error"]["kind"] == "recovery_window", early
    assert "none" in early["msg"]
    assert run["malformed"]["failed"] and "not an ISO-8601 time" in run["malformed"]["msg"]
    assert run["future"]["failed"] and "in the future" in run["future"]["msg"]
    assert run["unknown"]["failed"] and backup_id in run["unknown"]["msg"]
    assert run["badpw"]["failed"] and "password authentication failed" in run["badpw"]["msg"], run["badpw"]
    assert run["unreachable"]["failed"] and "cannot reach PostgreSQL" in run["unreachable"]["msg"]
    assert run["badmethod"]["failed"] and "pg-basebackup" in run["badmethod"]["msg"]
    assert run["otherdb"]["failed"] and "belongs to another database" in run["otherdb"]["msg"], run["otherdb"]
    assert run["noagent"]["failed"] and "not installed" in run["noagent"]["msg"] and "agent role" in run["noagent"]["msg"]
    assert pg.setting("archive_command") in ("", "(disabled)")
    assert run["redis_pitr"]["failed"] and "does not support pitr" in run["redis_pitr"]["msg"]
    assert run["mongodb"]["failed"] and "mongosh is not installed" in run["mongodb"]["msg"], run["mongodb"]  # no MongoDB tools on this machine
    assert not os.path.exists(target)
    backups = os.listdir(os.path.join(repo["path"], "db", "backups"))
    assert backups == [backup_id]

    minimal = postgres_factory(settings={"wal_level": "minimal", "max_wal_senders": 0, "archive_mode": "off"})
    run = run_tasks([task("backup", "minimal", repo=repo, cluster="db3", engine="postgresql", connection=minimal.connection)])
    assert run["minimal"]["failed"] and "wal_level=minimal" in run["minimal"]["msg"], run["minimal"]
    assert not os.path.exists(os.path.join(repo["path"], "db3"))
