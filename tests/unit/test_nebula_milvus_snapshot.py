# -*- coding: utf-8 -*-
# Copyright: contributors to the dataprotection.databases collection
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Volume-snapshot hooks of Nebula Graph and Milvus, against fakes (EXPERIMENTAL engines).

Neither server can run on the test machines.  Nebula is driven through a fake
``nebula-console`` (tests/unit/fixtures/nebula/nebula-console) that answers
the statements the engine sends in nebula-console's ``-e`` output format;
Milvus through a small HTTP server on 127.0.0.1 implementing the two REST v2
endpoints the engine calls, with the documented request and response shapes.
The backup flow is ``snapshot_backup.run_backup`` with a recording provider.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json
import os
import pwd
import sys
import threading
import types

import pytest

from http.server import BaseHTTPRequestHandler, HTTPServer

from ansible_collections.dataprotection.databases.plugins.module_utils import engines, snapshots
from ansible_collections.dataprotection.databases.plugins.module_utils.backup import BackupRequest, run_backup
from ansible_collections.dataprotection.databases.plugins.module_utils.engines import milvus, nebula
from ansible_collections.dataprotection.databases.plugins.module_utils.errors import ConfigError, EngineError
from ansible_collections.dataprotection.databases.plugins.module_utils.repository import LocalRepo

FIXTURE = os.path.join(os.path.dirname(__file__), "fixtures", "nebula", "nebula-console")
NEBULA_PASSWORD = "s3cret-nebula-pw"
MILVUS_PASSWORD = "s3cret-milvus-pw"


# Shared: repository and recording provider --------------------------------


def committed(spec, cluster):
    return [info.key for info in LocalRepo({"path": spec["path"]}).list("%s/backups/" % cluster)]


@pytest.fixture
def provider(monkeypatch):
    """A remote provider that records its calls; ``seen`` is filled by the test's probe at create time."""
    calls = []
    probe = {"fn": lambda: None}

    def create(plan, backup_id, labels=None, timeout=None, taken=None):
        calls.append(("create", probe["fn"]()))
        taken()
        return [{"provider": "recording", "id": "snap-1", "source": "vol-1", "created": "now"}]

    def delete(record):
        calls.append(("delete", record["id"]))
        return True

    module = types.SimpleNamespace(PROVIDER="recording", LOCAL=False, plan=lambda spec, data_dir=None: {"provider": "recording"},
                                   create=create, delete=delete)
    monkeypatch.setitem(snapshots.REGISTRY, "recording", module)
    return types.SimpleNamespace(calls=calls, probe=probe)


def restore_request(owner=None, force=False, start=False):
    options = {"owner": owner} if owner else {}
    if start:
        options["start"] = True
    return types.SimpleNamespace(options=options, force=force, engine="x")


def me():
    return pwd.getpwuid(os.geteuid()).pw_name


# Nebula ---------------------------------------------------------------------


