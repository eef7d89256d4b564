# -*- coding: utf-8 -*-
# Copyright: contributors to the dataprotection.databases collection
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Prometheus engine: the HTTP API and its errors, the storage-path and target checks, the snapshot's life cycle.

The HTTP side runs against a small stand-in of Prometheus' API on loopback
that answers like Prometheus 2.42 does (JSON envelopes, ``admin APIs
disabled`` with HTTP 500, 401 with basic auth) and writes snapshot
directories the way the real one does; tests/integration/test_prometheus.py
runs the real server.  The support matrix's refusals for Prometheus
(compression, log backups, point-in-time restore) are asserted here too.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import base64
import datetime
import http.server
import io
import json
import os
import subprocess
import sys
import tarfile
import threading
import time

import pytest

from ansible_collections.dataprotection.databases.plugins.module_utils import matrix
from ansible_collections.dataprotection.databases.plugins.module_utils.backup import BackupRequest
from ansible_collections.dataprotection.databases.plugins.module_utils.engines import prometheus
from ansible_collections.dataprotection.databases.plugins.module_utils.errors import ConfigError, EngineError, UnsupportedError
from ansible_collections.dataprotection.databases.plugins.module_utils.logbackup import LogBackupRequest
from ansible_collections.dataprotection.databases.plugins.module_utils.restore import RestoreRequest
from ansible_collections.dataprotection.databases.plugins.module_utils.timeutil import UTC

ULID_A = "01M88V99ZYFRCR30VN9A5W1EAF"
ULID_B = "01M88V9AZ7FVFE3GKSXF1T0FHE"
T0 = 1795593377880  # 2026-11-25T07:56:17.88Z in milliseconds


def write_block(directory, ulid, min_ms, max_ms, samples=10, series=2):
    block = os.path.join(str(directory), ulid)
    os.makedirs(os.path.join(block, "chunks"))
    with open(os.path.join(block, "meta.json"), "w") as handle:
        json.dump({"ulid": ulid, "minTime": min_ms, "maxTime": max_ms, "stats": {"numSamples": samples, "numSeries": series},
                   "compaction": {"level": 1, "sources": [ulid]}, "version": 1}, handle)
    for name, data in (("index", b"index of " + ulid.encode()), ("tombstones", b"\x00" * 9), ("chunks/000001", os.urandom(4096))):
        with open(os.path.join(block, name), "wb") as handle:
            handle.write(data)
    return block


def make_storage(path):
    """A directory shaped like a Prometheus storage path."""
    for name in ("wal", "chunks_head"):
        os.makedirs(os.path.join(str(path), name), exist_ok=True)
    with open(os.path.join(str(path), "queries.active"), "wb") as handle:
        handle.write(b"\x00" * 64)
    return str(path)


class FakePrometheus(object):
    """Prometheus' status and admin endpoints as 2.42 answers them; ``snapshot`` decides what a snapshot writes."""

    def __init__(self, storage, cwd="/", admin=True, auth=None, snapshot="blocks", version="2.42.0+ds"):
        self.storage = storage
        self.cwd = cwd
        self.admin = admin
        self.auth = auth
        self.snapshot = snapshot
        self.version = version
        self.requests = []
        fake = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *args):  # pylint: disable=arguments-differ
                pass

            def do_GET(self):  # pylint: disable=invalid-name
                fake.handle(self, "GET")

            def do_POST(self):  # pylint: disable=invalid-name
                fake.handle(self, "POST")

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever)
        self.thread.daemon = True
        self.thread.start()

    @property
    def connection(self):
        return {"host": "127.0.0.1", "port": self.port}

    def close(self):
        self.server.shutdown()
        self.server.server_close()

    def reply(self, handler, status, payload, content_type="application/json"):
        body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
        handler.send_response(status)
        handler.send_header("Content-Type", content_type)
        handler.send_header("Content-Length", str(len(body)))
        if status == 401:
            handler.send_header("WWW-Authenticate", "Basic")
        handler.end_headers()
        handler.wfile.write(body)

    def handle(self, handler, method):
        path = handler.path.split("?")[0]
        self.requests.append((method, path))
        if self.auth:
            expected = "Basic " + base64.b64encode(("%s:%s" % self.auth).encode()).decode()
            if handler.headers.get("Authorization") != expected:
                return self.reply(handler, 401, b"Unauthorized\n", "text/plain; charset=utf-8")
        ok = {"status": "success", "data": None}
        if path == "/api/v1/status/flags" and method == "GET":
            ok["data"] = {"storage.tsdb.path": self.storage, "web.enable-admin-api": "true" if self.admin else "false"}
        elif path == "/api/v1/status/runtimeinfo":
            ok["data"] = {"CWD": self.cwd, "storageRetention": "15d"}
        elif path == "/api/v1/status/buildinfo":
            ok["data"] = {"version": self.version, "revision": "x"}
        elif path == "/api/v1/status/tsdb":
            ok["data"] = {"headStats": {"numSeries": 2, "chunkCount": 2, "minTime": T0, "maxTime": T0 + 5000}}
        elif path == "/api/v1/admin/tsdb/snapshot" and method == "POST":
            if not self.admin:
                return self.reply(handler, 500, {"status": "error", "errorType": "unavailable", "error": "admin APIs disabled"})
            return self.reply(handler, 200, {"status": "success", "data": {"name": self.write_snapshot()}})
        else:
            return self.reply(handler, 404, b"404 page not found\n", "text/plain; charset=utf-8")
        return self.reply(handler, 200, ok)

    def write_snapshot(self):
        name = "20261125T075416Z-%016x" % len(self.requests)
        directory = os.path.join(self.storage if os.path.isabs(self.storage) else os.path.join(self.cwd, self.storage), "snapshots", name)
        if self.snapshot == "elsewhere":
            return name
        os.makedirs(directory)
        if self.snapshot == "blocks":
            write_block(directory, ULID_A, T0, T0 + 2120, samples=100, series=5)
            write_block(directory, ULID_B, T0 + 2120, T0 + 9001, samples=250, series=7)
        return name

    def posts(self):
        return [r for r in self.requests if r[0] == "POST"]


