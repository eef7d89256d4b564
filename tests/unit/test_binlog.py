# -*- coding: utf-8 -*-
# Copyright: contributors to the dataprotection.databases collection
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The binary log archive: reading binlog files, push rules, the name index, windows and the choice of a PITR base.

The binlog files read and pushed here are written by a throwaway MariaDB
server (module fixture ``binlogs``); transactions are stamped with chosen
times through ``SET timestamp``, so the commit times the reader must find are
known exactly.  The archive index, windows and PITR plans use made-up objects
whose names carry the times, in a local repository.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import datetime
import hashlib
import os
import re
import shutil
import subprocess
import time

import pytest

from ansible_collections.dataprotection.databases.plugins.module_utils import crypto
from ansible_collections.dataprotection.databases.plugins.module_utils.engines import binlog, logarchive, mysql
from ansible_collections.dataprotection.databases.plugins.module_utils.errors import (
    ConfigError,
    EngineError,
    IntegrityError,
    RecoveryWindowError,
)
from ansible_collections.dataprotection.databases.plugins.module_utils.repoconfig import Repository
from ansible_collections.dataprotection.databases.plugins.module_utils.repository import LocalRepo
from ansible_collections.dataprotection.databases.plugins.module_utils.timeutil import format_time, parse_time

# Commit times written into the binlogs with SET timestamp (UTC): 2023-11-14T22:13:20Z and later.
T1 = 1700000000
T2 = 1700000100
T3 = 1700000200


def t(text):
    return parse_time(text)


def epoch(seconds):
    """A binlog event time (whole seconds since the Unix epoch) as an aware datetime."""
    return logarchive.EPOCH + datetime.timedelta(seconds=int(seconds))


class _Binlogs(object):
    """Copies of real binlog files and the time windows in which the server wrote their events."""


@pytest.fixture(scope="module")
def binlogs(tmp_path_factory):
    """Needs a real MariaDB: mysql-bin.000002 closed by FLUSH BINARY LOGS, mysql-bin.000003 the active one."""
    from harness.dbservers import start_mariadb  # pylint: disable=import-outside-toplevel

    server = start_mariadb()
    try:
        result = _Binlogs()
        result.before_open = int(time.time())
        server.sql("FLUSH BINARY LOGS")  # a fresh mysql-bin.000002 without the harness' own statements
        result.after_open = int(time.time())
        server.sql("SET timestamp = %d; CREATE DATABASE shop; CREATE TABLE shop.t (id INT PRIMARY KEY, v VARCHAR(20)) ENGINE=InnoDB;"
                   "INSERT INTO shop.t VALUES (1, 'a');"
                   "SET timestamp = %d; INSERT INTO shop.t VALUES (2, 'b'), (3, 'c');" % (T1, T2))
        result.before_close = int(time.time())
        server.sql("FLUSH BINARY LOGS")
        result.after_close = int(time.time())
        server.sql("SET timestamp = %d; INSERT INTO shop.t VALUES (4, 'd');" % T3)
        result.data_dir = server.data_dir
        result.index = os.path.join(server.data_dir, "mysql-bin.index")
        result.index_paths = binlog.read_index(result.index)
        result.live_active = os.path.join(server.data_dir, "mysql-bin.000003")
        result.active_summary_live = binlog.read_events(result.live_active)
        directory = tmp_path_factory.mktemp("binlogs")
        for name in ("mysql-bin.000001", "mysql-bin.000002", "mysql-bin.000003"):
            shutil.copyfile(os.path.join(server.data_dir, name), str(directory / name))
        result.first_closed = str(directory / "mysql-bin.000001")
        result.closed = str(directory / "mysql-bin.000002")
        result.active = str(directory / "mysql-bin.000003")
        result.dump = subprocess.run([mysql.Connection({}).tool("binlog"), "--no-defaults", result.closed], stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, universal_newlines=True, env=dict(os.environ, TZ="UTC"), check=True).stdout
        yield result
    finally:
        server.cleanup()


@pytest.fixture(params=["plain", "encrypted"])
def repository(tmp_path, request):
    master = crypto.new_encryption_record("k")[1] if request.param == "encrypted" else None
    (tmp_path / "repo").mkdir()
    return Repository(LocalRepo({"path": str(tmp_path / "repo")}), {}, master)


