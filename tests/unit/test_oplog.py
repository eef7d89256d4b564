# -*- coding: utf-8 -*-
# Copyright: contributors to the dataprotection.databases collection
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The MongoDB oplog archive (engines/oplog.py): BSON reading, slices, chains, windows, PITR plans, replay files, shipping.

No MongoDB can run on the test machines.  The oplog entries are real BSON
documents built with the ``bson`` package (test-only), shaped like the entries
MongoDB 4.4 to 7.0 write (the manual's example entry on its appendOplogNote
page, the server's oplog_entry.idl field list): ``op`` (i, u, d, c, n), ``ns``,
``ui`` (a UUID), ``o``, ``o2``, ``ts`` (a Timestamp), ``t`` (the term, a long),
``v`` (2), ``wall`` (a UTC datetime, milliseconds), on 4.4 ``h: 0`` and ``ts``
first, on 5.0+ ``ts`` after the operation; updates as ``$v: 2`` diffs,
transactions as ``applyOps`` commands with ``lsid``, ``txnNumber`` and
``prevOpTime``, and the periodic no-op ``{msg: "periodic noop"}``.  mongodump is replaced by fixtures/mongodb/oplog-mongodump (its
behaviour is taken from the MongoDB Database Tools documentation of mongodump
and the mongo-tools source of its ``--config`` parsing; see its docstring),
serving a BSON oplog file the tests append to and cut the head of (a
rollover).  mongosh is the engine's fake fixtures/mongodb/mongosh (hello with
setName rs0, or a standalone, or a mongos).
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import datetime
import json
import os
import sys
import uuid

import bson
import pytest
from bson import Decimal128, Int64, Regex, Timestamp
from bson.binary import Binary, UuidRepresentation

from ansible_collections.dataprotection.databases.plugins.module_utils import cli, crypto, retention
from ansible_collections.dataprotection.databases.plugins.module_utils.engines import logarchive, oplog
from ansible_collections.dataprotection.databases.plugins.module_utils.errors import (
    EngineError,
    IntegrityError,
    MissingDependency,
    RecoveryWindowError,
)
from ansible_collections.dataprotection.databases.plugins.module_utils.repoadmin import ensure_present
from ansible_collections.dataprotection.databases.plugins.module_utils.repoconfig import Repository, open_repository
from ansible_collections.dataprotection.databases.plugins.module_utils.repository import LocalRepo
from ansible_collections.dataprotection.databases.plugins.module_utils.timeutil import format_time

FIXTURES = os.path.join(os.path.dirname(os.path.abspath(__file__)), "fixtures", "mongodb")
PASSWORD = "s3cret-Pa55word"
T0 = 1780000000  # 2026-05-28T20:26:40Z
UI = Binary.from_uuid(uuid.UUID("0b7c1d2e-3f40-4a51-9b62-7c83d94e5f60"), UuidRepresentation.STANDARD)


def at(seconds, millis=0):
    return logarchive.EPOCH + datetime.timedelta(seconds=seconds, milliseconds=millis)


def entry(k, kind="insert", version="7.0", i=1, payload=None):
    """Oplog entry number ``k``: ts (T0 + 10 k, i), written 250 ms into that second; fields in the order mongod writes them."""
    seconds = T0 + 10 * k
    doc = {}
    if kind == "insert":
        document = {"_id": k, "item": "book", "qty": Int64(k), "price": Decimal128("9.99"), "note": payload or "x"}
        doc.update(op="i", ns="shop.orders", ui=UI, o=document, o2={"_id": k})
    elif kind == "update":
        doc.update(op="u", ns="shop.orders", ui=UI, o={"$v": 2, "diff": {"u": {"status": "paid"}, "i": {"paidAt": at(seconds)}}}, o2={"_id": k})
    elif kind == "delete":
        doc.update(op="d", ns="shop.orders", ui=UI, o={"_id": k})
    elif kind == "command":
        doc.update(op="c", ns="shop.$cmd", ui=UI, o={"create": "orders", "idIndex": {"v": 2, "key": {"_id": 1}, "name": "_id_"}})
    elif kind == "noop":
        doc.update(op="n", ns="", o={"msg": "periodic noop"})
    elif kind == "applyOps":
        inserted = {"_id": k, "re": Regex("^a", "i"), "ok": True, "none": None, "ratio": 0.5, "tags": ["a", "b"]}
        operations = [{"op": "i", "ns": "shop.orders", "ui": UI, "o": inserted},
                      {"op": "u", "ns": "shop.orders", "ui": UI, "o": {"$v": 2, "diff": {"d": {"note": False}}}, "o2": {"_id": k - 1}}]
        doc.update(lsid={"id": UI, "uid": Binary(b"\x01" * 32)}, txnNumber=Int64(3), op="c", ns="admin.$cmd", o={"applyOps": operations},
                   prevOpTime={"ts": Timestamp(0, 0), "t": Int64(-1)})
    if version == "4.4":
        # 4.2 and 4.4 write ts, t, h (always 0 since 4.2), v first, then the operation with wall before o.
        head = {"ts": Timestamp(seconds, i), "t": Int64(5), "h": Int64(0), "v": 2}
        for key in ("lsid", "txnNumber", "op", "ns", "ui"):
            if key in doc:
                head[key] = doc.pop(key)
        head["wall"] = at(seconds, 250)
        head.update(doc)
        return bson.encode(head)
    # 5.0 to 7.0 write the operation first, then ts, t, v (a long) and wall.
    doc["ts"] = Timestamp(seconds, i)
    doc["t"] = Int64(5)
    doc["v"] = Int64(2)
    doc["wall"] = at(seconds, 250)
    return bson.encode(doc)