@pytest.fixture
def fake(tmp_path):
    servers = []

    def make(**kwargs):
        storage = kwargs.pop("storage", None) or make_storage(tmp_path / "storage")
        server = FakePrometheus(storage, **kwargs)
        servers.append(server)
        return server

    yield make
    for server in servers:
        server.close()


class Ctx(object):
    """What backup.run_backup hands an engine: ``store`` reads the stream into memory."""

    def __init__(self, fail_after=None):
        self.stored = {}
        self.fail_after = fail_after

    def store(self, base_name, stream):
        data = b""
        while True:
            chunk = stream.read(65536)
            if not chunk:
                break
            data += chunk
            if self.fail_after is not None and len(data) > self.fail_after:
                raise EngineError("the repository went away")
        self.stored[base_name] = data
        return {"name": base_name, "size": len(data)}


def backup_request(connection, **kwargs):
    return BackupRequest("prometheus", "tsdb-snapshot", "metrics", connection=connection, **kwargs)


# --------------------------------------------------------------------------- connection and API errors


def test_connection_builds_the_base_url():
    assert prometheus.Connection({}).url == "http://127.0.0.1:9090"
    assert prometheus.Connection({"host": "prom1", "port": 9091}).url == "http://prom1:9091"
    assert prometheus.Connection({"host": "::1"}).url == "http://[::1]:9090"
    assert prometheus.Connection({"host": "https://prom.example.com/prometheus/"}).url == "https://prom.example.com/prometheus"
    with pytest.raises(ConfigError) as err:
        prometheus.Connection({"host": "ftp://prom1"})
    assert "neither a host name nor an http:// or https:// URL" in str(err.value)


def test_api_errors_say_what_to_do(fake):
    from harness.dbservers import free_port

    with pytest.raises(EngineError) as err:
        prometheus.Connection({"port": free_port()}).api("/api/v1/status/flags")
    assert "cannot reach Prometheus at http://127.0.0.1:" in str(err.value) and "connection.port" in str(err.value)

    locked = fake(auth=("backup", "right"))
    with pytest.raises(EngineError) as err:
        prometheus.Connection(dict(locked.connection, user="backup", password="wrong")).api("/api/v1/status/flags")
    assert "refused the credentials of user backup (HTTP 401)" in str(err.value) and "basic_auth_users" in str(err.value)
    with pytest.raises(EngineError) as err:
        prometheus.Connection(locked.connection).api("/api/v1/status/flags")
    assert "requires basic authentication (HTTP 401)" in str(err.value) and "connection.user" in str(err.value)
    assert prometheus.Connection(dict(locked.connection, user="backup", password="right")).api("/api/v1/status/buildinfo")["version"]

    disabled = fake(admin=False)
    with pytest.raises(EngineError) as err:
        prometheus.take_snapshot(prometheus.Connection(disabled.connection))
    text = str(err.value)
    assert "admin API of Prometheus at %s is disabled (HTTP 500: admin APIs disabled)" % prometheus.Connection(disabled.connection).url in text
    assert "--web.enable-admin-api" in text
    with pytest.raises(EngineError) as err:
        prometheus.Connection(disabled.connection).api("/api/v1/admin/tsdb/clean_tombstones", method="POST")
    assert "admin API" in str(err.value) and "HTTP 404" in str(err.value) and "--web.enable-admin-api" in str(err.value)
    with pytest.raises(EngineError) as err:
        prometheus.Connection(disabled.connection).api("/metrics-of-something-else")
    assert "did not answer like the Prometheus HTTP API (HTTP 404)" in str(err.value)


