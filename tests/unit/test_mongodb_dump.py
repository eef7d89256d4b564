# -*- coding: utf-8 -*-
# Copyright: contributors to the dataprotection.databases collection
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""MongoDB's dump and datafile methods (engines/mongodb.py) and their restores, against fakes.

No MongoDB can run on the test machines.  mongosh is fixtures/mongodb/mongosh (replies shaped as MongoDB's
manual documents them); mongodump and mongorestore are fixtures/mongodb/mongotools, which writes and reads the
archive format of mongo-tools' common/archive/spec.md (magic, header, collection metadata, namespace segments,
EOF blocks with the CRC-64-ECMA of each namespace, the oplog under db "" collection "oplog"), built with pymongo's
``bson``, and behaves as MongoDB Database Tools' documentation describes --oplog, --oplogReplay, --oplogLimit,
--drop, --nsInclude and --config (a YAML file with ``password:``).  The three share one JSON state file, the
fake "server".  What these tests prove is the engine's logic: exact command lines, where the password goes, how
the consistent point is read from the stream, the refusals, one unlock per lock; not that real tools or a real
mongod behave the same.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import datetime
import io
import json
import os
import pwd
import shutil
import struct
import subprocess
import sys
import time
import types

import pytest

import bson  # pymongo's, a test requirement: builds real-format archives for the fake tools
from ansible_collections.dataprotection.databases.plugins.module_utils import backup as backup_module
from ansible_collections.dataprotection.databases.plugins.module_utils import engines
from ansible_collections.dataprotection.databases.plugins.module_utils.backup import BackupRequest, run_backup
from ansible_collections.dataprotection.databases.plugins.module_utils.engines import mongodb
from ansible_collections.dataprotection.databases.plugins.module_utils.errors import ConfigError, EngineError, MissingDependency, ToolError
from ansible_collections.dataprotection.databases.plugins.module_utils.repository import LocalRepo
from ansible_collections.dataprotection.databases.plugins.module_utils.restore import RestoreRequest, run_restore

FIXTURES = os.path.join(os.path.dirname(os.path.abspath(__file__)), "fixtures", "mongodb")
PASSWORD = "s3cret-Pa55 \"word\""
ME = pwd.getpwuid(os.getuid()).pw_name
T0 = 1717243200


def entry(i, op, ns, o, o2=None, t=T0):
    record = {"ts": {"t": t, "i": i}, "wall": (t * 1000) + i, "op": op, "ns": ns, "o": o}
    if o2 is not None:
        record["o2"] = o2
    return record


def install(source, target):
    with open(source) as handle:
        body = handle.read().split("\n", 1)[1]
    target.write_text("#!%s\n%s" % (sys.executable, body))
    target.chmod(0o755)


class Server(object):
    """The fake server: its state file, switches and the run log of mongosh, mongodump and mongorestore."""

    def __init__(self, tmp_path, monkeypatch):
        self.dir = tmp_path
        self.monkeypatch = monkeypatch
        self.bin_dir = tmp_path / "bin"
        self.bin_dir.mkdir()
        install(os.path.join(FIXTURES, "mongosh"), self.bin_dir / "mongosh")
        install(os.path.join(FIXTURES, "mongotools"), self.bin_dir / "mongodump")
        install(os.path.join(FIXTURES, "mongotools"), self.bin_dir / "mongorestore")
        self.log_path = tmp_path / "tools.log"
        self.log_path.write_text("")
        self.state_path = tmp_path / "state.json"
        self.db_path = tmp_path / "dbpath"
        self.db_path.mkdir()
        self.state = {
            "lock_count": 0, "version": "7.0.14",
            "databases": {"shop": {"orders": [{"_id": 1, "item": "apple", "qty": 5}, {"_id": 2, "item": "pear", "qty": 1}],
                                   "customers": [{"_id": "c1", "name": "Ada"}]}},
            "oplog": [entry(7, "i", "shop.customers", {"_id": "c1", "name": "Ada"})],
        }
        for name, value in (("FAKE_MONGOSH_LOG", self.log_path), ("FAKE_MONGOSH_STATE", self.state_path),
                            ("FAKE_MONGOSH_PASSWORD", PASSWORD), ("FAKE_MONGOSH_DBPATH", self.db_path)):
            monkeypatch.setenv(name, str(value))
        # Restores go through the primary: the fake member is one unless a test says otherwise.
        self.mode("primary")

    def mode(self, *switches):
        self.monkeypatch.setenv("FAKE_MONGOSH_MODE", ",".join(switches))

    @property
    def state(self):
        return json.loads(self.state_path.read_text())

    @state.setter
    def state(self, value):
        self.state_path.write_text(json.dumps(value))

    def update(self, **changes):
        state = self.state
        state.update(changes)
        self.state = state

    def runs(self, tool=None):
        records = [json.loads(line) for line in self.log_path.read_text().splitlines() if line]
        return [r for r in records if tool is None or r.get("tool") == tool or (tool == "mongosh" and r.get("script"))]

    def connection(self, **extra):
        params = {"host": "db1.example.net", "user": "backup", "password": PASSWORD, "bin_dir": str(self.bin_dir)}
        params.update(extra)
        return params