# Reading binlog files ------------------------------------------------------


def test_index_lists_the_files_oldest_first(binlogs):
    """Needs a real MariaDB (its mysql-bin.index holds relative names)."""
    assert binlogs.index_paths == [os.path.join(binlogs.data_dir, "mysql-bin.%06d" % n) for n in (1, 2, 3)]


def test_closed_binlog(binlogs):
    """Needs a real MariaDB: a binlog closed by FLUSH BINARY LOGS."""
    summary = binlog.read_events(binlogs.closed)
    assert summary["closed"] is True and summary["complete"] is True
    assert summary["server_id"] == 1
    # The first commit is the first transaction's, stamped T1; the last event is the rotate event, written when it was closed.
    assert summary["first"] == epoch(T1)
    assert epoch(binlogs.before_close) <= summary["last"] <= epoch(binlogs.after_close)
    assert epoch(binlogs.before_open) <= summary["created"] <= epoch(binlogs.after_open)
    # Every event the server's own reader lists was read.
    headers = re.findall(r"^#\d{6} +\d+:\d\d:\d\d server id \d+ +end_log_pos \d+", binlogs.dump, re.M)
    assert summary["events"] == len(headers) > 5
    assert "Rotate to mysql-bin.000003" in binlogs.dump


def test_active_binlog(binlogs):
    """Needs a real MariaDB: the binlog the server is writing carries the in-use flag."""
    for summary in (binlogs.active_summary_live, binlog.read_events(binlogs.active)):
        assert summary["closed"] is False and summary["complete"] is True
        assert summary["first"] == epoch(T3)
        assert epoch(binlogs.before_close) <= summary["created"] <= epoch(binlogs.after_close)
        assert summary["last"] == summary["created"]  # T3 lies in the past: the newest stamp is the file's creation


def test_torn_last_event(binlogs, tmp_path):
    """Needs a real MariaDB binlog: a copy cut inside its last event."""
    full = binlog.read_events(binlogs.closed)
    data = open(binlogs.closed, "rb").read()
    torn = tmp_path / "mysql-bin.000002"
    torn.write_bytes(data[:-5])
    summary = binlog.read_events(str(torn))
    assert summary["complete"] is False
    assert summary["events"] == full["events"] - 1
    # Without the rotate event the newest stamp is one of the server's own events written after the file's creation
    # (the commits are stamped in the past), never later than the closed file's last event.
    assert full["created"] <= summary["last"] <= full["last"]
    assert summary["first"] == epoch(T1)
    torn.write_bytes(data[:len(binlog.MAGIC) + binlog.HEADER.size + 3])
    summary = binlog.read_events(str(torn))
    assert summary["complete"] is False and summary["events"] == 0 and summary["closed"] is None


@pytest.mark.parametrize("content", [b"\xfebin" + b"\0" * 10, b"", b"\xfebi"])
def test_too_short_is_not_a_binlog(tmp_path, content):
    path = tmp_path / "mysql-bin.000001"
    path.write_bytes(content)
    with pytest.raises(IntegrityError) as err:
        binlog.read_events(str(path))
    assert "too short to be a binary log" in str(err.value)


def test_other_files_are_not_binlogs(tmp_path):
    path = tmp_path / "mysql-bin.000001"
    path.write_bytes(b"-- MySQL dump 10.19\n" + b"x" * 200)
    with pytest.raises(IntegrityError) as err:
        binlog.read_events(str(path))
    assert "is not a binary log (no binlog magic number)" in str(err.value)


@pytest.mark.parametrize("name,expected", [("mysql-bin.000001", ("mysql-bin", 1)), ("binlog.1234567", ("binlog", 1234567)),
                                           ("host.example-bin.000042", ("host.example-bin", 42))])
def test_sequence(name, expected):
    assert binlog.sequence(name) == expected


@pytest.mark.parametrize("name", ["mysql-bin.index", "mysql-bin.00001", "mysql-bin.000001.tmp", "000001", "mysql bin.000001"])
def test_sequence_refuses_other_names(name):
    with pytest.raises(ConfigError):
        binlog.sequence(name)