def test_inspect_makes_a_relative_storage_path_absolute(fake, tmp_path):
    make_storage(tmp_path / "data")
    server = fake(storage="data", cwd=str(tmp_path))
    info = prometheus.inspect(prometheus.Connection(server.connection))
    assert info["storage_path"] == str(tmp_path / "data") and info["version"] == "2.42.0+ds" and info["admin_api"] is True
    assert info["head"] == {"series": 2, "chunks": 2, "min_time": "2026-11-25T07:56:17.88Z", "max_time": "2026-11-25T07:56:22.88Z"}


# --------------------------------------------------------------------------- backup


def test_plan_backup_checks_without_taking_a_snapshot(fake, tmp_path):
    server = fake()
    plan = prometheus.plan_backup(backup_request(server.connection))
    assert plan["server_version"] == "2.42.0+ds" and plan["storage_path"] == server.storage and plan["objects"] == ["snapshot.tar"]
    assert "identity" not in plan and plan["tools"]["tar"]["path"].endswith("/tar")

    disabled = fake(admin=False, storage=server.storage)
    with pytest.raises(EngineError) as err:
        prometheus.plan_backup(backup_request(disabled.connection))
    assert "admin API" in str(err.value) and "disabled" in str(err.value) and "--web.enable-admin-api" in str(err.value)

    elsewhere = fake(storage=str(tmp_path / "not-here"))
    with pytest.raises(EngineError) as err:
        prometheus.plan_backup(backup_request(elsewhere.connection))
    assert "the storage path %s of Prometheus at" % (tmp_path / "not-here") in str(err.value) and "is not on this host" in str(err.value)
    assert "run the backup on the Prometheus host" in str(err.value)

    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "notes.txt").write_text("not a TSDB")
    other = fake(storage=str(tmp_path / "other"))
    with pytest.raises(EngineError) as err:
        prometheus.plan_backup(backup_request(other.connection))
    assert "does not hold a Prometheus TSDB on this host" in str(err.value)

    for each in (server, disabled, elsewhere, other):
        assert each.posts() == [], "a check took a snapshot"
    assert not os.path.exists(os.path.join(server.storage, "snapshots"))


def test_run_backup_streams_the_snapshot_records_the_range_and_removes_it(fake):
    server = fake()
    ctx = Ctx()
    facts = prometheus.run_backup(backup_request(server.connection), ctx)
    assert server.posts() == [("POST", "/api/v1/admin/tsdb/snapshot")]
    with tarfile.open(fileobj=io.BytesIO(ctx.stored["snapshot.tar"])) as archive:
        names = set(name.lstrip("./") for name in archive.getnames())
    assert {ULID_A + "/meta.json", ULID_A + "/index", ULID_A + "/chunks/000001", ULID_B + "/tombstones"} <= names
    assert facts["min_time"] == "2026-11-25T07:56:17.88Z"
    assert facts["max_time"] == "2026-11-25T07:56:26.88Z"  # maxTime is exclusive: T0 + 9001 ms holds samples up to T0 + 9000 ms
    assert [b["ulid"] for b in facts["blocks"]] == [ULID_A, ULID_B] and facts["blocks"][1]["samples"] == 250
    assert facts["positions"] == {"min_time": facts["min_time"], "max_time": facts["max_time"], "blocks": 2, "samples": 350}
    assert facts["engine_version"] == "2.42.0+ds" and facts["snapshot"].startswith("20261125T075416Z-")
    assert facts["start_time"] <= facts["end_time"] and facts["end_time"].tzinfo is not None
    # The snapshots directory did not exist before: it is gone again, like the snapshot.
    assert sorted(os.listdir(server.storage)) == ["chunks_head", "queries.active", "wal"]

    os.mkdir(os.path.join(server.storage, "snapshots"))
    os.mkdir(os.path.join(server.storage, "snapshots", "operators-own"))
    prometheus.run_backup(backup_request(server.connection), Ctx())
    assert os.listdir(os.path.join(server.storage, "snapshots")) == ["operators-own"]