@pytest.fixture
def server(tmp_path, monkeypatch):
    monkeypatch.setitem(engines.REGISTRY, "mongodb", mongodb)
    return Server(tmp_path, monkeypatch)


def dump_request(server, method="dump", **extra):
    options = extra.pop("options", {})
    return BackupRequest("mongodb", method, "orders", connection=server.connection(**extra), options=options)


def restore_request(server, backup_id, force=False, target=None, restore_time=None, **options):
    return RestoreRequest("mongodb", "orders", target, backup_id=backup_id, restore_time=restore_time, force=force, options=options,
                          connection=server.connection())


def stored(spec):
    """Every file under the cluster's backups (a failed backup leaves none)."""
    top = os.path.join(spec["path"], "orders", "backups")
    return sorted(os.path.join(d, n) for d, dummy, names in os.walk(top) for n in names)


def empty_target(server):
    state = server.state
    state["databases"] = {}
    server.state = state


# The archive scanner ------------------------------------------------------------


def archive(namespaces, oplog, header=None):
    """An archive as the specification lays it out, built with bson independently of the engine."""
    header = header or {"concurrent_collections": 4, "version": "0.1", "server_version": "7.0.14", "tool_version": "100.9.4"}
    parts = [struct.pack("<I", 0x8199E26D), bson.encode(header)]
    for db, coll, docs in namespaces:
        parts.append(bson.encode({"db": db, "collection": coll, "metadata": "{}", "size": 0}))
    parts.append(b"\xff\xff\xff\xff")
    for db, coll, docs in namespaces + [("", "oplog", oplog)]:
        parts.append(bson.encode({"db": db, "collection": coll, "EOF": False, "CRC": 0}))
        parts += [bson.encode(d) for d in docs]
        parts.append(b"\xff\xff\xff\xff")
        parts.append(bson.encode({"db": db, "collection": coll, "EOF": True, "CRC": 0}) + b"\xff\xff\xff\xff")
    return b"".join(parts)


@pytest.mark.parametrize("chunk", [1, 7, 4096])
def test_scanner_keeps_the_last_oplog_timestamp_whatever_the_chunking(chunk):
    oplog = [{"ts": bson.Timestamp(T0, 7), "op": "n", "ns": "", "o": {"msg": "x"}},
             {"op": "i", "ns": "shop.orders", "o": {"_id": 3, "blob": bson.Binary(b"\x00" * 300)}, "ts": bson.Timestamp(T0 + 2, 1)},
             {"ts": bson.Timestamp(T0 + 1, 9), "op": "d", "ns": "shop.orders", "o": {"_id": 1}, "wall": datetime.datetime(2024, 6, 1)}]
    data = archive([("shop", "orders", [{"_id": i, "x": [1.5, None, {"y": "z"}]} for i in range(50)])], oplog)
    scanner = mongodb.ArchiveScanner(io.BytesIO(data))
    read = b""
    while True:
        piece = scanner.read(chunk)
        if not piece:
            break
        read += piece
    assert read == data and scanner.complete() is None
    summary = scanner.summary()
    assert summary["oplog_last"] == {"t": T0 + 2, "i": 1} and summary["oplog_first"] == {"t": T0, "i": 7}
    assert summary["documents"] == 50 and summary["oplog_entries"] == 3 and summary["collections"] == 1
    assert summary["server_version"] == "7.0.14" and summary["tool_version"] == "100.9.4" and summary["format_version"] == "0.1"