KINDS = ("insert", "update", "delete", "command", "noop", "applyOps")


def ts_of(k, i=1):
    return (T0 + 10 * k, i)


def wall_of(k):
    return at(T0 + 10 * k, 250)


class Oplog(object):
    """The fake server's oplog: a BSON file the fake mongodump serves."""

    def __init__(self, path):
        self.path = path
        self.version = "7.0"
        self.docs = []
        self.write()

    def write(self):
        with open(self.path, "wb") as handle:
            for doc in self.docs:
                handle.write(doc)

    def append(self, first, last, payload=None):
        self.docs.extend(entry(k, "insert" if payload else KINDS[k % len(KINDS)], self.version, payload=payload) for k in range(first, last + 1))
        self.write()

    def cut_head(self, keep_from):
        """Capped-collection rollover: every entry before number ``keep_from`` is gone."""
        self.docs = [d for d in self.docs if bson.decode(d)["ts"].time >= T0 + 10 * keep_from]
        self.write()


def install(bin_dir, name, fixture):
    """A fixture tool in ``bin_dir``, run by this Python (bson is not needed by either fake)."""
    with open(os.path.join(FIXTURES, fixture)) as handle:
        body = handle.read().split("\n", 1)[1]
    path = bin_dir / name
    path.write_text("#!%s\n%s" % (sys.executable, body))
    path.chmod(0o755)


@pytest.fixture
def server(tmp_path, monkeypatch):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    install(bin_dir, "mongosh", "mongosh")
    install(bin_dir, "mongodump", "oplog-mongodump")
    (tmp_path / "state.json").write_text(json.dumps({"lock_count": 0}))
    for name, value in (("FAKE_MONGOSH_LOG", tmp_path / "mongosh.log"), ("FAKE_MONGOSH_STATE", tmp_path / "state.json"),
                        ("FAKE_MONGOSH_PASSWORD", PASSWORD), ("FAKE_MONGODUMP_LOG", tmp_path / "mongodump.log"),
                        ("FAKE_OPLOG", tmp_path / "oplog.bson"), ("FAKE_MONGOSH_MODE", "")):
        monkeypatch.setenv(name, str(value))
    (tmp_path / "mongodump.log").write_text("")
    log = Oplog(str(tmp_path / "oplog.bson"))
    log.bin_dir = str(bin_dir)
    log.connection = {"host": "127.0.0.1", "port": 27017, "user": "backup", "password": PASSWORD, "database": "admin", "bin_dir": str(bin_dir)}
    log.dumps = lambda: [json.loads(line) for line in (tmp_path / "mongodump.log").read_text().splitlines()]
    return log


@pytest.fixture(params=["plain", "encrypted"])
def repository(tmp_path, request):
    master = crypto.new_encryption_record("k")[1] if request.param == "encrypted" else None
    (tmp_path / "repo").mkdir()
    return Repository(LocalRepo({"path": str(tmp_path / "repo")}), {}, master)


def conn_of(server):
    return oplog._connection(server.connection)  # pylint: disable=protected-access


def ship(repository, server, **kwargs):
    kwargs.setdefault("now", wall_of(10000))  # far after every entry: everything pending is due
    return oplog.ship(repository, "catalog", conn_of(server), **kwargs)


def base(backup_id, end_k, oplog_k):
    """A base backup's manifest: it ended at entry ``end_k``'s wall time, consistent at entry ``oplog_k``'s ts."""
    return {"backup_id": backup_id, "cluster": "catalog", "engine": "mongodb", "method": "dump", "type": "full",
            "start_time": format_time(wall_of(end_k) - datetime.timedelta(seconds=5)), "end_time": format_time(wall_of(end_k)),
            "objects": [], "positions": {"oplog_ts": {"t": ts_of(oplog_k)[0], "i": 1}}}


# BSON ------------------------------------------------------------------------


@pytest.mark.parametrize("version", ["4.4", "7.0"])
@pytest.mark.parametrize("kind", KINDS)
def test_entry_fields_of_every_kind_of_entry(kind, version):
    raw = entry(7, kind, version, i=3)
    ts, wall = oplog.entry_fields(raw)
    decoded = bson.decode(raw)
    assert ts == (decoded["ts"].time, decoded["ts"].inc) == (T0 + 70, 3)
    assert wall == wall_of(7) == decoded["wall"].replace(tzinfo=wall.tzinfo)