# Pushing -------------------------------------------------------------------


def test_push_refuses_the_active_binlog(binlogs, repository):
    """Needs a real MariaDB binlog (the one it was writing)."""
    with pytest.raises(ConfigError) as err:
        binlog.push(repository, "db", binlogs.active)
    assert "mysql-bin.000003 is still in use by the server" in str(err.value)
    assert "FLUSH BINARY LOGS" in err.value.hint
    assert list(repository.repo.list("")) == []


def test_push_refuses_a_torn_copy(binlogs, repository, tmp_path):
    """Needs a real MariaDB binlog."""
    torn = tmp_path / "mysql-bin.000002"
    torn.write_bytes(open(binlogs.closed, "rb").read()[:-5])
    with pytest.raises(ConfigError):
        binlog.push(repository, "db", str(torn))
    assert list(repository.repo.list("")) == []


def test_push_stores_a_closed_binlog_once(binlogs, repository, tmp_path):
    """Needs a real MariaDB binlog: stored under a name with its hash and times, idempotent, fetched back exactly."""
    sha = hashlib.sha256(open(binlogs.closed, "rb").read()).hexdigest()
    summary = binlog.read_events(binlogs.closed)
    first = binlog.push(repository, "db", binlogs.closed, compression="zstd")
    assert first["stored"] is True and first["sha256"] == sha and first["name"] == "mysql-bin.000002"
    expected = "db/logs/binlog/mysql-bin.000002-%s-%d-%d.zst%s" % (
        sha, T1 * 1000000, int(logarchive.to_micros(summary["last"])), ".enc" if repository.encrypted else "")
    assert first["key"] == expected
    assert first["first"] == format_time(epoch(T1)) and first["last"] == format_time(summary["last"])
    assert first["size"] == os.path.getsize(binlogs.closed)

    again = binlog.push(repository, "db", binlogs.closed)
    assert again == {"name": "mysql-bin.000002", "key": first["key"], "sha256": sha, "stored": False}

    index = binlog.archived(repository.repo, "db")
    entry = index["mysql-bin"][2]
    assert entry["key"] == first["key"] and entry["sha256"] == sha
    assert entry["first"] == epoch(T1) and entry["last"] == summary["last"]
    out = tmp_path / "fetched"
    out.mkdir()
    assert binlog.fetch(repository, [entry], str(out)) == [str(out / "mysql-bin.000002")]
    assert (out / "mysql-bin.000002").read_bytes() == open(binlogs.closed, "rb").read()


def test_push_refuses_other_content_under_an_archived_name(binlogs, repository, tmp_path):
    """Needs real MariaDB binlogs: another closed binlog renamed to an archived name (a restarted numbering)."""
    stored = binlog.push(repository, "db", binlogs.closed)
    impostor = tmp_path / "mysql-bin.000002"
    shutil.copyfile(binlogs.first_closed, str(impostor))
    assert binlog.read_events(str(impostor))["closed"] is True
    with pytest.raises(IntegrityError) as err:
        binlog.push(repository, "db", str(impostor))
    assert "mysql-bin.000002 is already archived in cluster db with different content" in err.value.message
    assert "RESET MASTER" in err.value.hint and stored["key"] in err.value.hint
    assert [i.key for i in repository.repo.list("db/logs/")] == [stored["key"]]
    # Another cluster takes it.
    assert binlog.push(repository, "db2", str(impostor))["stored"] is True


def test_push_refuses_names_that_are_not_binlogs(tmp_path, repository):
    path = tmp_path / "mysql-bin.index"
    path.write_text("./mysql-bin.000001\n")
    with pytest.raises(ConfigError):
        binlog.push(repository, "db", str(path))
    with pytest.raises(ConfigError):
        binlog.push(repository, "db", str(tmp_path / "mysql-bin.000009"))


