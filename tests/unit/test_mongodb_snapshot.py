# -*- coding: utf-8 -*-
# Copyright: contributors to the dataprotection.databases collection
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""MongoDB's volume-snapshot hooks (engines/mongodb.py) against a fake mongosh.

No MongoDB can run on the test machines: mongosh is replaced by
fixtures/mongodb/mongosh, which answers only the exact scripts the engine
sends, with replies shaped like MongoDB's documented ones, keeps the server's
fsync lock count in a state file and logs every run (argv, the names of the
DP_MONGO_* variables).  The snapshot provider is a recorder that logs when it
snapshots and what the lock count was then.  What these tests prove is the
engine's logic (the order of lock, snapshot and unlock, one unlock per lock on
every path, the refusals); not that a real mongod answers the same.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json
import os
import pwd
import shutil
import stat
import subprocess
import sys
import types

import pytest

from ansible_collections.dataprotection.databases.plugins.module_utils import engines, snapshots
from ansible_collections.dataprotection.databases.plugins.module_utils.backup import BackupRequest, run_backup
from ansible_collections.dataprotection.databases.plugins.module_utils.engines import mongodb
from ansible_collections.dataprotection.databases.plugins.module_utils.errors import ConfigError, EngineError
from ansible_collections.dataprotection.databases.plugins.module_utils.repository import LocalRepo
from ansible_collections.dataprotection.databases.plugins.module_utils.restore import RestoreRequest

FAKE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "fixtures", "mongodb", "mongosh")
PASSWORD = "s3cret-Pa55word"
ME = pwd.getpwuid(os.getuid()).pw_name


class Server(object):
    """The fake server's switches, lock count and run log."""

    def __init__(self, tmp_path, monkeypatch):
        self.dir = tmp_path
        self.monkeypatch = monkeypatch
        self.bin_dir = tmp_path / "bin"
        self.bin_dir.mkdir()
        with open(FAKE) as handle:
            body = handle.read().split("\n", 1)[1]
        path = self.bin_dir / "mongosh"
        path.write_text("#!%s\n%s" % (sys.executable, body))
        path.chmod(0o755)
        self.log_path = tmp_path / "mongosh.log"
        self.log_path.write_text("")
        self.state_path = tmp_path / "state.json"
        self.lock_count = 0
        self.db_path = tmp_path / "dbpath"
        self.db_path.mkdir()
        for name, value in (("FAKE_MONGOSH_LOG", self.log_path), ("FAKE_MONGOSH_STATE", self.state_path),
                            ("FAKE_MONGOSH_PASSWORD", PASSWORD), ("FAKE_MONGOSH_DBPATH", self.db_path)):
            monkeypatch.setenv(name, str(value))
        self.mode()

    def mode(self, *switches):
        self.monkeypatch.setenv("FAKE_MONGOSH_MODE", ",".join(switches))

    @property
    def lock_count(self):
        return json.loads(self.state_path.read_text())["lock_count"]

    @lock_count.setter
    def lock_count(self, value):
        self.state_path.write_text(json.dumps({"lock_count": value}))

    def runs(self):
        return [json.loads(line) for line in self.log_path.read_text().splitlines() if line]

    def events(self):
        return [r.get("script") or r.get("event") for r in self.runs()]

    def connection(self, **extra):
        params = {"host": "db1.example.net", "user": "backup", "password": PASSWORD, "bin_dir": str(self.bin_dir)}
        params.update(extra)
        return params


@pytest.fixture
def server(tmp_path, monkeypatch):
    monkeypatch.setitem(engines.REGISTRY, "mongodb", mongodb)
    return Server(tmp_path, monkeypatch)


@pytest.fixture
def provider(server, monkeypatch):
    """A remote snapshot provider that logs into the fake's run log, with the lock count at the moment of its snapshot."""
    fail = {}

    def create(plan, backup_id, labels=None, timeout=None, taken=None):
        with open(str(server.log_path), "a") as log:
            log.write(json.dumps({"event": "snapshot", "lock_count": server.lock_count}) + "\n")
        if "create" in fail:
            raise fail["create"]
        taken()
        return [{"provider": "recording", "id": "snap-1", "source": "vol-1", "created": "now"}]

    module = types.SimpleNamespace(PROVIDER="recording", LOCAL=False, plan=lambda spec, data_dir=None: {"provider": "recording"},
                                   create=create, delete=lambda record: True, fail=fail)
    monkeypatch.setitem(snapshots.REGISTRY, "recording", module)
    return module