def test_every_bson_type_before_ts_is_skipped_by_its_size():
    from bson import Code, DBRef, MaxKey, MinKey, ObjectId  # pylint: disable=import-outside-toplevel

    doc = {"double": 1.5, "string": "é", "doc": {"a": [1, {"b": 2}]}, "array": [1, "two"], "binary": Binary(b"\x00\x01", 0),
           "oid": ObjectId("6650a1e2f0c8b2a9d1e4c3b2"), "bool": False, "date": at(T0), "null": None, "regex": Regex("^a.*z$", "im"),
           "code": Code("function () {}"), "scoped": Code("x", {"y": 1}), "int": 7, "long": Int64(2 ** 40), "decimal": Decimal128("1.1"),
           "ref": DBRef("orders", 1), "min": MinKey(), "max": MaxKey(), "ts": Timestamp(T0, 42), "wall": at(T0, 999)}
    assert oplog.entry_fields(bson.encode(doc)) == ((T0, 42), at(T0, 999))


def test_entry_without_wall_uses_the_ts_seconds(tmp_path):
    raw = bson.encode({"op": "n", "ns": "", "o": {"msg": "x"}, "ts": Timestamp(T0, 9), "h": Int64(12345), "v": 2})
    assert oplog.entry_fields(raw) == ((T0, 9), None)
    path = tmp_path / "s.bson"
    path.write_bytes(raw)
    with open(str(path), "rb") as handle:
        assert [(ts, wall) for dummy, ts, wall in oplog.read_entries(handle)] == [((T0, 9), None)]


def test_read_entries_refuses_torn_and_unordered_streams(tmp_path):
    path = tmp_path / "s.bson"
    path.write_bytes(entry(1) + entry(2)[:-7])
    with open(str(path), "rb") as handle, pytest.raises(IntegrityError, match="torn"):
        list(oplog.read_entries(handle))
    path.write_bytes(entry(2) + entry(1))
    with open(str(path), "rb") as handle, pytest.raises(IntegrityError, match="not in oplog order"):
        list(oplog.read_entries(handle))
    with pytest.raises(IntegrityError, match="without a ts"):
        oplog.entry_fields(bson.encode({"op": "n", "wall": at(T0)}))


# Shipping, chains, windows -------------------------------------------------------


def names(index):
    return dict((chain, [(e["first_ts"], e["last_ts"]) for n, e in sorted(files.items())]) for chain, files in index.items())


@pytest.mark.parametrize("version", ["4.4", "7.0"])
def test_contiguous_passes_make_one_chain(repository, server, version):
    server.version = version
    server.append(0, 5)
    first = ship(repository, server)
    assert first["gap"] is None and len(first["shipped"]) == 1
    assert "--query" not in " ".join(server.dumps()[0]["argv"])  # nothing archived yet: from the oldest entry on
    server.append(6, 11)
    second = ship(repository, server)
    assert second["gap"] is None and second["chain"] == first["chain"] == "%d_1" % ts_of(0)[0]
    query = [a for a in server.dumps()[1]["argv"] if a.startswith("--query=")]
    assert json.loads(query[0][len("--query="):]) == {"ts": {"$gte": {"$timestamp": {"t": ts_of(5)[0], "i": 1}}}}
    index = oplog.load(repository.repo, "catalog")
    assert names(index) == {first["chain"]: [(ts_of(0), ts_of(5)), (ts_of(6), ts_of(11))]}
    assert index[first["chain"]][1]["first"] == wall_of(6) and index[first["chain"]][1]["last"] == wall_of(11)
    # The same pass again finds nothing new: nothing is stored twice.
    assert ship(repository, server)["shipped"] == []
    b1 = base("catalog-dump-1", 3, 2)
    assert oplog.windows(repository.repo, "catalog", [b1]) == [
        {"start": format_time(wall_of(3)), "end": format_time(wall_of(11)), "base_backups": [b1["backup_id"]]}]


def test_a_rollover_makes_a_break_of_two_windows(repository, server):
    server.append(0, 5)
    ship(repository, server)
    server.append(6, 20)
    server.cut_head(9)  # entries 6..8 never reach the archive
    second = ship(repository, server)
    gap = second["gap"] or {}
    assert gap.get("after") == {"t": ts_of(5)[0], "i": 1} and gap.get("next") == {"t": ts_of(9)[0], "i": 1}
    assert "rolled over" in gap.get("message")
    assert second["chain"] == "%d_1" % ts_of(9)[0]
    index = oplog.load(repository.repo, "catalog")
    assert names(index) == {"%d_1" % ts_of(0)[0]: [(ts_of(0), ts_of(5))], "%d_1" % ts_of(9)[0]: [(ts_of(9), ts_of(20))]}
    b1, b2, lost = base("catalog-dump-1", 2, 1), base("catalog-dump-2", 12, 11), base("catalog-dump-3", 8, 7)
    assert oplog.windows(repository.repo, "catalog", [b1, b2, lost]) == [
        {"start": format_time(wall_of(2)), "end": format_time(wall_of(5)), "base_backups": [b1["backup_id"]]},
        {"start": format_time(wall_of(12)), "end": format_time(wall_of(20)), "base_backups": [b2["backup_id"]]},
    ]
    # The next pass continues the new chain.
    server.append(21, 22)
    third = ship(repository, server)
    assert third["gap"] is None and third["chain"] == "%d_1" % ts_of(9)[0]
    assert names(oplog.load(repository.repo, "catalog"))["%d_1" % ts_of(9)[0]][-1] == (ts_of(21), ts_of(22))


def test_an_oplog_that_holds_nothing_of_the_archive_reports_a_break(repository, server):
    server.append(0, 3)
    ship(repository, server)
    server.cut_head(4)
    result = ship(repository, server)
    gap = result["gap"] or {}
    assert "no longer holds the last shipped entry" in gap.get("message") and gap.get("next") is None and result["shipped"] == []