def test_history_check_refuses_a_restarted_numbering(binlogs, repository, tmp_path):
    """Needs real MariaDB binlogs: a server whose closed binlog has an archived name but other content is refused."""
    binlog.push(repository, "db", binlogs.closed)
    server_dir = tmp_path / "server"
    server_dir.mkdir()
    index = server_dir / "mysql-bin.index"
    index.write_text("./mysql-bin.000002\n./mysql-bin.000003\n")
    shutil.copyfile(binlogs.closed, str(server_dir / "mysql-bin.000002"))
    shutil.copyfile(binlogs.active, str(server_dir / "mysql-bin.000003"))
    assert mysql.check_history(repository, "db", str(index)) is None
    shutil.copyfile(binlogs.first_closed, str(server_dir / "mysql-bin.000002"))
    with pytest.raises(EngineError) as err:
        mysql.check_history(repository, "db", str(index))
    assert "mysql-bin.000002 differs from the one archived in cluster db" in err.value.message
    assert "RESET MASTER TO 3" in err.value.hint
    assert mysql.check_history(repository, "other", str(index)) is None


# The archive index, windows and PITR plans (made-up objects) ---------------


def micros(text):
    return logarchive.to_micros(t(text)) if text else "n"


def put(repo, number, first, last, base="mysql-bin", cluster="db"):
    name = "%s.%06d" % (base, number)
    repo.put_bytes("%s/logs/binlog/%s-%s-%s-%s.zst" % (cluster, name, "%064x" % number, micros(first), micros(last)), b"")
    return name


def manifest(backup_id, end, binlog_file, pos=4, engine="mysql"):
    return {"backup_id": backup_id, "cluster": "db", "engine": engine, "method": "xtrabackup", "type": "full",
            "start_time": end, "end_time": end, "objects": [],
            "positions": {"binlog_file": binlog_file, "binlog_pos": pos} if binlog_file else {}}


@pytest.fixture
def archive(tmp_path):
    repo = LocalRepo({"path": str(tmp_path)})
    put(repo, 1, "2026-11-01T00:00:05Z", "2026-11-01T00:10:00Z")
    put(repo, 2, None, "2026-11-01T00:20:00Z")  # no transaction, only the rotate
    put(repo, 3, "2026-11-01T00:20:05Z", "2026-11-01T00:45:00Z")
    put(repo, 4, "2026-11-01T00:45:01Z", "2026-11-01T01:00:00Z")
    # mysql-bin.000005 is missing: a gap
    put(repo, 6, "2026-11-01T02:00:00Z", "2026-11-01T03:00:00Z")
    put(repo, 7, "2026-11-01T03:00:01Z", "2026-11-01T04:00:00Z")
    put(repo, 8, "2026-11-01T04:00:01Z", "2026-11-01T09:00:00Z", base="other-bin")
    repo.put_bytes("db/logs/binlog/README", b"not an archived binlog")
    return repo


B1 = manifest("db-xtrabackup-20261101000000", "2026-11-01T00:00:00Z", "mysql-bin.000001", 256)
B2 = manifest("db-xtrabackup-20261101003000", "2026-11-01T00:30:00Z", "mysql-bin.000003", 1024)
B3 = manifest("db-xtrabackup-20261101023000", "2026-11-01T02:30:00Z", "mysql-bin.000006", 4096)
ORPHAN = manifest("db-xtrabackup-20261101013000", "2026-11-01T01:30:00Z", "mysql-bin.000005")  # its binlog is the gap
B4 = manifest("db-xtrabackup-20261101034500", "2026-11-01T03:45:00Z", "mysql-bin.000009")  # its binlogs are not archived yet
OTHERS = [manifest("db-pg-basebackup-20261101020000", "2026-11-01T02:00:00Z", "mysql-bin.000006", engine="postgresql"),
          manifest("db-xtrabackup-20261101020500", "2026-11-01T02:05:00Z", None)]  # log_bin was off


def test_archived_index(archive):
    index = binlog.archived(archive, "db")
    assert sorted(index) == ["mysql-bin", "other-bin"]
    assert sorted(index["mysql-bin"]) == [1, 2, 3, 4, 6, 7]
    entry = index["mysql-bin"][2]
    assert entry["name"] == "mysql-bin.000002" and entry["sha256"] == "%064x" % 2
    assert entry["first"] is None and entry["last"] == t("2026-11-01T00:20:00Z")
    assert index["mysql-bin"][1]["key"].startswith("db/logs/binlog/mysql-bin.000001-")