def test_scanner_refuses_what_is_not_an_archive_and_sees_a_cut_one():
    with pytest.raises(EngineError, match="archive magic number"):
        mongodb.ArchiveScanner(io.BytesIO(b"{\"not\": 1}")).read(100)
    data = archive([("shop", "orders", [{"_id": 1}])], [{"ts": bson.Timestamp(T0, 1)}])
    scanner = mongodb.ArchiveScanner(io.BytesIO(data[:-30]))
    scanner.read(len(data))
    assert "ends inside" in scanner.complete() or "without their EOF" in scanner.complete()


# Dump backups ----------------------------------------------------------------


def test_plan_of_a_dump_changes_nothing(server):
    plan = mongodb.plan_backup(dump_request(server))
    assert plan["identity"] == "replset:rs0" and plan["tool_version"] == "100.9.4" and plan["server_version"] == "7.0.14"
    assert plan["tool"] == str(server.bin_dir / "mongodump") and plan["replica_set"] == "rs0"
    assert [r.get("script") for r in server.runs("mongosh")] == ["plan"]
    assert not server.runs("mongodump")


def test_dump_streams_the_archive_and_records_the_oplog_point(server, spec):
    # Two writes land while the dump runs: the recorded point is the last of them, read from the archive's oplog.
    server.update(writes_during_dump=[{"op": "i", "ns": "shop.orders", "o": {"_id": 3, "item": "fig", "qty": 9}},
                                      {"op": "u", "ns": "shop.orders", "o": {"$set": {"qty": 4}}, "o2": {"_id": 1}}])
    result = run_backup(spec, dump_request(server))
    manifest = result["manifest"]
    assert manifest["positions"] == {"oplog_ts": {"t": T0, "i": 9}} and result["backup"]["positions"]["oplog_ts"] == {"t": T0, "i": 9}
    assert manifest["identity"] == "replset:rs0" and manifest["engine_version"] == "7.0.14" and manifest["tool_version"] == "100.9.4"
    assert manifest["archive"]["documents"] == 3 and manifest["archive"]["oplog_entries"] == 3 and manifest["archive"]["collections"] == 2
    assert [o["name"] for o in manifest["objects"]] == ["dump.archive.zst"]
    dump = server.runs("mongodump")[0]
    config = [a for a in dump["argv"] if a.startswith("--config=")][0][len("--config="):]
    assert dump["argv"] == ["--uri=mongodb://backup@db1.example.net:27017/?directConnection=true&serverSelectionTimeoutMS=15000"
                            "&appName=dataprotection.databases&authSource=admin", "--config=%s" % config, "--oplog", "--archive"]
    assert dump["config"] == {"mode": "600", "keys": ["password"]} and not os.path.exists(config)
    assert not any(PASSWORD in json.dumps(r) for r in server.runs())
    assert PASSWORD not in json.dumps(manifest)