def test_a_dump_that_breaks_off_stores_nothing_and_says_why(repository, server, monkeypatch):
    server.append(0, 5)
    monkeypatch.setenv("FAKE_MONGODUMP_MODE", "break")
    with pytest.raises(EngineError, match="mongodump of the oplog failed .*connection reset by peer"):
        ship(repository, server)
    assert oplog.load(repository.repo, "catalog") == {}
    monkeypatch.setenv("FAKE_MONGODUMP_MODE", "")
    assert len(ship(repository, server)["shipped"]) == 1


def test_a_pass_stores_the_rest_only_when_it_is_due(repository, server):
    server.append(0, 5)
    early = ship(repository, server, interval=300, now=wall_of(5) + datetime.timedelta(seconds=100))  # entry 0 is 150 s old
    assert early["shipped"] == [] and early["pending"] == 6 and oplog.load(repository.repo, "catalog") == {}
    due = ship(repository, server, interval=300, now=wall_of(0) + datetime.timedelta(seconds=300))
    assert len(due["shipped"]) == 1 and due["pending"] == 0
    server.append(6, 7)
    assert ship(repository, server, interval=300, now=wall_of(7), force=True)["shipped"]


def test_a_large_pass_is_cut_into_slices_of_rotate_size_mb(repository, server):
    server.append(0, 9, payload="y" * (300 * 1024))  # 10 entries of 300 KiB: 4 + 4 + 2 with 1 MiB slices
    result = ship(repository, server, size_mb=1)
    chain = result["chain"]
    index = oplog.load(repository.repo, "catalog")
    assert names(index) == {chain: [(ts_of(0), ts_of(3)), (ts_of(4), ts_of(7)), (ts_of(8), ts_of(9))]}
    assert [index[chain][n]["name"][:8] for n in sorted(index[chain])] == ["00000000", "00000001", "00000002"]


def test_a_slice_name_says_its_range_and_its_content_is_the_entries(repository, server, tmp_path):
    server.append(0, 5)
    record = ship(repository, server)["slices"][0]
    key = record["key"]
    assert key.startswith("catalog/logs/oplog/%d_1/00000000.%d_1.%d_1-%s-%s-%s" % (
        ts_of(0)[0], ts_of(0)[0], ts_of(5)[0], record["sha256"], logarchive.to_micros(wall_of(0)), logarchive.to_micros(wall_of(5))))
    assert key.endswith(".zst.enc" if repository.encrypted else ".zst")
    out = oplog.fetch(repository, [oplog.load(repository.repo, "catalog")["%d_1" % ts_of(0)[0]][0]], str(tmp_path))
    with open(out[0], "rb") as handle:
        assert handle.read() == b"".join(server.docs)


# PITR plans and replay files -----------------------------------------------------


def make_archive(repository, server):
    """Chain A: entries 0..29 in 3 slices; a rollover; chain B: entries 40..59 in 2 slices."""
    for first, last in ((0, 9), (10, 19), (20, 29)):
        server.append(first, last)
        ship(repository, server)
    server.append(30, 49)
    server.cut_head(40)
    ship(repository, server)
    server.append(50, 59)
    ship(repository, server)
    return repository


@pytest.fixture
def archived(repository, server):
    return make_archive(repository, server)


B1 = base("catalog-dump-20260528a", 4, 3)     # chain A, slice 0
B2 = base("catalog-dump-20260528b", 15, 14)   # chain A, slice 1
LOST = base("catalog-dump-20260528c", 35, 34)  # in the break: no window
B3 = base("catalog-dump-20260528d", 45, 44)   # chain B, slice 0
BASES = [B1, B2, LOST, B3]


def test_windows_and_positions(archived):
    index = oplog.load(archived.repo, "catalog")
    chain_a, chain_b = "%d_1" % ts_of(0)[0], "%d_1" % ts_of(40)[0]
    assert oplog.position(B1, index) == (chain_a, 0) and oplog.position(B2, index) == (chain_a, 1)
    assert oplog.position(LOST, index) is None and oplog.position(B3, index) == (chain_b, 0)
    # Only dumps are bases of a point-in-time restore; another engine's backups are not either.
    others = [dict(B1, engine="mysql", backup_id="x"), dict(B2, method="volume-snapshot", backup_id="y", end_time=format_time(wall_of(1)))]
    assert oplog.windows(archived.repo, "catalog", BASES + others) == [
        {"start": format_time(wall_of(4)), "end": format_time(wall_of(29)), "base_backups": [B2["backup_id"], B1["backup_id"]]},
        {"start": format_time(wall_of(45)), "end": format_time(wall_of(59)), "base_backups": [B3["backup_id"]]},
    ]


def test_positions_at_the_edges_of_slices(archived):
    index = oplog.load(archived.repo, "catalog")
    chain_a = "%d_1" % ts_of(0)[0]
    assert oplog.position(base("x", 10, 9), index) == (chain_a, 0)      # the last entry of slice 0
    assert oplog.position(base("x", 11, 10), index) == (chain_a, 1)     # the first entry of slice 1
    assert oplog.position(dict(base("x", 11, 10), positions={"oplog_ts": {"t": ts_of(10)[0], "i": 2}}), index) == (chain_a, 1)  # in its range
    assert oplog.position(base("x", 36, 35), index) is None             # in the break between the chains
    assert oplog.position(base("x", 70, 69), index) is None             # not archived yet
    assert oplog.position(dict(base("x", 1, 0), positions={}), index) is None


