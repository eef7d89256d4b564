# -*- coding: utf-8 -*-
# Copyright: contributors to the dataprotection.databases collection
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Smoke tests of the fixtures that start real database servers (tests/harness/dbservers.py)."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os
import pwd
import socket

from harness.dbservers import run_command


def _listening(port):
    try:
        socket.create_connection(("127.0.0.1", port), timeout=2).close()
    except OSError:
        return False
    return True


def _owner(path):
    return pwd.getpwuid(os.stat(path).st_uid).pw_name


# --------------------------------------------------------------------------- PostgreSQL


def test_postgres_answers_and_is_ready_for_physical_backups(postgres_server):
    pg = postgres_server
    assert pg.host == "127.0.0.1"
    assert pg.psql("SELECT 1") == "1"
    assert pg.setting("wal_level") == "replica"
    assert int(pg.setting("max_wal_senders")) >= 4
    assert pg.setting("password_encryption") == "scram-sha-256"
    assert pg.setting("server_version").startswith("15.")
    assert pg.connection == {"host": "127.0.0.1", "port": pg.port, "user": "postgres", "password": pg.password, "database": "postgres"}
    assert os.path.isfile(os.path.join(pg.data_dir, "PG_VERSION"))
    if os.geteuid() == 0:
        assert _owner(pg.data_dir) == "postgres"


def test_postgres_requires_the_password_over_tcp(postgres_server):
    denied = postgres_server.psql("SELECT 1", password="not-the-password", check=False)
    assert denied.returncode != 0
    assert "password authentication failed" in denied.stderr


def test_postgres_conf_restart_and_persistence(postgres_factory):
    pg = postgres_factory(settings={"work_mem": "3MB"})
    assert pg.setting("work_mem") == "3MB"
    pg.psql("CREATE DATABASE shop; ")
    pg.psql("CREATE TABLE t (id int); INSERT INTO t SELECT generate_series(1, 10);", database="shop")
    pg.conf({"work_mem": "5MB", "archive_mode": "on", "archive_command": "/bin/true"})
    pg.restart()
    assert pg.setting("work_mem") == "5MB"
    assert pg.setting("archive_mode") == "on"
    assert pg.psql("SELECT count(*) FROM t", database="shop") == "10"
    pg.stop()
    assert not pg.is_running()
    assert not _listening(pg.port)
    pg.start()
    assert pg.psql("SELECT sum(id) FROM t", database="shop") == "55"


def test_postgres_on_datadir_starts_a_base_backup(postgres_factory, postgres_on_datadir, tmp_path):
    source = postgres_factory()
    source.psql("CREATE TABLE items (name text); INSERT INTO items VALUES ('a'), ('b'), ('c');")
    target = tmp_path / "restored"
    # a backup tool running as root writes root-owned files; the fixture hands them to postgres
    run_command([os.path.join(source.bin_dir, "pg_basebackup"), "-D", str(target), "-X", "stream", "-c", "fast", "--no-sync"],
                env=source.env())
    copy = postgres_on_datadir(target, password=source.password)
    assert copy.port != source.port
    assert copy.data_dir == str(target)
    assert copy.psql("SELECT string_agg(name, ',' ORDER BY name) FROM items") == "a,b,c"
    assert copy.psql("SELECT pg_is_in_recovery()") == "f"
    source.psql("INSERT INTO items VALUES ('d')")
    assert copy.psql("SELECT count(*) FROM items") == "3"
    copy.stop()
    assert os.path.isdir(str(target)), "the data directory belongs to the test and stays"


# --------------------------------------------------------------------------- MariaDB


def test_mariadb_writes_a_row_based_binlog(mariadb_server):
    db = mariadb_server
    assert db.sql("SELECT 1") == "1"
    assert db.sql("SHOW GLOBAL VARIABLES LIKE 'log_bin'") == "log_bin\tON"
    assert db.variable("binlog_format") == "ROW"
    assert db.variable("server_id") == "1"
    assert db.variable("version").startswith("10.11")
    assert db.sql("SHOW BINARY LOGS").startswith("mysql-bin.")
    assert os.path.exists(db.socket)