def test_a_restore_by_id_brings_back_the_documents_with_the_oplog_replayed(server, spec):
    server.update(writes_during_dump=[{"op": "i", "ns": "shop.orders", "o": {"_id": 3, "item": "fig", "qty": 9}}])
    backup_id = run_backup(spec, dump_request(server))["backup"]["backup_id"]
    expected = server.state["databases"]
    assert {d["_id"] for d in expected["shop"]["orders"]} == {1, 2, 3}
    empty_target(server)
    plan = run_restore(spec, restore_request(server, backup_id), check_mode=True)["plan"]
    assert plan["oplog_replay"] is True and plan["drop"] is False and plan["existing"] == [] and plan["consistent_at"] == {"t": T0, "i": 8}
    assert server.state["databases"] == {} and not server.runs("mongorestore")
    done = run_restore(spec, restore_request(server, backup_id))
    assert done["restored"]["documents"] == {"restored": 3, "failed": 0}
    # The dump read orders before _id 3 was inserted; the replay of the dump's oplog brought it.
    assert server.state["databases"] == expected
    restore = server.runs("mongorestore")[0]
    config = [a for a in restore["argv"] if a.startswith("--config=")][0][len("--config="):]
    assert restore["argv"][2:] == ["--archive", "--oplogReplay"] and restore["argv"][1] == "--config=%s" % config
    assert restore["config"]["mode"] == "600" and not os.path.exists(config)


def test_backups_one_after_the_other_within_a_second_keep_both(server, spec, monkeypatch):
    """The second backup of a second gets the next second's id; the first one's objects stay as they were."""
    now = [datetime.datetime(2026, 6, 1, 10, 0, 0, 500000, tzinfo=datetime.timezone.utc)]
    # The backup module's clock stands still until a backup waits for the next second.
    monkeypatch.setattr(backup_module, "utcnow", lambda: now[0])
    monkeypatch.setattr(backup_module, "time", types.SimpleNamespace(
        monotonic=time.monotonic, sleep=lambda seconds: now.append(now.pop() + datetime.timedelta(seconds=seconds))))
    first = run_backup(spec, dump_request(server))
    before = {path: open(path, "rb").read() for path in stored(spec)}
    state = server.state
    state["databases"]["shop"]["orders"].append({"_id": 3, "item": "fig", "qty": 9})
    server.state = state
    second = run_backup(spec, dump_request(server))
    assert (first["backup"]["backup_id"], second["backup"]["backup_id"]) == ("orders-dump-20260601100000", "orders-dump-20260601100001")
    assert {path: open(path, "rb").read() for path in before} == before
    for backup_id, ids in ((first["backup"]["backup_id"], {1, 2}), (second["backup"]["backup_id"], {1, 2, 3})):
        empty_target(server)
        run_restore(spec, restore_request(server, backup_id))
        assert {d["_id"] for d in server.state["databases"]["shop"]["orders"]} == ids


def test_restore_into_a_server_with_user_data_needs_force_then_drops(server, spec):
    backup_id = run_backup(spec, dump_request(server))["backup"]["backup_id"]
    state = server.state
    state["databases"]["shop"]["orders"].append({"_id": 99, "item": "stale"})
    server.state = state
    with pytest.raises(ConfigError, match="already holds user data .* shop.customers, shop.orders") as caught:
        run_restore(spec, restore_request(server, backup_id))
    assert "force: true" in caught.value.hint and not server.runs("mongorestore")
    done = run_restore(spec, restore_request(server, backup_id, force=True))
    assert any("users and roles" in w for w in done["plan"]["warnings"]) and done["plan"]["existing"] == ["shop.customers", "shop.orders"]
    assert server.runs("mongorestore")[0]["argv"][2:] == ["--archive", "--oplogReplay", "--drop"]
    assert {d["_id"] for d in server.state["databases"]["shop"]["orders"]} == {1, 2}


def test_restore_into_a_secondary_is_refused_before_anything_runs(server, spec):
    backup_id = run_backup(spec, dump_request(server))["backup"]["backup_id"]
    empty_target(server)
    server.mode()
    with pytest.raises(EngineError, match="is not the primary of replica set rs0") as caught:
        run_restore(spec, restore_request(server, backup_id))
    assert "db0.example.net:27017" in caught.value.hint and not server.runs("mongorestore")


