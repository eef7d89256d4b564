# -*- coding: utf-8 -*-
# Copyright: contributors to the dataprotection.databases collection
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The WAL archive: push rules, the name index, windows and the choice of a PITR base.

Segments here are made-up files with a real long page header (the system
identifier at byte 24); the integration tests push real segments from a real
PostgreSQL through archive_command.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import hashlib
import os
import struct

import pytest

from ansible_collections.dataprotection.databases.plugins.module_utils import crypto
from ansible_collections.dataprotection.databases.plugins.module_utils.engines import pgwal, postgresql
from ansible_collections.dataprotection.databases.plugins.module_utils.errors import (
    ConfigError,
    EngineError,
    IntegrityError,
    MissingDependency,
    RecoveryWindowError,
)
from ansible_collections.dataprotection.databases.plugins.module_utils.repoconfig import Repository
from ansible_collections.dataprotection.databases.plugins.module_utils.repository import LocalRepo
from ansible_collections.dataprotection.databases.plugins.module_utils.timeutil import format_time, parse_time

SYSID = 7311111111111111111


def segment(path, sysid=SYSID, fill=b"\x01"):
    header = struct.pack("<HHIQI4x", 0xD110, 0x0002, 1, 0, 0) + struct.pack("<QII", sysid, 16 * 1024 * 1024, 8192)
    with open(path, "wb") as handle:
        handle.write(header + fill * (1024 * 1024 - len(header)))
    return path


@pytest.fixture(params=["plain", "encrypted"])
def repository(tmp_path, request):
    master = crypto.new_encryption_record("k")[1] if request.param == "encrypted" else None
    (tmp_path / "repo").mkdir()
    return Repository(LocalRepo({"path": str(tmp_path / "repo")}), {}, master)


def test_segment_names_from_lsn():
    assert postgresql.wal_segment_name(1, "0/2000028") == "000000010000000000000002"
    assert postgresql.wal_segment_name(3, "1/FF000000") == "0000000300000001000000FF"
    assert postgresql.parse_lsn("16/B374D848") == (0x16 << 32) | 0xB374D848


def test_push_is_durable_idempotent_and_refuses_a_different_file(tmp_path, repository):
    path = segment(str(tmp_path / "000000010000000000000007"))
    first = pgwal.push(repository, "db", path, system_identifier=SYSID)
    assert first["stored"] is True and first["sha256"] == hashlib.sha256(open(path, "rb").read()).hexdigest()
    assert first["key"].startswith("db/logs/wal/0000000100000000/000000010000000000000007-%s-n-n" % first["sha256"])
    again = pgwal.push(repository, "db", path, system_identifier=SYSID)
    assert again["stored"] is False and again["key"] == first["key"]
    segment(path, fill=b"\x02")
    with pytest.raises(IntegrityError) as err:
        pgwal.push(repository, "db", path, system_identifier=SYSID)
    assert "different content" in str(err.value)
    assert [i.key for i in repository.repo.list("db/logs/")] == [first["key"]]


def test_push_refuses_another_database_system(tmp_path, repository):
    path = segment(str(tmp_path / "000000010000000000000001"), sysid=SYSID + 1)
    with pytest.raises(EngineError) as err:
        pgwal.push(repository, "db", path, system_identifier=SYSID)
    assert "belongs to database system" in str(err.value)
    assert list(repository.repo.list("")) == []


@pytest.mark.parametrize("name", ["notawal", "00000001000000000000000", "000000010000000000000001.tmp"])
def test_push_refuses_names_that_are_not_wal(tmp_path, repository, name):
    path = str(tmp_path / name)
    open(path, "wb").close()
    with pytest.raises(ConfigError):
        pgwal.push(repository, "db", path)


def test_history_and_backup_files_are_archived_and_fetched(tmp_path, repository):
    history = tmp_path / "00000002.history"
    history.write_bytes(b"1\t0/3000000\tno recovery target specified\n")
    label = tmp_path / "000000010000000000000002.00000028.backup"
    label.write_bytes(b"START WAL LOCATION: 0/2000028\n")
    assert pgwal.push(repository, "db", str(history))["key"].startswith("db/logs/wal/history/00000002.history-")
    assert pgwal.push(repository, "db", str(label))["key"].startswith("db/logs/wal/other/000000010000000000000002.00000028.backup-")
    dest = str(tmp_path / "fetched")
    assert pgwal.fetch_one(repository, "db", "00000002.history", dest) is True
    assert open(dest, "rb").read() == history.read_bytes()
    assert pgwal.fetch_one(repository, "db", "00000003.history", dest + "2") is False