def test_the_snapshot_is_removed_when_the_backup_fails(fake):
    server = fake()
    with pytest.raises(EngineError) as err:
        prometheus.run_backup(backup_request(server.connection), Ctx(fail_after=1024))
    assert "the repository went away" in str(err.value)
    assert len(server.posts()) == 1 and not os.path.exists(os.path.join(server.storage, "snapshots"))

    empty = fake(snapshot="empty", storage=server.storage)
    with pytest.raises(EngineError) as err:
        prometheus.run_backup(backup_request(empty.connection), Ctx())
    assert "holds no data: the server has stored no samples yet" in str(err.value)
    assert len(empty.posts()) == 1 and not os.path.exists(os.path.join(server.storage, "snapshots"))


def test_a_snapshot_written_on_another_host_is_named(fake):
    server = fake(snapshot="elsewhere")
    with pytest.raises(EngineError) as err:
        prometheus.run_backup(backup_request(server.connection), Ctx())
    text = str(err.value)
    assert "wrote the snapshot 20261125T075416Z-" in text and "is not on this host" in text and "Remove %s/snapshots/" % server.storage in text


def test_read_blocks_and_range(tmp_path):
    assert prometheus.read_blocks(str(tmp_path)) == [] and prometheus.data_range([]) == (None, None)
    write_block(tmp_path, ULID_B, T0 + 1000, T0 + 3000)
    write_block(tmp_path, ULID_A, T0, T0 + 1000)
    (tmp_path / "wal").mkdir()
    blocks = prometheus.read_blocks(str(tmp_path))
    assert [b["ulid"] for b in blocks] == [ULID_A, ULID_B]
    assert blocks[0]["max_time"] == "2026-11-25T07:56:18.879Z" and blocks[0]["max_time_ms"] == T0 + 1000
    assert prometheus.data_range(blocks) == ("2026-11-25T07:56:17.88Z", "2026-11-25T07:56:20.879Z")
    (tmp_path / ULID_A / "meta.json").write_text("{not json")
    with pytest.raises(EngineError) as err:
        prometheus.read_blocks(str(tmp_path))
    assert "cannot read the block metadata" in str(err.value) and ULID_A in str(err.value)


# --------------------------------------------------------------------------- restore targets


def test_restore_target_checks(tmp_path):
    assert prometheus.check_target(str(tmp_path / "new"), False) == []
    storage = make_storage(tmp_path / "old")
    write_block(storage, ULID_A, T0, T0 + 1000)
    with pytest.raises(ConfigError) as err:
        prometheus.check_target(storage, False)
    assert "is not empty" in str(err.value) and "force: true" in str(err.value)
    assert prometheus.check_target(storage, True) == sorted([ULID_A, "chunks_head", "queries.active", "wal"])

    (tmp_path / "home").mkdir()
    (tmp_path / "home" / "thesis.tex").write_text("precious")
    (tmp_path / "home" / "wal").mkdir()
    with pytest.raises(ConfigError) as err:
        prometheus.check_target(str(tmp_path / "home"), True)
    assert "is not a Prometheus storage path: it holds thesis.tex" in str(err.value)
    with pytest.raises(ConfigError) as err:
        prometheus.check_target("relative/path", True)
    assert "absolute path" in str(err.value)


def _holder(code, ready_file):
    proc = subprocess.Popen([sys.executable, "-c", code])
    deadline = time.monotonic() + 20
    while not os.path.exists(ready_file):
        assert proc.poll() is None and time.monotonic() < deadline, "the lock holder did not start"
        time.sleep(0.05)
    return proc


def test_a_live_server_on_the_target_is_detected(tmp_path):
    storage = make_storage(tmp_path / "live")
    lock = os.path.join(storage, "lock")
    open(lock, "w").close()
    assert prometheus.server_using(storage) is None, "a stale lock file is not a live server"
    ready = str(tmp_path / "locked")
    # Prometheus with --storage.tsdb.use-lockfile holds an exclusive flock on <storage>/lock.
    holder = _holder("import fcntl, time\nf = open(%r, 'w')\nfcntl.flock(f, fcntl.LOCK_EX)\nopen(%r, 'w').close()\ntime.sleep(60)\n"
                     % (lock, ready), ready)
    try:
        assert prometheus.server_using(storage) == "a Prometheus server holds the lock on %s" % lock
        with pytest.raises(ConfigError) as err:
            prometheus.check_target(storage, True)
        assert "is in use: a Prometheus server holds the lock" in str(err.value) and "Stop the Prometheus server" in str(err.value)
    finally:
        holder.kill()
        holder.wait()
    assert prometheus.server_using(storage) is None

    # Without a lock file (the default since 2.x): a process holding a file of the directory open.
    os.unlink(lock)
    segment = os.path.join(storage, "wal", "00000000")
    ready = str(tmp_path / "open")
    holder = _holder("import time\nf = open(%r, 'a')\nopen(%r, 'w').close()\ntime.sleep(60)\n" % (segment, ready), ready)
    try:
        found = prometheus.server_using(storage)
        assert found.startswith("process %d (" % holder.pid) and found.endswith(") has %s open" % segment)
    finally:
        holder.kill()
        holder.wait()
    assert prometheus.server_using(storage) is None