def test_two_slices_under_one_number_the_one_reaching_further_is_used(tmp_path):
    repo = LocalRepo({"path": str(tmp_path)})
    for last_k in (12, 15):
        name = oplog.slice_name(1, ts_of(10), ts_of(last_k))
        times = (logarchive.to_micros(wall_of(10)), logarchive.to_micros(wall_of(last_k)))
        repo.put_bytes("catalog/logs/oplog/%d_1/%s-%064x-%s-%s.zst" % ((ts_of(0)[0], name, last_k) + times), b"")
    repo.put_bytes("catalog/logs/oplog/README", b"not a slice")
    repo.put_bytes("catalog/logs/oplog/not-a-chain/00000000.1_1.2_1-%064x-1-2.zst" % 0, b"")
    index = oplog.load(repo, "catalog")
    assert list(index) == ["%d_1" % ts_of(0)[0]] and index["%d_1" % ts_of(0)[0]][1]["last_ts"] == ts_of(15)
    assert oplog.head(index)["last"] == wall_of(15)


@pytest.mark.parametrize("target_k,chosen,slices", [
    (12, B1, [0, 1]),       # B2 ended after the target
    (16, B2, [1]),
    (25, B2, [1, 2]),
    (29, B2, [1, 2]),
    (50, B3, [0, 1]),
])
def test_plan_pitr_picks_the_newest_base_and_its_slices(archived, target_k, chosen, slices):
    target = wall_of(target_k) - datetime.timedelta(milliseconds=100)
    found, entries = oplog.plan_pitr(archived.repo, "catalog", BASES, target)
    assert found is chosen
    assert [e["number"] for e in entries] == slices


@pytest.mark.parametrize("target", [wall_of(2), wall_of(30), wall_of(37), wall_of(44), wall_of(60)])
def test_plan_pitr_refuses_outside_the_windows(archived, target):
    with pytest.raises(RecoveryWindowError) as err:
        oplog.plan_pitr(archived.repo, "catalog", BASES, target)
    assert "%s .. %s; %s .. %s" % (format_time(wall_of(4)), format_time(wall_of(29)), format_time(wall_of(45)), format_time(wall_of(59))) in err.value.hint
    assert len(err.value.details["windows"]) == 2


def test_write_replay_holds_exactly_the_range(archived, tmp_path):
    target = wall_of(25) - datetime.timedelta(milliseconds=100)
    found, entries = oplog.plan_pitr(archived.repo, "catalog", BASES, target)
    path = str(tmp_path / "oplog.bson")
    summary = oplog.write_replay(archived, entries, found["positions"]["oplog_ts"], target, path)
    replay = bson.decode_all(open(path, "rb").read())
    assert [(d["ts"].time, d["ts"].inc) for d in replay] == [ts_of(k) for k in range(15, 25)]
    assert summary == {"count": 10, "first": {"t": ts_of(15)[0], "i": 1}, "last": {"t": ts_of(24)[0], "i": 1}}
    assert oct(os.stat(path).st_mode & 0o777) == "0o600"
    assert replay[3] == bson.decode(entry(18, KINDS[18 % len(KINDS)]))  # byte-for-byte the archived entry
    # A target exactly at an entry's wall time leaves that entry out; nothing after the base: an empty file.
    assert oplog.write_replay(archived, entries, {"t": ts_of(14)[0], "i": 1}, wall_of(16), path)["count"] == 1
    assert oplog.write_replay(archived, entries, {"t": ts_of(14)[0], "i": 1}, wall_of(14), path) == {"count": 0, "first": None, "last": None}
    assert open(path, "rb").read() == b""


# Retention -------------------------------------------------------------------------


def test_prunable_keeps_every_kept_window(archived):
    index = oplog.load(archived.repo, "catalog")
    gone = oplog.prunable(archived.repo, "catalog", index, [B2, B3])
    assert sorted((e["chain"], e["number"]) for e in gone) == [("%d_1" % ts_of(0)[0], 0)]
    before = oplog.windows(archived.repo, "catalog", [B2, B3], index)
    assert oplog.windows(archived.repo, "catalog", [B2, B3], logarchive.without(index, gone)) == before
    # Only B3 kept: all of chain A goes (it ends before B3 began); nothing of chain B.
    gone = oplog.prunable(archived.repo, "catalog", index, [B3])
    assert sorted((e["chain"], e["number"]) for e in gone) == [("%d_1" % ts_of(0)[0], n) for n in range(3)]
    assert oplog.prunable(archived.repo, "catalog", index, []) == []


def test_retention_min_window_finds_oplog_bases_through_the_index(archived):
    index = oplog.load(archived.repo, "catalog")
    archives = {"mongodb": (oplog, index)}
    protected = retention.min_window_bases(archived.repo, "catalog", archives, BASES, wall_of(20), wall_of(58))
    assert protected == set([B2["backup_id"], B3["backup_id"]])