def test_fetch_segments_writes_exact_bytes(tmp_path, repository):
    path = segment(str(tmp_path / "000000010000000000000003"), fill=b"\x07")
    pushed = pgwal.push(repository, "db", path)
    index = pgwal.segments(repository.repo, "db")
    out = tmp_path / "pg_wal"
    out.mkdir()
    assert pgwal.fetch_segments(repository, [index[1][3]], str(out)) == 1
    assert hashlib.sha256((out / "000000010000000000000003").read_bytes()).hexdigest() == pushed["sha256"]
    assert oct(os.stat(str(out / "000000010000000000000003")).st_mode & 0o777) == "0o600"


def t(text):
    return parse_time(text)


def micros(text):
    return int((t(text) - t("1970-01-01T00:00:00Z")).total_seconds() * 1000000)


def put_segment(repo, segno, first=None, last=None, timeline=1):
    name = "%08X%08X%08X" % (timeline, segno // 256, segno % 256)
    key = "db/logs/wal/%s/%s-%s-%s-%s.zst" % (name[:16], name, "0" * 64, micros(first) if first else "n", micros(last) if last else "n")
    repo.put_bytes(key, b"")
    return name


def base(backup_id, end, stop_segno, timeline=1):
    stop = "%08X%08X%08X" % (timeline, stop_segno // 256, stop_segno % 256)
    return {"backup_id": backup_id, "cluster": "db", "engine": "postgresql", "method": "pg-basebackup", "type": "full",
            "start_time": end, "end_time": end, "objects": [], "positions": {"stop_wal": stop, "timeline": timeline}}


def test_windows_follow_contiguous_segments_and_split_at_gaps(tmp_path):
    repo = LocalRepo({"path": str(tmp_path)})
    put_segment(repo, 2, "2026-11-01T00:00:05Z", "2026-11-01T00:10:00Z")
    put_segment(repo, 3)  # no transaction: still part of the chain
    put_segment(repo, 4, "2026-11-01T00:20:00Z", "2026-11-01T01:00:00Z")
    # segment 5 is missing: a gap
    put_segment(repo, 6, "2026-11-01T02:00:00Z", "2026-11-01T03:00:00Z")
    put_segment(repo, 7, "2026-11-01T03:00:01Z", "2026-11-01T04:00:00Z")
    b1 = base("db-pg-basebackup-20261101000000", "2026-11-01T00:00:00Z", 2)
    b2 = base("db-pg-basebackup-20261101003000", "2026-11-01T00:30:00Z", 4)
    b3 = base("db-pg-basebackup-20261101023000", "2026-11-01T02:30:00Z", 6)
    orphan = base("db-pg-basebackup-20261101013000", "2026-11-01T01:30:00Z", 5)  # its stop segment is the gap
    windows = pgwal.windows(repo, "db", [b1, b2, b3, orphan])
    assert windows == [
        {"start": "2026-11-01T00:00:00Z", "end": "2026-11-01T01:00:00Z", "base_backups": [b2["backup_id"], b1["backup_id"]]},
        {"start": "2026-11-01T02:30:00Z", "end": "2026-11-01T04:00:00Z", "base_backups": [b3["backup_id"]]},
    ]

    manifest, needed = pgwal.plan_pitr(repo, "db", [b1, b2, b3, orphan], t("2026-11-01T00:40:00Z"))
    assert manifest is b2 and [e["name"][-2:] for e in needed] == ["04"]
    manifest, needed = pgwal.plan_pitr(repo, "db", [b1, b2, b3], t("2026-11-01T00:15:00Z"))
    assert manifest is b1 and [e["name"][-2:] for e in needed] == ["02", "03", "04"]
    manifest, needed = pgwal.plan_pitr(repo, "db", [b1, b2, b3], t("2026-11-01T03:30:00Z"))
    assert manifest is b3 and [e["name"][-2:] for e in needed] == ["06", "07"]

    for outside in ("2026-10-31T23:00:00Z", "2026-11-01T01:30:00Z", "2026-11-01T05:00:00Z"):
        with pytest.raises(RecoveryWindowError) as err:
            pgwal.plan_pitr(repo, "db", [b1, b2, b3, orphan], t(outside))
        message = str(err.value)
        assert format_time(t(outside)) in message
        assert "2026-11-01T00:00:00Z .. 2026-11-01T01:00:00Z" in message and "2026-11-01T02:30:00Z .. 2026-11-01T04:00:00Z" in message
        assert len(err.value.details["windows"]) == 2


def test_missing_tool_names_the_package():
    with pytest.raises(MissingDependency) as err:
        postgresql.tools.find_tool("pg_basebackup_that_does_not_exist", postgresql.BIN_DIRS, postgresql.PACKAGE_HINT)
    assert "not installed" in str(err.value) and "postgresql-client" in str(err.value)