def test_retention_covers_the_restored_data():
    now = datetime.datetime(2026, 11, 25, tzinfo=UTC)
    assert prometheus.retention_days({}, now) == 15
    assert prometheus.retention_days({"min_time": "2026-11-20T00:00:00Z"}, now) == 15
    assert prometheus.retention_days({"min_time": "2026-08-01T00:00:00Z"}, now) == 118


# --------------------------------------------------------------------------- the support matrix


def test_the_matrix_refuses_compression_log_backups_and_pitr_for_prometheus():
    assert "tsdb-snapshot" in matrix.implemented_methods("prometheus")
    assert matrix.default_method("prometheus", "tool") == "tsdb-snapshot"
    assert backup_request({}).compression == "none"
    for compression in ("zstd", "gzip"):
        with pytest.raises(ConfigError) as err:
            backup_request({}, compression=compression)
        assert str(err.value) == "method tsdb-snapshot of engine prometheus does not offer compression in the support matrix. Set compression: none"

    with pytest.raises(UnsupportedError) as err:
        LogBackupRequest({"type": "local", "path": "/r"}, "prometheus", "metrics")
    assert str(err.value) == "engine prometheus has no log method in the support matrix"
    with pytest.raises(UnsupportedError) as err:
        LogBackupRequest({"type": "local", "path": "/r"}, "prometheus", "metrics", method="tsdb-snapshot")
    assert str(err.value) == "tsdb-snapshot is not a log method of engine prometheus. The support matrix offers for prometheus: none"

    with pytest.raises(UnsupportedError) as err:
        RestoreRequest("prometheus", "metrics", "/var/lib/prometheus/metrics2", restore_time="2026-11-25T10:00:00Z")
    assert str(err.value) == ("engine prometheus does not support pitr (PITR) in the support matrix. "
                              "Engines with pitr: postgresql, mysql, mongodb")
    with pytest.raises(UnsupportedError) as err:
        matrix.check_feature("prometheus", "log")
    assert str(err.value).startswith("engine prometheus does not support log (Log) in the support matrix")
    # A volume snapshot is a backup method of its own, with its snapshot option, and stores no compressed copy here.
    with pytest.raises(ConfigError) as err:
        BackupRequest("prometheus", "volume-snapshot", "metrics")
    assert "needs the option snapshot" in str(err.value)
    request = BackupRequest("prometheus", "volume-snapshot", "metrics", snapshot={"provider": "btrfs", "stream": True})
    assert request.compression == "none"
    with pytest.raises(ConfigError) as err:
        BackupRequest("prometheus", "volume-snapshot", "metrics", compression="zstd", snapshot={"provider": "btrfs"})
    assert "does not offer compression" in str(err.value)


def test_a_server_that_stops_is_explained_by_its_error_lines(tmp_path):
    """A Go crash ends the log with goroutine frames: the reason is the ``fatal error``/``level=error`` line, not the tail."""
    from ansible_collections.dataprotection.databases.plugins.module_utils import hostfiles  # pylint: disable=import-outside-toplevel
    log = tmp_path / "prometheus.log"
    log.write_text('ts=2026-01-01T00:00:00Z caller=main.go:551 level=info msg="Starting Prometheus Server"\n'
                   "fatal error: runtime: out of memory\n\n" + "".join("goroutine %d [running]:\n\truntime.throw()\n" % n for n in range(20)))
    assert hostfiles.log_reason(str(log)) == "fatal error: runtime: out of memory\n"
    error = 'ts=x caller=main.go:1 level=error err="opening storage failed: lock DB directory: resource temporarily unavailable"\n'
    log.write_text("".join('ts=x level=info msg="step %d"\n' % n for n in range(12)) + error + 'ts=x level=info msg="See you next time!"\n')
    assert hostfiles.log_reason(str(log)) == error
    log.write_text("".join("line %d\n" % n for n in range(12)))
    assert hostfiles.log_reason(str(log)) == "".join("line %d\n" % n for n in range(4, 12))
    assert hostfiles.log_reason(str(tmp_path / "missing.log")) == ""