def test_restore_of_some_collections_uses_ns_include(server, spec):
    backup_id = run_backup(spec, dump_request(server))["backup"]["backup_id"]
    state = server.state
    del state["databases"]["shop"]["orders"]
    server.state = state
    run_restore(spec, restore_request(server, backup_id, collections=["shop.orders"]))
    assert server.runs("mongorestore")[0]["argv"][2:] == ["--archive", "--nsInclude=shop.orders"]
    assert len(server.state["databases"]["shop"]["orders"]) == 2
    with pytest.raises(ConfigError, match="already holds collections .*shop.customers"):
        run_restore(spec, restore_request(server, backup_id, collections=["shop.*"]))
    with pytest.raises(ConfigError, match="db.collection patterns"):
        run_restore(spec, restore_request(server, backup_id, collections=["orders"]))


def test_a_restore_with_failed_documents_fails(server, spec, monkeypatch):
    backup_id = run_backup(spec, dump_request(server))["backup"]["backup_id"]
    # The check found nothing (another client writes in between): mongorestore then counts duplicates as failed.
    replies = {"hello": {"ok": 1, "setName": "rs0", "isWritablePrimary": True}, "listDatabases": {"ok": 1, "databases": []}}
    monkeypatch.setattr(mongodb.Connection, "run", lambda self, name, timeout=0: replies)
    with pytest.raises(EngineError, match="could not restore 3 documents"):
        run_restore(spec, restore_request(server, backup_id))


def test_dump_refuses_a_standalone_sharded_and_collections(server, spec):
    server.mode("standalone")
    with pytest.raises(EngineError, match="standalone mongod: mongodump --oplog") as caught:
        run_backup(spec, dump_request(server))
    assert "single-member replica set" in caught.value.hint
    for switch in ("mongos", "shardsvr"):
        server.mode(switch)
        with pytest.raises(EngineError, match="sharded clusters are not supported yet"):
            run_backup(spec, dump_request(server))
    server.mode()
    with pytest.raises(ConfigError, match="collections is not taken by a backup"):
        run_backup(spec, dump_request(server, options={"collections": ["shop.orders"]}))
    assert not server.runs("mongodump") and stored(spec) == []


def test_wrong_password_is_refused_before_anything_is_stored(server, spec):
    with pytest.raises(EngineError, match="refused user backup: wrong user name or password"):
        run_backup(spec, dump_request(server, password="wrong"))
    assert not server.runs("mongodump")


def test_the_tools_own_auth_failure_is_explained(server, spec, monkeypatch):
    # mongosh accepted the password (plan), mongodump is refused: the message is the same, nothing is stored.
    planned = {"tool": str(server.bin_dir / "mongodump"), "engine_version": "7.0.14", "replica_set": "rs0", "member": "m", "tool_version": "100.9.4"}
    monkeypatch.setattr(mongodb, "plan_dump", lambda request: planned)
    with pytest.raises(EngineError, match="refused user backup: wrong user name or password"):
        run_backup(spec, dump_request(server, password="wrong"))
    assert stored(spec) == []


def test_a_dump_that_fails_midway_leaves_nothing(server, spec):
    server.mode("dump_fails_midway")
    with pytest.raises(EngineError, match="i/o timeout"):
        run_backup(spec, dump_request(server))
    assert stored(spec) == []
    config = [a for a in server.runs("mongodump")[0]["argv"] if a.startswith("--config=")][0][len("--config="):]
    assert not os.path.exists(config)


def test_missing_and_old_tools_are_named(server, monkeypatch):
    os.unlink(str(server.bin_dir / "mongodump"))
    monkeypatch.setenv("PATH", str(server.dir / "nothing"))
    with pytest.raises(MissingDependency, match="mongodump is not installed") as caught:
        mongodb.plan_backup(dump_request(server))
    assert "mongodb-database-tools" in caught.value.hint
    install(os.path.join(FIXTURES, "mongotools"), server.bin_dir / "mongodump")
    monkeypatch.setenv("FAKE_MONGOTOOLS_VERSION", "100.2.1")
    with pytest.raises(EngineError, match="version 100.2.1; .* 100.3.0 or newer"):
        mongodb.plan_backup(dump_request(server))