def backup_request(server, **extra):
    return BackupRequest("mongodb", "volume-snapshot", "orders", connection=server.connection(**extra), snapshot={"provider": "recording"})


# The plan -------------------------------------------------------------------


def test_plan_of_a_replica_set_secondary(server):
    plan = mongodb.plan_snapshot(backup_request(server))
    assert plan["identity"] == "replset:rs0" and plan["replica_set"] == "rs0" and plan["member_state"] == "secondary"
    assert plan["data_dir"] == str(server.db_path) and plan["server_version"] == "7.0.14" and plan["storage_engine"] == "wiredTiger"
    assert plan["member"] == "db1.example.net:27017" and plan["quiesce"] == "fsyncLock ... fsyncUnlock" and plan["warnings"] == []
    # Read-only: one mongosh run, no lock taken.
    assert server.events() == ["plan"] and server.lock_count == 0


def test_plan_of_a_standalone(server):
    server.mode("standalone")
    plan = mongodb.plan_snapshot(backup_request(server))
    assert plan["identity"] == "standalone:db1.example.net:27017" and plan["member_state"] == "standalone" and plan["replica_set"] is None
    assert any("no oplog" in w for w in plan["warnings"])


@pytest.mark.parametrize("switch", ["mongos", "shardsvr"])
def test_plan_refuses_sharded_clusters(server, switch):
    server.mode(switch)
    with pytest.raises(EngineError, match="sharded clusters are not supported yet"):
        mongodb.plan_snapshot(backup_request(server))


def test_plan_refuses_a_user_without_fsync_naming_the_role(server):
    server.mode("no_fsync_privilege")
    with pytest.raises(EngineError) as caught:
        mongodb.plan_snapshot(backup_request(server))
    assert "fsync and unlock" in caught.value.message and "backup" in caught.value.message
    assert "hostManager" in caught.value.hint and "grantRolesToUser('backup'" in caught.value.hint


def test_plan_without_access_control_warns(server):
    server.mode("noauth")
    plan = mongodb.plan_snapshot(backup_request(server, user=None, password=None))
    assert any("does not enforce access control" in w for w in plan["warnings"])
    assert server.runs()[0]["env"] == ["DP_MONGO_AUTH_DB", "DP_MONGO_PASSWORD", "DP_MONGO_USER"]


@pytest.mark.parametrize("switch, password, text", [
    ("auth_fail", PASSWORD, "refused user backup: wrong user name or password"),
    ("", "wrong", "refused user backup: wrong user name or password"),
    ("unreachable", PASSWORD, "cannot reach MongoDB at db1.example.net:27017"),
])
def test_plan_maps_connection_failures(server, switch, password, text):
    server.mode(switch)
    with pytest.raises(EngineError, match=text):
        mongodb.plan_snapshot(backup_request(server, password=password))


def test_the_password_is_never_on_a_command_line(server, provider, spec):
    run_backup(spec, backup_request(server))
    runs = server.runs()
    scripts = [r for r in runs if r.get("script")]
    assert [r["script"] for r in scripts] == ["plan", "probe", "lock", "unlock"]
    for record in scripts:
        assert not any(PASSWORD in arg for arg in record["argv"])
        assert "DP_MONGO_PASSWORD" in record["env"]
        uri = [a for a in record["argv"] if a.startswith("mongodb://")][0]
        assert "@" not in uri and uri.startswith("mongodb://db1.example.net:27017/admin?directConnection=true")


def test_local_plan_needs_the_dbpath_on_this_host(server):
    with pytest.raises(EngineError, match="is not on this host"):
        mongodb.plan_snapshot(backup_request(server), local=True)
    (server.db_path / "WiredTiger").write_text("WiredTiger\nWiredTiger 11.2.0\n")
    elsewhere = server.dir / "journal-volume"
    elsewhere.mkdir()
    os.symlink(str(elsewhere), str(server.db_path / "journal"))
    with pytest.raises(EngineError, match="journal of dbPath .* links out of it"):
        mongodb.plan_snapshot(backup_request(server), local=True)
    os.unlink(str(server.db_path / "journal"))
    (server.db_path / "journal").mkdir()
    assert mongodb.plan_snapshot(backup_request(server), local=True)["journal"]["inside_data_dir"] is True


# The backup -----------------------------------------------------------------