def test_mariadb_requires_the_password(mariadb_server):
    wrong = mariadb_server.sql("SELECT 1", password="not-the-password", check=False)
    assert wrong.returncode != 0
    assert "Access denied" in wrong.stderr
    empty = mariadb_server.sql("SELECT 1", password="", check=False)
    assert empty.returncode != 0
    assert "Access denied" in empty.stderr
    anonymous = mariadb_server.sql("SELECT 1", user="nobody", check=False)
    assert anonymous.returncode != 0


def test_mariadb_backup_prepare_and_start_on_the_copy(mariadb_factory, mariadb_on_datadir, tmp_path):
    db = mariadb_factory()
    db.sql("CREATE DATABASE shop; CREATE TABLE shop.t (id INT PRIMARY KEY) ENGINE=InnoDB; INSERT INTO shop.t VALUES (1), (2), (3);")
    target = str(tmp_path / "backup")
    run_command(["mariadb-backup", "--backup", "--target-dir=%s" % target, "--host=127.0.0.1", "--port=%d" % db.port,
                 "--user=%s" % db.user], env=db.env())
    run_command(["mariadb-backup", "--prepare", "--target-dir=%s" % target])
    db.stop()
    assert not db.is_running()
    copy = mariadb_on_datadir(target, password=db.password)
    assert copy.sql("SELECT GROUP_CONCAT(id ORDER BY id) FROM t", database="shop") == "1,2,3"
    db.start()
    assert db.sql("SELECT COUNT(*) FROM shop.t") == "3"


# --------------------------------------------------------------------------- Redis


def test_redis_set_get_round_trip(redis_server):
    assert redis_server.cli("PING") == "PONG"
    assert redis_server.cli("SET", "harness:key", "some value") == "OK"
    assert redis_server.cli("GET", "harness:key") == "some value"


def test_redis_with_password_refuses_unauthenticated_clients(redis_factory):
    redis = redis_factory(password="s3cret-pw", appendonly=True)
    assert redis.cli("SET", "k", "v") == "OK"
    unauthenticated = redis.cli("GET", "k", password="", check=False)
    assert unauthenticated.returncode != 0
    assert "NOAUTH" in unauthenticated.stdout + unauthenticated.stderr
    wrong = redis.cli("GET", "k", password="wrong", check=False)
    assert wrong.returncode != 0
    assert redis.cli("CONFIG", "GET", "appendonly").splitlines() == ["appendonly", "yes"]
    assert redis.cli("SAVE") == "OK"
    assert os.path.isfile(redis.rdb_path)


def test_redis_factory_starts_independent_servers(redis_factory):
    first, second = redis_factory(), redis_factory(save="")
    assert first.port != second.port
    first.cli("SET", "only", "first")
    assert second.cli("EXISTS", "only") == "0"
    first.stop()
    assert not first.is_running()
    assert second.cli("PING") == "PONG"


# --------------------------------------------------------------------------- Prometheus


def test_prometheus_has_scraped_itself_and_snapshots(prometheus_server):
    prom = prometheus_server
    result = prom.query("up")
    assert result, "no sample for up"
    assert result[0]["metric"]["job"] == "prometheus"
    assert result[0]["value"][1] == "1"
    snapshot = prom.snapshot()
    assert os.path.isdir(snapshot)
    assert os.path.dirname(snapshot) == os.path.join(prom.storage_path, "snapshots")
    assert os.listdir(snapshot), "the snapshot of a scraped server holds data"


def test_prometheus_without_admin_api_refuses_snapshots(prometheus_factory):
    prom = prometheus_factory(admin_api=False)
    assert prom.query("up")
    status, payload = prom.api("/api/v1/admin/tsdb/snapshot", method="POST")
    assert status != 200
    assert payload["status"] == "error"
    assert "admin" in payload["error"].lower()