@pytest.mark.parametrize("keep_last,expired,pruned", [
    (3, ["a"], [("A", 0)]),                               # B2 starts in chain A's slice 1: slice 0 goes
    (2, ["a", "b"], [("A", 0), ("A", 1), ("A", 2)]),      # the kept bases start after chain A: all of it goes
])
def test_backup_retention_prunes_slices_and_keeps_the_windows(tmp_path, server, keep_last, expired, pruned):
    """backup_retention's core on a real repository: manifests of dumps, and the archive shipped through the fakes."""
    from harness.synthetic import Generator  # pylint: disable=import-outside-toplevel

    spec = {"type": "local", "path": str(tmp_path / "repo")}
    ensure_present(spec)
    with open_repository(spec) as repository:
        make_archive(repository, server)
        gen = Generator(repository.repo, "catalog")
        made = dict((name, gen.backup("mongodb", "dump", wall_of(end), {"oplog_ts": {"t": ts_of(at_k)[0], "i": 1}}))
                    for name, end, at_k in (("a", 4, 3), ("b", 15, 14), ("lost", 35, 34), ("c", 45, 44)))
        before = oplog.load(repository.repo, "catalog")
    policy = retention.Policy(keep_last=keep_last)
    planned = retention.run_retention(spec, "catalog", policy, check_mode=True, now=wall_of(60))
    with open_repository(spec) as repository:
        assert oplog.load(repository.repo, "catalog") == before
    done = retention.run_retention(spec, "catalog", policy, now=wall_of(60))
    assert [row["backup_id"] for row in done["expired"]] == [made[name]["backup_id"] for name in expired]
    chains = {"A": "%d_1" % ts_of(0)[0], "B": "%d_1" % ts_of(40)[0]}
    assert done["logs"] == planned["logs"] and [(row["engine"], row["kind"], row["count"]) for row in done["logs"]] == [("mongodb", "oplog", len(pruned))]
    with open_repository(spec) as repository:
        after = oplog.load(repository.repo, "catalog")
    gone = sorted((chain, number) for chain, files in before.items() for number in files if number not in after.get(chain, {}))
    assert gone == sorted((chains[c], n) for c, n in pruned)
    window_b = {"start": format_time(wall_of(15)), "end": format_time(wall_of(29)), "base_backups": [made["b"]["backup_id"]]}
    window_c = {"start": format_time(wall_of(45)), "end": format_time(wall_of(59)), "base_backups": [made["c"]["backup_id"]]}
    assert done["windows_after"] == ([window_b, window_c] if "b" not in expired else [window_c])
    assert done["windows_before"][0] == {"start": format_time(wall_of(4)), "end": format_time(wall_of(29)),
                                         "base_backups": [made["b"]["backup_id"], made["a"]["backup_id"]]}


# Bad input ---------------------------------------------------------------------------


def request_of(server, tmp_path, **options):
    class Request(object):
        pass

    request = Request()
    request.cluster = "catalog"
    request.connection = dict(server.connection)
    request.repo_spec = {"type": "local", "path": str(tmp_path / "repo")}
    request.options = dict({"config_dir": str(tmp_path / "etc"), "scheduler": "cron", "scheduler_dir": str(tmp_path / "cron.d"),
                            "agent_command": str(tmp_path / "bin" / "mongosh"), "rotate_interval": 60, "rotate_size_mb": 16}, **options)
    return request


@pytest.mark.parametrize("mode,message", [
    ("standalone", "is a standalone mongod: it has no oplog to archive"),
    ("mongos", "is a mongos: oplog archiving of sharded clusters is not supported"),
    ("shardsvr", "member of a sharded cluster"),
])
@pytest.mark.parametrize("state", ["enabled", "synced"])
def test_servers_without_a_usable_oplog_are_refused_with_nothing_written(repository, server, tmp_path, monkeypatch, mode, message, state):
    monkeypatch.setenv("FAKE_MONGOSH_MODE", mode)
    server.append(0, 5)
    with pytest.raises(EngineError, match=message):
        oplog.log_backup(repository, request_of(server, tmp_path), state)
    assert list(repository.repo.list("")) == []
    assert not (tmp_path / "etc").exists() and not (tmp_path / "cron.d").exists()
    assert server.dumps() == []


def test_missing_mongodump_names_its_package(repository, server, tmp_path, monkeypatch):
    os.unlink(os.path.join(server.bin_dir, "mongodump"))
    monkeypatch.setenv("PATH", "/nonexistent")
    with pytest.raises(MissingDependency) as err:
        oplog.log_backup(repository, request_of(server, tmp_path), "enabled")
    assert "mongodump" in str(err.value) and "mongodb-database-tools" in err.value.hint
    assert not (tmp_path / "etc").exists()


def test_wrong_password_is_clear_and_never_on_a_command_line(repository, server, monkeypatch):
    server.append(0, 5)
    monkeypatch.setenv("FAKE_MONGOSH_PASSWORD", "another")
    with pytest.raises(EngineError, match="refused user backup: wrong user name or password"):
        ship(repository, server)
    # mongosh refused first; mongodump with the wrong password says the same.
    monkeypatch.setenv("FAKE_MONGOSH_PASSWORD", PASSWORD)
    conn = conn_of(server)
    conn.password = "wrong"
    with pytest.raises(EngineError, match="refused user backup: wrong user name or password"):
        oplog.ship(repository, "catalog", conn, now=wall_of(10000))
    with pytest.raises(EngineError, match="refused user backup"):
        pass_with_wrong_dump_password(repository, server, monkeypatch)