def test_user_without_password_is_refused(server, spec, monkeypatch):
    planned = {"tool": str(server.bin_dir / "mongodump"), "engine_version": "7.0.14", "replica_set": "rs0", "member": "m", "tool_version": "100.9.4"}
    monkeypatch.setattr(mongodb, "plan_dump", lambda request: planned)
    with pytest.raises(ConfigError, match="without connection.password"):
        run_backup(spec, dump_request(server, password=None))
    assert not server.runs("mongodump")


def test_tools_connection_strings_carry_no_database_path():
    uri = mongodb.tools_uri(mongodb.Connection({"socket": "/run/mongodb/mongod.sock", "user": "b@ck up", "database": "users", "tls": True}))
    assert uri == ("mongodb://b%40ck%20up@%2Frun%2Fmongodb%2Fmongod.sock/?directConnection=true&serverSelectionTimeoutMS=15000"
                   "&appName=dataprotection.databases&tls=true&authSource=users")
    assert mongodb.tools_uri(mongodb.Connection({"host": "::1", "port": 27018})).startswith("mongodb://[::1]:27018/?directConnection=true")


def test_ns_include_patterns_match_as_mongorestore_reads_them():
    assert mongodb.ns_matches("shop.*", "shop.orders") and not mongodb.ns_matches("shop.*", "shopx.orders")
    assert mongodb.ns_matches("sh\\*p.orders", "sh*p.orders") and not mongodb.ns_matches("sh\\*p.orders", "shop.orders")


# Datafile backups --------------------------------------------------------------


def make_dbpath(path):
    (path / "WiredTiger").write_text("WiredTiger\nWiredTiger 11.2.0\n")
    (path / "collection-0-1.wt").write_bytes(b"\x01" * 5000)
    (path / "mongod.lock").write_text("%d\n" % os.getpid())
    (path / "journal").mkdir()
    (path / "journal" / "WiredTigerLog.0000000001").write_bytes(b"\x02" * 100)
    (path / "diagnostic.data").mkdir()
    (path / "diagnostic.data" / "metrics.2024").write_text("ftdc")


def test_datafile_copies_dbpath_under_one_fsync_lock(server, spec, monkeypatch):
    make_dbpath(server.db_path)
    seen = {}
    real_store = backup_module.BackupContext.store

    def store(self, base_name, source, compression=None):
        seen["lock_count"] = server.state["lock_count"]
        return real_store(self, base_name, source, compression)

    monkeypatch.setattr(backup_module.BackupContext, "store", store)
    result = run_backup(spec, dump_request(server, method="datafile"))
    manifest = result["manifest"]
    assert seen["lock_count"] == 1 and server.state["lock_count"] == 0
    assert [r["script"] for r in server.runs("mongosh")] == ["plan", "plan", "probe", "lock", "unlock"]
    assert manifest["positions"]["oplog_ts"] == {"t": T0, "i": 7} and manifest["data_dir"] == str(server.db_path)
    assert manifest["fsync_lock"] == {"lock_count": 1, "other_locks": 0, "lock_count_after": 0}
    assert [o["name"] for o in manifest["objects"]] == ["datafiles.tar.zst"]


def test_datafile_unlocks_once_when_the_copy_fails(server, spec, monkeypatch):
    make_dbpath(server.db_path)
    # A tar that writes part of an archive, then fails as GNU tar does on a read error.
    broken = server.dir / "tar"
    broken.write_text("#!/bin/sh\nprintf partial\necho 'tar: ./collection-0-1.wt: Read error at byte 0: Input/output error' >&2\nexit 2\n")
    broken.chmod(0o755)
    find_tool = mongodb.tools.find_tool
    monkeypatch.setattr(mongodb.tools, "find_tool", lambda name, *a, **k: str(broken) if name == "tar" else find_tool(name, *a, **k))
    with pytest.raises(ToolError, match="Read error at byte 0"):
        run_backup(spec, dump_request(server, method="datafile"))
    assert server.state["lock_count"] == 0
    assert [r["script"] for r in server.runs("mongosh")].count("unlock") == 1
    assert stored(spec) == []