def test_chain_from_a_backup(archive):
    index = binlog.archived(archive, "db")
    chain, reach = binlog.chain_from(index, B2)
    assert [e["name"] for e in chain] == ["mysql-bin.000003", "mysql-bin.000004"] and reach == t("2026-11-01T01:00:00Z")
    chain, reach = binlog.chain_from(index, B1)
    assert [e["name"][-2:] for e in chain] == ["01", "02", "03", "04"] and reach == t("2026-11-01T01:00:00Z")
    assert binlog.chain_from(index, ORPHAN) == ([], None)
    assert binlog.chain_from(index, OTHERS[1]) == ([], None)
    assert binlog.chain_from(index, manifest("x", "2026-11-01T00:00:00Z", "not-a-binlog-name")) == ([], None)


def test_windows_split_at_a_gap(archive):
    windows = binlog.windows(archive, "db", [B1, B2, B3, ORPHAN, B4] + OTHERS)
    assert windows == [
        {"start": "2026-11-01T00:00:00Z", "end": "2026-11-01T01:00:00Z", "base_backups": [B2["backup_id"], B1["backup_id"]]},
        {"start": "2026-11-01T02:30:00Z", "end": "2026-11-01T04:00:00Z", "base_backups": [B3["backup_id"]]},
    ]
    assert mysql.windows(archive, "db", [B1]) == [dict(windows[0], base_backups=[B1["backup_id"]])]
    assert binlog.windows(archive, "db", []) == []


@pytest.mark.parametrize("target,base,files", [
    ("2026-11-01T00:40:00Z", B2, ["03"]),             # the newest base before the target; file 3 reaches it
    ("2026-11-01T00:50:00Z", B2, ["03", "04"]),
    ("2026-11-01T00:15:00Z", B1, ["01", "02"]),       # B2 ended after the target; stop at the first file whose last > target
    ("2026-11-01T00:10:00Z", B1, ["01", "02"]),       # last == target: the next file may hold events of that second too
    ("2026-11-01T00:30:00Z", B2, ["03"]),             # a target at a base's very end
    ("2026-11-01T03:30:00Z", B3, ["06", "07"]),
    ("2026-11-01T03:50:00Z", B3, ["06", "07"]),       # B4 is newer but has no archived chain: the older base is used
    ("2026-11-01T04:00:00Z", B3, ["06", "07"]),
])
def test_plan_pitr_chooses_the_newest_base_that_reaches_the_target(archive, target, base, files):
    chosen, needed = binlog.plan_pitr(archive, "db", [B1, B2, B3, ORPHAN, B4] + OTHERS, t(target))
    assert chosen is base
    assert [e["name"] for e in needed] == ["mysql-bin.0000%s" % n for n in files]
    assert mysql.plan_pitr(archive, "db", [B1, B2, B3, ORPHAN, B4] + OTHERS, t(target))[0] is base


@pytest.mark.parametrize("outside", ["2026-10-31T23:00:00Z", "2026-11-01T01:00:01Z", "2026-11-01T01:30:00Z",
                                     "2026-11-01T02:15:00Z", "2026-11-01T04:00:00.5Z", "2026-11-01T06:00:00Z"])
def test_plan_pitr_refuses_a_target_outside_every_window(archive, outside):
    with pytest.raises(RecoveryWindowError) as err:
        binlog.plan_pitr(archive, "db", [B1, B2, B3, ORPHAN, B4] + OTHERS, t(outside))
    message = str(err.value)
    assert "restore_time %s is outside every recoverable window of cluster db" % format_time(t(outside)) in message
    assert "2026-11-01T00:00:00Z .. 2026-11-01T01:00:00Z; 2026-11-01T02:30:00Z .. 2026-11-01T04:00:00Z" in err.value.hint
    assert [w["start"] for w in err.value.details["windows"]] == ["2026-11-01T00:00:00Z", "2026-11-01T02:30:00Z"]


def test_plan_pitr_without_archived_binlogs(tmp_path):
    with pytest.raises(RecoveryWindowError) as err:
        binlog.plan_pitr(LocalRepo({"path": str(tmp_path)}), "db", [B1], t("2026-11-01T00:05:00Z"))
    assert "none (no full backup is followed by archived binary logs" in err.value.hint
    assert err.value.details["windows"] == []