def pass_with_wrong_dump_password(repository, server, monkeypatch):
    """mongosh accepts the password (its fake reads FAKE_MONGOSH_PASSWORD first), mongodump then refuses it."""
    conn = conn_of(server)
    original = oplog.dump_config

    def other_password(connection, directory):
        connection.password = "wrong"
        return original(connection, directory)

    monkeypatch.setattr(oplog, "dump_config", other_password)
    return oplog.ship(repository, "catalog", conn, now=wall_of(10000))


def test_mongodump_gets_its_password_from_a_0600_config_file(repository, server):
    server.append(0, 5)
    ship(repository, server)
    run = server.dumps()[0]
    assert run["config_keys"] == ["uri"] and run["user"] == "backup" and run["config_mode"] == "0o600"
    assert run["uri_path"] == "/" and "authSource=admin" in run["uri_query"].split("&") and "directConnection=true" in run["uri_query"].split("&")
    assert not any(PASSWORD in arg for arg in run["argv"])
    assert [a for a in run["argv"] if not a.startswith("--config=")] == ["--db=local", "--collection=oplog.rs", "--out=-", "--quiet"]


@pytest.mark.parametrize("params,uri", [
    ({"host": "db1", "port": 27018}, "mongodb://db1:27018/?directConnection=true"),
    ({"host": "db1", "user": "b@ck", "password": "p:w/d", "database": "ops"}, "mongodb://b%40ck:p%3Aw%2Fd@db1:27017/?directConnection=true"),
    ({"socket": "/run/mongodb/mongodb-27017.sock", "user": "backup", "password": "x"}, "mongodb://backup:x@%2Frun%2Fmongodb%2Fmongodb-27017.sock/?"),
])
def test_the_dump_connection_string_has_no_database_path(params, uri):
    found = oplog.dump_uri(oplog._connection(params))  # pylint: disable=protected-access
    assert found.startswith(uri)
    assert ("&authSource=%s" % params.get("database", "admin") in found) == bool(params.get("user"))


def test_another_replica_set_under_the_cluster_is_refused(repository, server):
    server.append(0, 5)
    with pytest.raises(EngineError, match="is replica set rs0, not replset:other"):
        ship(repository, server, identity="replset:other")
    assert list(repository.repo.list("")) == []


# log_backup and the host command -------------------------------------------------------


@pytest.fixture(params=["plain", "encrypted"])
def made_repository(tmp_path, request):
    """A repository made as backup_repo makes it, so that the host command can open it from its configuration."""
    spec = {"type": "local", "path": str(tmp_path / "repo")}
    if request.param == "encrypted":
        spec["encryption_key"] = "correct horse battery staple"
    ensure_present(spec)
    repository = open_repository(spec)
    yield spec, repository
    repository.repo.close()


def test_log_backup_enabled_writes_the_config_and_the_cron_line_and_the_host_command_ships(made_repository, server, tmp_path, capsys):
    spec, repository = made_repository
    server.append(0, 5)
    request = request_of(server, tmp_path)
    request.repo_spec = spec
    plan = oplog.log_backup(repository, request, "enabled", check_mode=True)
    assert plan["changed"] and plan["plan"]["write_config"] and not (tmp_path / "etc").exists()
    result = oplog.log_backup(repository, request, "enabled")
    config_path = str(tmp_path / "etc" / "catalog.json")
    assert result["changed"] and result["config_path"] == config_path and result["scheduler"] == "cron"
    assert oct(os.stat(config_path).st_mode & 0o777) == "0o600"
    config = json.load(open(config_path))
    assert config["engine"] == "mongodb" and config["identity"] == "replset:rs0" and config["rotate_interval"] == 60
    cron = (tmp_path / "cron.d" / "dataprotection-oplog-catalog").read_text()
    assert "* * * * * " in cron and "%s --config %s oplog-ship" % (request.options["agent_command"], config_path) in cron
    assert oplog.log_backup(repository, request, "enabled")["changed"] is False
    # What the cron line runs: the host command, one pass (--now: the entries are old enough anyway).
    assert cli.main(["--config", config_path, "oplog-ship"]) == cli.EXIT_OK
    shipped = json.loads(capsys.readouterr().out.strip())
    assert len(shipped["shipped"]) == 1 and shipped["gap"] is None
    # A restart continues where the archive ends.
    server.append(6, 8)
    assert cli.main(["--config", config_path, "oplog-ship", "--now"]) == cli.EXIT_OK
    assert names(oplog.load(repository.repo, "catalog")) == {"%d_1" % ts_of(0)[0]: [(ts_of(0), ts_of(5)), (ts_of(6), ts_of(8))]}
    capsys.readouterr()
    # A rollover: the break is reported on stderr with its own exit status, and the new chain is stored.
    server.append(9, 20)
    server.cut_head(12)
    assert cli.main(["--config", config_path, "oplog-ship", "--now"]) == cli.EXIT_GAP
    err = capsys.readouterr().err
    assert "BREAK in the oplog archive of cluster catalog" in err and "rolled over" in err
    assert sorted(oplog.load(repository.repo, "catalog")) == ["%d_1" % ts_of(0)[0], "%d_1" % ts_of(12)[0]]
    # synced ships at once; disabled removes what enabled wrote.
    server.append(21, 21)
    synced = oplog.log_backup(repository, request, "synced")
    assert synced["shipped"] and synced["synced_oplog_ts"] == {"t": ts_of(21)[0], "i": 1}
    gone = oplog.log_backup(repository, request, "disabled")
    assert gone["changed"] and not os.path.exists(config_path) and not (tmp_path / "cron.d" / "dataprotection-oplog-catalog").exists()
    assert not os.path.exists(config_path + ".lock")