@pytest.fixture
def console(tmp_path, monkeypatch):
    """The fake nebula-console on PATH (made executable here) and its state file."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    target = bin_dir / "nebula-console"
    with open(FIXTURE) as handle:
        body = handle.read().split("\n", 1)[1]
    target.write_text("#!%s\n%s" % (sys.executable, body))
    os.chmod(str(target), 0o755)
    state_file = tmp_path / "nebula-state.json"
    state = {"spaces": ["basketballplayer", "docs"], "password": NEBULA_PASSWORD, "version": "3.6.0",
             "hosts": [{"host": "storaged0", "port": 9779, "status": "ONLINE"}], "roles": {}, "running_polls": 1}
    state_file.write_text(json.dumps(state))
    monkeypatch.setenv("PATH", "%s%s%s" % (bin_dir, os.pathsep, os.environ.get("PATH", "")))
    monkeypatch.setenv("NEBULA_FAKE_STATE", str(state_file))
    monkeypatch.setattr(nebula, "POLL_SECONDS", 0.01)
    monkeypatch.setitem(engines.REGISTRY, "nebula", nebula)

    class Console(object):
        def read(self):
            return json.loads(state_file.read_text())

        def update(self, **changes):
            data = self.read()
            data.update(changes)
            state_file.write_text(json.dumps(data))

    return Console()


def nebula_request(user="root", password=NEBULA_PASSWORD, **options):
    return BackupRequest("nebula", "volume-snapshot", "graph", connection={"user": user, "password": password},
                         snapshot={"provider": "recording"}, options=options)


def test_nebula_parses_console_tables():
    text = ("(root@nebula) [(none)]> SHOW SPACES\n+--------------------+\n| Name               |\n+--------------------+\n"
            "| \"basketballplayer\" |\n| \"a | b\"            |\n+--------------------+\nGot 2 rows (time spent 1ms/2ms)\n\nTue\n\n"
            "(root@nebula) [(none)]> USE nope\n[ERROR (-1005)]: SpaceNotFound: SpaceName `nope`\n\n\n")
    results = nebula.parse_output(text, ["SHOW SPACES", "USE nope"])
    assert results[0]["columns"] == ["Name"] and [r["Name"] for r in results[0]["rows"]] == ["basketballplayer", "a | b"]
    assert results[1]["error_code"] == -1005 and "SpaceNotFound" in results[1]["error"]
    assert nebula.parse_output("garbage", ["SHOW SPACES"]) is None


def test_nebula_plan_lists_spaces_hosts_and_roles(console):
    plan = nebula.plan_snapshot(nebula_request())
    assert plan["spaces"] == ["basketballplayer", "docs"] and plan["storage_hosts"] == ["storaged0:9779"]
    assert plan["server_version"] == "3.6.0" and plan["data_dir"] is None and "identity" not in plan
    assert any("command line" in w for w in plan["warnings"]) and any("nebula-metad" in w for w in plan["warnings"])
    argv = console.read()["calls"][0]
    assert argv[1:9] == ["-addr", "127.0.0.1", "-port", "9669", "-u", "root", "-p", NEBULA_PASSWORD] and argv[9] == "-e"
    # The plan submits nothing.
    assert not console.read().get("jobs")


def test_nebula_plan_warns_of_several_storage_hosts(console):
    console.update(hosts=[{"host": "storaged0", "port": 9779, "status": "ONLINE"}, {"host": "storaged1", "port": 9779, "status": "ONLINE"}])
    plan = nebula.plan_snapshot(nebula_request())
    assert any("2 storage hosts" in w and "not at one point in time" in w for w in plan["warnings"])


def test_nebula_plan_refuses_a_user_without_a_job_role(console):
    console.update(roles={"basketballplayer": {"alice": "ADMIN"}, "docs": {"alice": "GUEST"}})
    with pytest.raises(EngineError) as caught:
        nebula.plan_snapshot(nebula_request(user="alice"))
    assert "docs" in caught.value.message and "basketballplayer" not in caught.value.message.split("spaces")[1].split("of Nebula")[0]
    assert "GRANT ROLE ADMIN" in caught.value.hint and "GUEST" in caught.value.message
    console.update(roles={"basketballplayer": {"alice": "ADMIN"}, "docs": {"alice": "ADMIN"}})
    assert nebula.plan_snapshot(nebula_request(user="alice"))["spaces"] == ["basketballplayer", "docs"]


def test_nebula_plan_refuses_an_offline_storage_host(console):
    console.update(hosts=[{"host": "storaged0", "port": 9779, "status": "OFFLINE"}])
    with pytest.raises(EngineError, match="storaged0:9779 \\(OFFLINE\\)"):
        nebula.plan_snapshot(nebula_request())


def test_nebula_unreachable_and_bad_password_never_show_the_password(console):
    with pytest.raises(EngineError) as caught:
        nebula.plan_snapshot(nebula_request(password="wrong-pw-123"))
    # The fake, like old consoles, prints the password in its login error: it is scrubbed.
    assert "could not connect" in caught.value.message and "wrong-pw-123" not in str(caught.value) and nebula.HIDDEN in caught.value.message
    console.update(down=True)
    with pytest.raises(EngineError) as caught:
        nebula.plan_snapshot(nebula_request())
    assert "connection refused" in caught.value.message and NEBULA_PASSWORD not in str(caught.value)


def test_nebula_needs_a_password():
    with pytest.raises(ConfigError, match="connection.password"):
        nebula.Connection({"user": "root"})


def test_nebula_backup_flushes_every_space_before_the_snapshot(console, provider, spec):
    provider.probe["fn"] = console.read
    result = run_backup(spec, nebula_request())
    (what, seen), = provider.calls
    # At the snapshot, both FLUSH jobs had been submitted and polled until FINISHED (RUNNING first).
    assert what == "create" and sorted(j["space"] for j in seen["jobs"].values()) == ["basketballplayer", "docs"]
    assert all(j["polls"] == 2 for j in seen["jobs"].values())
    manifest = result["manifest"]
    assert manifest["consistency"] == "crash" and manifest["flushed"] is True and manifest["engine_version"] == "3.6.0"
    assert manifest["flushed_spaces"] == ["basketballplayer", "docs"]
    assert [j["job_id"] for j in manifest["flush_jobs"]] == [40, 41] and manifest["identity"] is None
    assert result["backup"]["consistency"] == "crash" and any("crash-consistent" in w for w in result["warnings"])
    assert NEBULA_PASSWORD not in json.dumps(result, default=str)
    assert any(key.endswith("/manifest.json") for key in committed(spec, "graph"))


def test_nebula_failed_flush_job_refuses_the_backup_before_any_snapshot(console, provider, spec):
    console.update(fail_job=True)
    with pytest.raises(EngineError) as caught:
        run_backup(spec, nebula_request())
    assert "FLUSH job 40 of graph space basketballplayer" in caught.value.message and "ended FAILED" in caught.value.message
    assert "storaged0 FAILED" in caught.value.message and NEBULA_PASSWORD not in str(caught.value)
    assert provider.calls == [] and committed(spec, "graph") == []


def test_nebula_flush_refused_for_missing_role_names_the_grant(console, provider, spec):
    # The plan saw ADMIN, the role was revoked before the flush: the job is refused, nothing is snapshotted.
    console.update(roles={"basketballplayer": {"alice": "ADMIN"}, "docs": {"alice": "ADMIN"}})
    request = nebula_request(user="alice")
    plan = nebula.plan_snapshot(request)
    console.update(roles={})
    with pytest.raises(EngineError) as caught:
        with nebula.quiesce(request, plan):
            pass
    assert "may not run SUBMIT JOB FLUSH in space basketballplayer" in caught.value.message and "GRANT ROLE ADMIN" in caught.value.hint
    assert provider.calls == []


def test_nebula_flush_timeout(console):
    console.update(running_polls=1000)
    request = nebula_request(flush_timeout=0)
    plan = nebula.plan_snapshot(request)
    with pytest.raises(EngineError, match="still RUNNING"):
        with nebula.quiesce(request, plan):
            pass


def test_nebula_restore_finish_on_a_temp_dir(tmp_path):
    target = tmp_path / "data"
    target.mkdir()
    (target / "nebula").mkdir()
    (target / "nebula" / "CURRENT").write_text("x")
    manifest = {"backup_id": "b1", "engine_version": "3.6.0", "flushed_spaces": ["docs"]}
    with pytest.raises(ConfigError, match="not empty"):
        nebula.plan_snapshot_restore(None, manifest, restore_request(), None, str(target))
    plan = nebula.plan_snapshot_restore(None, manifest, restore_request(owner=me(), force=True), None, str(target))
    assert plan["owner"] == me() and plan["flushed_spaces"] == ["docs"]
    with pytest.raises(ConfigError, match="start is not offered"):
        nebula.plan_snapshot_restore(None, manifest, restore_request(start=True), None, str(target))
    done = nebula.finish_snapshot_restore(None, manifest, restore_request(owner=me()), None, str(target))
    assert done == {"data_dir": str(target), "owner": me()}
    assert os.stat(str(target / "nebula" / "CURRENT")).st_uid == os.geteuid()
    assert "b1" in nebula.remote_restore_next(manifest, None) and "nebula-metad" in nebula.remote_restore_next(manifest, None)


# Milvus ---------------------------------------------------------------------


class MilvusState(object):
    def __init__(self):
        self.token = "root:%s" % MILVUS_PASSWORD
        self.collections = {"default": ["books", "films"], "other": ["songs"]}
        self.requests = []
        self.deny = set()
        self.fail_flush = None


def make_handler(state):
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args):
            pass

        def reply(self, payload, status=200):
            body = json.dumps(payload).encode("utf-8")
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_POST(self):  # noqa: N802 (http.server's name)
            length = int(self.headers.get("Content-Length") or 0)
            body = json.loads(self.rfile.read(length).decode("utf-8") or "{}")
            state.requests.append((self.path, body))
            auth = self.headers.get("Authorization") or ""
            if auth != "Bearer %s" % state.token:
                # Echoes what it got, so the test proves the engine scrubs it.
                return self.reply({"code": 1800, "message": "user hasn't authenticated: %s" % auth})
            if self.path in state.deny:
                return self.reply({"code": 65535, "message": "PrivilegeFlush: permission deny to root in the `default` database"})
            if self.path == milvus.LIST_PATH:
                database = body.get("dbName", "default")
                if database not in state.collections:
                    return self.reply({"code": 800, "message": "database not found[database=%s]" % database})
                return self.reply({"code": 0, "data": state.collections[database]})
            if self.path == milvus.FLUSH_PATH:
                if body.get("collectionName") not in state.collections.get(body.get("dbName", "default"), []):
                    return self.reply({"code": 100, "message": "collection not found[collection=%s]" % body.get("collectionName")})
                if state.fail_flush:
                    return self.reply({"code": 65535, "message": state.fail_flush})
                return self.reply({"code": 0, "data": {}})
            return self.reply({"code": 404, "message": "page not found"}, status=404)

    return Handler


@pytest.fixture
def milvus_server(monkeypatch):
    state = MilvusState()
    server = HTTPServer(("127.0.0.1", 0), make_handler(state))
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.daemon = True
    thread.start()
    state.port = server.server_address[1]
    monkeypatch.setitem(engines.REGISTRY, "milvus", milvus)
    yield state
    server.shutdown()
    server.server_close()
    thread.join(10)


def milvus_request(state, password=MILVUS_PASSWORD, databases=None, port=None):
    connection = {"host": "127.0.0.1", "port": port or state.port, "user": "root", "password": password}
    if databases:
        connection["databases"] = databases
    return BackupRequest("milvus", "volume-snapshot", "vectors", connection=connection, snapshot={"provider": "recording"})


def test_milvus_plan_lists_collections_read_only(milvus_server):
    plan = milvus.plan_snapshot(milvus_request(milvus_server, databases=["default", "other"]))
    assert plan["collections"] == {"default": ["books", "films"], "other": ["songs"]} and "identity" not in plan
    assert [p for p, b in milvus_server.requests] == [milvus.LIST_PATH, milvus.LIST_PATH]
    assert [b for p, b in milvus_server.requests] == [{"dbName": "default"}, {"dbName": "other"}]
    assert any("etcd" in w and "object storage" in w for w in plan["warnings"])


def test_milvus_plan_refuses_a_denied_listing(milvus_server):
    milvus_server.deny.add(milvus.LIST_PATH)
    with pytest.raises(EngineError) as caught:
        milvus.plan_snapshot(milvus_request(milvus_server))
    assert "denies" in caught.value.message and "Flush" in caught.value.hint


def test_milvus_bad_credentials_never_show_the_password(milvus_server):
    with pytest.raises(EngineError) as caught:
        milvus.plan_snapshot(milvus_request(milvus_server, password="wrong-pw-456"))
    assert "did not accept user root" in caught.value.message
    assert "wrong-pw-456" not in str(caught.value) and milvus.HIDDEN in caught.value.message


def test_milvus_unreachable_server(milvus_server):
    import socket  # pylint: disable=import-outside-toplevel

    probe = socket.socket()
    probe.bind(("127.0.0.1", 0))
    port = probe.getsockname()[1]
    probe.close()
    with pytest.raises(EngineError) as caught:
        milvus.plan_snapshot(milvus_request(milvus_server, port=port))
    assert "cannot reach Milvus at http://127.0.0.1:%d" % port in caught.value.message and MILVUS_PASSWORD not in str(caught.value)


def test_milvus_backup_flushes_every_collection_before_the_snapshot(milvus_server, provider, spec):
    provider.probe["fn"] = lambda: [b for p, b in milvus_server.requests if p == milvus.FLUSH_PATH]
    result = run_backup(spec, milvus_request(milvus_server, databases=["default", "other"]))
    (what, flushed), = provider.calls
    assert what == "create" and flushed == [{"dbName": "default", "collectionName": "books"}, {"dbName": "default", "collectionName": "films"},
                                            {"dbName": "other", "collectionName": "songs"}]
    manifest = result["manifest"]
    assert manifest["consistency"] == "crash" and manifest["flushed"] is True
    assert manifest["flushed_collections"] == [{"database": "default", "collection": "books"}, {"database": "default", "collection": "films"},
                                               {"database": "other", "collection": "songs"}]
    assert MILVUS_PASSWORD not in json.dumps(result, default=str)
    assert any(key.endswith("/manifest.json") for key in committed(spec, "vectors"))


def test_milvus_failed_flush_refuses_the_backup_before_any_snapshot(milvus_server, provider, spec):
    milvus_server.fail_flush = "segment flush timeout"
    with pytest.raises(EngineError) as caught:
        run_backup(spec, milvus_request(milvus_server))
    assert "segment flush timeout" in caught.value.message and "books" in caught.value.message
    assert provider.calls == [] and committed(spec, "vectors") == []


def test_milvus_denied_flush_refuses_the_backup(milvus_server, provider, spec):
    milvus_server.deny.add(milvus.FLUSH_PATH)
    with pytest.raises(EngineError, match="denies user root"):
        run_backup(spec, milvus_request(milvus_server))
    assert provider.calls == []


def test_milvus_token_and_user_are_exclusive():
    with pytest.raises(ConfigError, match="exclusive"):
        milvus.Connection({"token": "key", "user": "root"})
    assert milvus.Connection({"token": "key"})._headers()["Authorization"] == "Bearer key"  # pylint: disable=protected-access


def test_milvus_restore_finish_on_a_temp_dir(tmp_path):
    target = tmp_path / "volumes"
    target.mkdir()
    manifest = {"backup_id": "b2", "flushed_collections": [{"database": "default", "collection": "books"}]}
    plan = milvus.plan_snapshot_restore(None, manifest, restore_request(owner=me()), None, str(target))
    assert plan["flushed_collections"] == manifest["flushed_collections"] and plan["owner"] == me()
    (target / "etcd").mkdir()
    with pytest.raises(ConfigError, match="not empty"):
        milvus.plan_snapshot_restore(None, manifest, restore_request(), None, str(target))
    assert milvus.plan_snapshot_restore(None, manifest, restore_request(), None, str(target), mounted=True)["data_dir"] == str(target)
    with pytest.raises(ConfigError, match="point-in-time"):
        milvus.plan_snapshot_restore(None, manifest, restore_request(), [], str(target))
    done = milvus.finish_snapshot_restore(None, manifest, restore_request(owner=me()), None, str(target))
    assert done == {"data_dir": str(target), "owner": me()} and "etcd" in milvus.remote_restore_next(manifest, None)