def test_datafile_must_run_on_the_mongod_host(server, spec):
    with pytest.raises(EngineError, match="is not on this host") as caught:
        run_backup(spec, dump_request(server, method="datafile"))
    assert "run it on the mongod host" in caught.value.hint and server.state["lock_count"] == 0


def test_datafile_restore_into_data_dir(server, spec, tmp_path):
    make_dbpath(server.db_path)
    backup_id = run_backup(spec, dump_request(server, method="datafile"))["backup"]["backup_id"]
    target = tmp_path / "restored"
    done = run_restore(spec, restore_request(server, backup_id, target=str(target), owner=ME))["restored"]
    assert done["data_dir"] == str(target) and done["owner"] == ME
    assert (target / "collection-0-1.wt").read_bytes() == b"\x01" * 5000 and (target / "journal" / "WiredTigerLog.0000000001").exists()
    assert not (target / "mongod.lock").exists() and not (target / "diagnostic.data").exists()
    with pytest.raises(ConfigError, match="is not empty"):
        run_restore(spec, restore_request(server, backup_id, target=str(target), owner=ME))
    # A running mongod's lock file is refused even with force (a process named mongod whose pid the lock file holds).
    sleeper = str(tmp_path / "mongod")
    shutil.copy(shutil.which("sleep"), sleeper)
    proc = subprocess.Popen([sleeper, "60"])
    try:
        (target / "mongod.lock").write_text("%d\n" % proc.pid)
        with pytest.raises(ConfigError, match="is in use: mongod \\(pid %d\\) runs on it" % proc.pid):
            run_restore(spec, restore_request(server, backup_id, target=str(target), owner=ME, force=True))
    finally:
        proc.kill()
        proc.wait()
    assert (target / "collection-0-1.wt").exists()
    # Once it is gone, force replaces the directory's contents.
    (target / "stale").write_text("x")
    run_restore(spec, restore_request(server, backup_id, target=str(target), owner=ME, force=True))
    assert not (target / "stale").exists() and not (target / "mongod.lock").exists() and (target / "WiredTiger").exists()


# Point-in-time restore: a dump, then the archived oplog replayed up to restore_time ------------------------------


def oplog_raw(record):
    doc = {"ts": bson.Timestamp(record["ts"]["t"], record["ts"]["i"]), "op": record["op"], "ns": record["ns"], "o": record["o"]}
    if "o2" in record:
        doc["o2"] = record["o2"]
    doc["wall"] = datetime.datetime.fromtimestamp(record["wall"] / 1000.0, datetime.timezone.utc)
    return bson.encode(doc)