def test_one_shipping_pass_at_a_time(tmp_path):
    import fcntl  # pylint: disable=import-outside-toplevel

    config_path = str(tmp_path / "etc" / "catalog.json")
    with oplog.ShippingLock(config_path):
        with open(config_path + ".lock", "a") as other:
            with pytest.raises(OSError):
                fcntl.flock(other, fcntl.LOCK_EX | fcntl.LOCK_NB)
    with open(config_path + ".lock", "a") as other:
        fcntl.flock(other, fcntl.LOCK_EX | fcntl.LOCK_NB)


def test_the_installed_host_command_ships_as_its_own_process(made_repository, server, tmp_path, agent):
    """The cron line's command as the agent role installs it (the system Python, the core copied): exit 0, then 5 at a break."""
    import subprocess  # pylint: disable=import-outside-toplevel

    spec, repository = made_repository
    server.append(0, 5)
    request = request_of(server, tmp_path, agent_command=agent["agent_command"])
    request.repo_spec = spec
    config_path = oplog.log_backup(repository, request, "enabled")["config_path"]
    argv = [agent["agent_command"], "--config", config_path, "oplog-ship", "-v"]
    first = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, universal_newlines=True, timeout=300, check=False)
    assert first.returncode == 0, first.stderr
    assert json.loads(first.stdout)["last_ts"] == {"t": ts_of(5)[0], "i": 1}
    server.append(6, 20)
    server.cut_head(10)
    second = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, universal_newlines=True, timeout=300, check=False)
    assert second.returncode == 5 and "BREAK in the oplog archive of cluster catalog" in second.stderr
    assert sorted(oplog.load(repository.repo, "catalog")) == ["%d_1" % ts_of(0)[0], "%d_1" % ts_of(10)[0]]


def test_log_backup_systemd_unit(repository, server, tmp_path):
    request = request_of(server, tmp_path, scheduler="systemd", scheduler_dir=str(tmp_path / "units"))
    result = oplog.log_backup(repository, request, "enabled")
    unit = (tmp_path / "units" / "dataprotection-oplog-catalog.service").read_text()
    assert "ExecStart=%s --config %s oplog-ship --follow" % (request.options["agent_command"], result["config_path"]) in unit
    assert result["ship_command"].endswith("oplog-ship --follow")


def test_the_log_backup_module_through_ansible_playbook(made_repository, server, tmp_path, monkeypatch, capsys):
    """The module end to end: check mode, enabled (config and cron line), the host command's pass, a standalone refused."""
    from harness.playbook import run_tasks  # pylint: disable=import-outside-toplevel

    spec, repository = made_repository
    server.append(0, 5)
    args = dict(repo=spec, cluster="catalog", engine="mongodb", method="oplog-archive", connection=server.connection, scheduler="cron",
                scheduler_dir=str(tmp_path / "cron.d"), config_dir=str(tmp_path / "etc"), agent_command=os.path.join(server.bin_dir, "mongosh"),
                rotate_interval=60)
    task = {"name": "Archive the oplog", "dataprotection.databases.log_backup": args, "register": "enabled"}
    planned = run_tasks([dict(task, register="planned")], check=True).results["planned"]
    assert not planned.get("failed"), planned
    assert planned["changed"] and planned["plan"]["write_config"] and not (tmp_path / "etc").exists()
    done = run_tasks([task]).results["enabled"]
    assert not done.get("failed"), done
    assert done["changed"] and done["scheduler"] == "cron" and done["windows"] == []
    assert PASSWORD not in json.dumps(done)
    cron = (tmp_path / "cron.d" / "dataprotection-oplog-catalog").read_text()
    assert cron.endswith("%s --config %s oplog-ship >/dev/null 2>&1\n" % (args["agent_command"], done["config_path"]))
    assert cli.main(["--config", done["config_path"], "oplog-ship"]) == cli.EXIT_OK
    assert json.loads(capsys.readouterr().out)["shipped"]
    assert names(oplog.load(repository.repo, "catalog")) == {"%d_1" % ts_of(0)[0]: [(ts_of(0), ts_of(5))]}
    monkeypatch.setenv("FAKE_MONGOSH_MODE", "standalone")
    refused = run_tasks([dict(task, register="refused", **{"dataprotection.databases.log_backup": dict(args, cluster="other")})]).results["refused"]
    assert refused["failed"] and "standalone mongod: it has no oplog to archive" in refused["msg"]
    assert not (tmp_path / "etc" / "other.json").exists() and list(repository.repo.list("other/")) == []