def test_backup_locks_snapshots_then_unlocks(server, provider, spec):
    result = run_backup(spec, backup_request(server))
    assert server.events() == ["plan", "probe", "lock", "snapshot", "unlock"]
    assert [r["lock_count"] for r in server.runs() if r.get("event")] == [1]
    assert server.lock_count == 0
    manifest = result["manifest"]
    assert manifest["consistency"] == "application" and manifest["engine"] == "mongodb" and manifest["engine_version"] == "7.0.14"
    assert manifest["positions"] == {"oplog_ts": {"t": 1717243200, "i": 7}, "term": 5, "last_write_date": "2024-06-01T12:00:00.000Z"}
    assert manifest["identity"] == "replset:rs0" and manifest["replica_set"] == "rs0" and manifest["data_dir"] == str(server.db_path)
    assert manifest["fsync_lock"] == {"lock_count": 1, "other_locks": 0, "lock_count_after": 0}
    assert manifest["snapshots"][0]["id"] == "snap-1" and manifest["end_time"]


def test_a_failed_snapshot_releases_the_lock(server, provider, spec):
    provider.fail["create"] = EngineError("cannot snapshot vol-1")
    with pytest.raises(EngineError, match="cannot snapshot vol-1"):
        run_backup(spec, backup_request(server))
    assert server.events() == ["plan", "probe", "lock", "snapshot", "unlock"]
    assert server.lock_count == 0


def test_someone_elses_lock_is_not_released(server, provider, spec):
    server.lock_count = 1
    result = run_backup(spec, backup_request(server))
    assert [r["lock_count"] for r in server.runs() if r.get("event")] == [2]
    assert server.lock_count == 1
    assert result["manifest"]["fsync_lock"] == {"lock_count": 2, "other_locks": 1, "lock_count_after": 1}
    assert any("already fsync-locked by someone else" in w for w in result["warnings"])


def test_someone_elses_lock_stays_when_the_snapshot_fails(server, provider, spec):
    server.lock_count = 1
    provider.fail["create"] = EngineError("cannot snapshot vol-1")
    with pytest.raises(EngineError):
        run_backup(spec, backup_request(server))
    assert server.lock_count == 1 and server.events().count("unlock") == 1


def test_an_unlock_that_fails_names_the_manual_command(server, provider, spec):
    server.mode("unlock_fails")
    with pytest.raises(EngineError) as caught:
        run_backup(spec, backup_request(server))
    assert "could not be released" in caught.value.message and "db.fsyncUnlock()" in caught.value.hint
    # One attempt only: a second could release someone else's lock if the first went through unseen.
    assert server.events().count("unlock") == 1 and server.lock_count == 1
    assert list(LocalRepo({"path": spec["path"]}).list("orders/backups/")) == []


def test_an_unlock_that_fails_after_a_failed_snapshot_is_reported_on_the_error(server, provider, spec):
    server.mode("unlock_fails")
    provider.fail["create"] = EngineError("cannot snapshot vol-1")
    with pytest.raises(EngineError) as caught:
        run_backup(spec, backup_request(server))
    assert caught.value.message.startswith("cannot snapshot vol-1; the fsync lock on db1.example.net:27017 could not be released")
    assert "db.fsyncUnlock()" in caught.value.message and caught.value.details["fsync_lock"]
    assert server.lock_count == 1


def test_a_lock_without_answer_is_released_when_it_can_only_be_ours(server, provider, spec):
    server.mode("lock_no_answer")
    with pytest.raises(EngineError, match="connection 4 to 127.0.0.1:27017 closed"):
        run_backup(spec, backup_request(server))
    assert server.events() == ["plan", "probe", "lock", "probe", "unlock"] and server.lock_count == 0


def test_a_lock_without_answer_over_someone_elses_is_left_and_said(server, provider, spec):
    server.lock_count = 1
    server.mode("lock_no_answer")
    with pytest.raises(EngineError) as caught:
        run_backup(spec, backup_request(server))
    assert "cannot be told" in caught.value.message and "db.fsyncUnlock()" in caught.value.message
    assert "unlock" not in server.events() and server.lock_count == 2


def test_check_mode_only_plans(server, provider, spec):
    result = run_backup(spec, backup_request(server), check_mode=True)
    assert server.events() == ["plan"] and result["plan"]["quiesce"] == "fsyncLock ... fsyncUnlock" and server.lock_count == 0


# The restore ----------------------------------------------------------------


def restore_request(target, **options):
    return RestoreRequest("mongodb", "orders", target, backup_id="b1", force=options.pop("force", False), options=options)


def dbpath(path):
    path.mkdir()
    for name, text in (("WiredTiger", "WiredTiger\n"), ("WiredTiger.lock", "WiredTiger lock file\n"), ("mongod.lock", "4242\n"),
                       ("collection-0-1.wt", "x"), ("storage.bson", "x")):
        (path / name).write_text(text)
    (path / "journal").mkdir()
    return str(path)