def test_point_in_time_restore_replays_the_oplog_up_to_the_time(server, spec, monkeypatch):
    from ansible_collections.dataprotection.databases.plugins.module_utils.engines import oplog
    from ansible_collections.dataprotection.databases.plugins.module_utils.repoconfig import open_repository

    now = int(datetime.datetime.now(datetime.timezone.utc).timestamp())
    base_entry = entry(1, "i", "shop.customers", {"_id": "c1", "name": "Ada"}, t=now - 70)
    base_entry["wall"] = (now - 70) * 1000
    server.update(oplog=[base_entry])
    # The base ended a minute ago (its end_time is before the writes below).
    with monkeypatch.context() as patch:
        patch.setattr(mongodb, "utcnow", lambda: datetime.datetime.fromtimestamp(now - 60, datetime.timezone.utc))
        backup_id = run_backup(spec, dump_request(server))["backup"]["backup_id"]
    # Two writes after the backup, 40 and 20 seconds ago, archived as the oplog shipper would.
    early = entry(1, "i", "shop.orders", {"_id": 10, "item": "early"}, t=now - 40)
    early["wall"] = (now - 40) * 1000
    late = entry(1, "u", "shop.orders", {"$set": {"item": "late"}}, o2={"_id": 10}, t=now - 20)
    late["wall"] = (now - 20) * 1000
    raw = b"".join(oplog_raw(e) for e in (base_entry, early, late))
    with open_repository(spec) as repository:
        docs = list(oplog.read_entries(io.BytesIO(raw)))
        oplog.write_slices(repository, "orders", docs, oplog.chain_name(docs[0][1]), 0)
    empty_target(server)
    target_time = datetime.datetime.fromtimestamp(now - 30, datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    request = restore_request(server, None, restore_time=target_time)
    plan = run_restore(spec, request, check_mode=True)["plan"]
    assert plan["backup_id"] == backup_id and plan["replay"]["entries"] == 1 and server.state["databases"] == {}
    done = run_restore(spec, restore_request(server, None, restore_time=target_time))["restored"]
    assert done["replay"]["count"] == 1 and done["replay"]["last"] == {"t": now - 40, "i": 1}
    orders = dict((d["_id"], d) for d in server.state["databases"]["shop"]["orders"])
    assert orders[10] == {"_id": 10, "item": "early"} and set(orders) == {1, 2, 10}
    replay = server.runs("mongorestore")[1]
    directory = [a for a in replay["argv"] if a.startswith("--dir=")][0][len("--dir="):]
    assert replay["argv"][2:] == ["--oplogReplay", "--oplogLimit=%d:2" % (now - 40), "--dir=%s" % directory]
    assert not os.path.exists(directory)


def test_windows_start_from_dump_bases_only(server, spec):
    manifests = [{"method": "datafile", "engine": "mongodb", "positions": {"oplog_ts": {"t": 1, "i": 1}}}]
    assert mongodb.windows(LocalRepo({"path": spec["path"]}), "orders", manifests) == []


def test_the_backup_and_restore_modules_through_ansible_playbook(server, spec):
    """The modules end to end against the fakes: check mode changes nothing, a wrong password fails clearly and stores
    nothing, a dump restores by id through the server (no data_dir), and the password appears in no result."""
    from harness.playbook import run_tasks  # pylint: disable=import-outside-toplevel

    args = dict(repo=spec, cluster="orders", engine="mongodb", method="dump", connection=server.connection())
    results = run_tasks([
        {"name": "Plan", "dataprotection.databases.backup": args, "register": "planned", "check_mode": True},
        {"name": "Refused", "dataprotection.databases.backup": dict(args, connection=server.connection(password="Not-It-42")), "register": "refused"},
        {"name": "Backup", "dataprotection.databases.backup": args, "register": "taken"},
    ]).results
    assert not results["planned"].get("failed"), results["planned"]
    assert results["planned"]["plan"]["replica_set"] == "rs0" and results["planned"]["plan"]["tool_version"] == "100.9.4"
    assert results["refused"]["failed"] and "refused user backup: wrong user name or password" in results["refused"]["msg"]
    taken = results["taken"]
    assert not taken.get("failed"), taken
    assert taken["backup"]["method"] == "dump" and taken["backup"]["positions"]["oplog_ts"] == {"t": T0, "i": 7}
    assert [r["argv"][2:] for r in server.runs("mongodump")] == [["--oplog", "--archive"]]
    expected = server.state["databases"]
    empty_target(server)
    restore = dict(repo=spec, cluster="orders", engine="mongodb", backup_id=taken["backup"]["backup_id"], connection=server.connection())
    results = run_tasks([
        {"name": "Plan the restore", "dataprotection.databases.restore": restore, "register": "plan", "check_mode": True},
        {"name": "Restore", "dataprotection.databases.restore": restore, "register": "restored"},
    ]).results
    assert not results["plan"].get("failed") and results["plan"]["plan"]["oplog_replay"] is True, results["plan"]
    assert not results["restored"].get("failed"), results["restored"]
    assert results["restored"]["restored"]["documents"] == {"restored": 3, "failed": 0} and server.state["databases"] == expected
    assert len(server.runs("mongorestore")) == 1
    assert PASSWORD not in json.dumps(results) and PASSWORD not in json.dumps(taken)