def test_finish_removes_mongod_lock_and_gives_the_files_to_the_owner(server, tmp_path, monkeypatch):
    monkeypatch.setattr(mongodb.hostfiles, "pid_alive", lambda pid: False)
    data_dir = dbpath(tmp_path / "restored")
    manifest = {"backup_id": "b1", "replica_set": "rs0"}
    done = mongodb.finish_snapshot_restore(None, manifest, restore_request(data_dir, owner=ME), None, data_dir)
    assert done["removed"] == ["mongod.lock"] and not os.path.exists(os.path.join(data_dir, "mongod.lock"))
    assert os.path.exists(os.path.join(data_dir, "WiredTiger.lock")) and os.path.exists(os.path.join(data_dir, "collection-0-1.wt"))
    assert os.stat(data_dir).st_uid == os.getuid() and stat.S_IMODE(os.stat(data_dir).st_mode) == 0o750
    assert done["owner"] == ME and "replica set rs0" in done["note"]


def test_restore_plan_refusals(server, tmp_path, monkeypatch):
    data_dir = dbpath(tmp_path / "target")
    with pytest.raises(ConfigError, match="start is not offered"):
        mongodb.plan_snapshot_restore(None, {"backup_id": "b1"}, restore_request(data_dir, owner=ME, start=True), None, data_dir)
    with pytest.raises(ConfigError, match="is not empty"):
        mongodb.plan_snapshot_restore(None, {"backup_id": "b1"}, restore_request(data_dir, owner=ME), None, data_dir)
    with pytest.raises(ConfigError, match="holds no MongoDB dbPath"):
        mongodb.plan_snapshot_restore(None, {"backup_id": "b1"}, restore_request(str(tmp_path), owner=ME), None, str(tmp_path), mounted=True)
    with pytest.raises(ConfigError, match="owner 'nosuchuser-dp' is not a user"):
        mongodb.plan_snapshot_restore(None, {"backup_id": "b1"}, restore_request(data_dir, owner="nosuchuser-dp", force=True), None, data_dir)
    planned = mongodb.plan_snapshot_restore(None, {"backup_id": "b1"}, restore_request(data_dir, owner=ME, force=True), None, data_dir)
    assert planned == {"data_dir": data_dir, "owner": ME, "start": False, "remove": ["mongod.lock"]}


def test_a_running_mongod_on_the_target_is_refused(tmp_path):
    data_dir = dbpath(tmp_path / "target")
    sleeper = str(tmp_path / "mongod")
    shutil.copy(shutil.which("sleep"), sleeper)
    proc = subprocess.Popen([sleeper, "60"])
    try:
        (tmp_path / "target" / "mongod.lock").write_text("%d\n" % proc.pid)
        with pytest.raises(ConfigError, match="is in use: mongod \\(pid %d\\) runs on it" % proc.pid):
            mongodb.plan_snapshot_restore(None, {"backup_id": "b1"}, restore_request(data_dir, owner=ME, force=True), None, data_dir)
        with pytest.raises(ConfigError, match="is in use"):
            mongodb.plan_snapshot_restore(None, {"backup_id": "b1"}, restore_request(data_dir, owner=ME), None, data_dir, mounted=True)
    finally:
        proc.kill()
        proc.wait()
    # A pid from the source host's mongod.lock that is some other process here does not count.
    (tmp_path / "target" / "mongod.lock").write_text("%d\n" % os.getpid())
    assert mongodb.plan_snapshot_restore(None, {"backup_id": "b1"}, restore_request(data_dir, owner=ME), None, data_dir, mounted=True)["owner"] == ME


def test_remote_restore_next_names_the_backup_and_the_lock_file():
    text = mongodb.remote_restore_next({"backup_id": "orders-volume-snapshot-20240601T120000Z"}, None)
    assert "orders-volume-snapshot-20240601T120000Z" in text and "mongod.lock" in text and "source: mounted" in text


def test_extended_json_is_decoded():
    doc = {"ts": {"$timestamp": {"t": 5, "i": 2}}, "n": {"$numberLong": "7"}, "d": {"$date": "2024-06-01T00:00:00Z"}, "l": [{"$oid": "ab"}]}
    assert mongodb.from_ejson(doc) == {"ts": {"t": 5, "i": 2}, "n": 7, "d": "2024-06-01T00:00:00Z", "l": ["ab"]}
