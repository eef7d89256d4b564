# -*- coding: utf-8 -*-
# Copyright: contributors to the dataprotection.databases collection
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The engine-neutral volume-snapshot flow (snapshot_backup.py) with a recording engine and provider.

The engine and the provider here are stand-ins that record the order of the
calls and fail where a test says: they prove the flow's guarantees (the hold
is released as soon as the provider says the point in time is fixed, it is
aborted on every failure path, the snapshots of a failed backup are deleted,
nothing is committed).  The real engines and providers are tested against
real servers and file systems in tests/integration/test_snapshot_*.py.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import io
import types

import pytest

from ansible_collections.dataprotection.databases.plugins.module_utils import engines, snapshot_backup, snapshots
from ansible_collections.dataprotection.databases.plugins.module_utils.backup import BackupRequest, run_backup
from ansible_collections.dataprotection.databases.plugins.module_utils.errors import ConfigError, EngineError
from ansible_collections.dataprotection.databases.plugins.module_utils.quiesce import Quiesce
from ansible_collections.dataprotection.databases.plugins.module_utils.repository import LocalRepo


class Recorder(object):
    def __init__(self):
        self.calls = []
        self.fail = {}

    def __call__(self, name):
        self.calls.append(name)
        if name in self.fail:
            raise self.fail[name]


@pytest.fixture
def log():
    return Recorder()


@pytest.fixture
def fake(monkeypatch, log):
    """A 'prometheus' engine and a 'recording' provider that log their calls into ``log``."""

    class Hold(Quiesce):
        consistency = "application"

        def hold(self):
            log("hold")

        def _release(self):
            log("release")

        def abort(self):
            log("abort")

        def close(self):
            log("close")

    engine = types.SimpleNamespace(
        METHODS=("volume-snapshot",),
        plan_snapshot=lambda request, local=False: log("plan_snapshot") or {"identity": "x", "data_dir": None, "warnings": []},
        quiesce=lambda request, plan: Hold(),
        snapshot_facts=lambda request, ctx, held: log("facts") or ctx.store("extra", io.BytesIO(b"facts")) and {"positions": {"n": 1}},
    )

    def create(plan, backup_id, labels=None, timeout=None, taken=None):
        log("create")
        taken()
        log("wait")
        if "wait" in log.fail:
            raise log.fail["wait"]
        return [{"provider": "recording", "id": "snap-1", "source": "vol-1", "created": "now"}]

    def delete(record):
        log("delete %s" % record["id"])
        if "delete" in log.fail:
            raise log.fail["delete"]
        return True

    provider = types.SimpleNamespace(PROVIDER="recording", LOCAL=False, plan=lambda spec, data_dir=None: {"provider": "recording"},
                                     create=create, delete=delete)
    monkeypatch.setitem(engines.REGISTRY, "prometheus", engine)
    monkeypatch.setitem(snapshots.REGISTRY, "recording", provider)
    return engine, provider


def request():
    return BackupRequest("prometheus", "volume-snapshot", "metrics", snapshot={"provider": "recording"})


def committed(spec):
    return [info.key for info in LocalRepo({"path": spec["path"]}).list("metrics/backups/")]


def test_release_comes_when_the_point_in_time_is_fixed(fake, log, spec):
    result = run_backup(spec, request())
    assert log.calls == ["plan_snapshot", "hold", "create", "release", "wait", "close", "facts"]
    manifest = result["manifest"]
    assert manifest["type"] == "snapshot" and manifest["consistency"] == "application" and manifest["snapshots"][0]["id"] == "snap-1"
    assert manifest["positions"] == {"n": 1} and [o["name"] for o in manifest["objects"]] == ["extra"]
    assert any(key.endswith("/manifest.json") for key in committed(spec))


def test_a_failure_after_the_release_deletes_nothing_it_did_not_make(fake, log, spec):
    log.fail["wait"] = EngineError("snapshot never completed")
    with pytest.raises(EngineError, match="never completed"):
        run_backup(spec, request())
    # The provider cleans up what create made; the hold was already released, so there is nothing to abort.
    assert log.calls == ["plan_snapshot", "hold", "create", "release", "wait", "close"]
    assert committed(spec) == []


def test_a_failure_while_held_aborts_and_closes(fake, log, spec):
    log.fail["create"] = EngineError("cannot snapshot")
    with pytest.raises(EngineError, match="cannot snapshot"):
        run_backup(spec, request())
    assert log.calls == ["plan_snapshot", "hold", "create", "abort", "close"]
    assert committed(spec) == []


def test_a_failed_hold_takes_no_snapshot(fake, log, spec):
    log.fail["hold"] = EngineError("lock wait timeout")
    with pytest.raises(EngineError, match="lock wait timeout"):
        run_backup(spec, request())
    assert log.calls == ["plan_snapshot", "hold", "abort", "close"]


def test_a_failure_after_the_snapshot_deletes_it_and_its_objects(fake, log, spec):
    log.fail["facts"] = EngineError("no backup_label")
    with pytest.raises(EngineError, match="no backup_label"):
        run_backup(spec, request())
    assert log.calls[-2:] == ["facts", "delete snap-1"] and committed(spec) == []


def test_a_snapshot_that_cannot_be_deleted_is_named(fake, log, spec):
    log.fail["facts"] = EngineError("no backup_label")
    log.fail["delete"] = EngineError("access denied")
    with pytest.raises(EngineError) as caught:
        run_backup(spec, request())
    assert "snap-1" in caught.value.message and "access denied" in caught.value.message
    assert caught.value.details["snapshots_left"] == ["snap-1"] and "by hand" in caught.value.hint


def test_check_mode_plans_only(fake, log, spec):
    result = run_backup(spec, request(), check_mode=True)
    assert log.calls == ["plan_snapshot"] and result["plan"]["provider"] == "recording" and committed(spec) == []


@pytest.mark.parametrize("snapshot, text", [
    ({"provider": "recording", "stream": True}, "only possible with a provider of this host"),
    ({"provider": "recording", "keep": False}, "would delete the only copy"),
    ({"provider": "recording", "stream": "maybe"}, "must be a boolean"),
    ({"provider": "nonesuch"}, "not implemented"),
])
def test_snapshot_option_refusals(fake, log, spec, snapshot, text):
    with pytest.raises(Exception, match=text):
        run_backup(spec, BackupRequest("prometheus", "volume-snapshot", "metrics", snapshot=snapshot))
    assert "hold" not in log.calls and committed(spec) == []


def test_method_and_option_must_agree():
    with pytest.raises(ConfigError, match="needs the option snapshot"):
        BackupRequest("postgresql", "volume-snapshot", "orders")
    with pytest.raises(ConfigError, match="belongs to method volume-snapshot"):
        BackupRequest("postgresql", "pg-basebackup", "orders", snapshot={"provider": "btrfs"})


@pytest.mark.parametrize("manifest, source, wanted", [
    ({"snapshots": [{"provider": "aws_ebs"}], "objects": []}, "auto", "snapshot"),
    ({"snapshots": [], "objects": [{"name": "files.tar.zst"}]}, "auto", "repository"),
    ({"snapshots": [{"provider": "aws_ebs"}], "objects": [{"name": "files.tar.zst"}]}, "repository", "repository"),
    ({"snapshots": [], "objects": []}, "mounted", "mounted"),
])
def test_choose_source(manifest, source, wanted):
    manifest = dict(manifest, backup_id="b")
    assert snapshot_backup.choose_source(manifest, source) == wanted


@pytest.mark.parametrize("manifest, source, text", [
    ({"snapshots": [{"provider": "aws_ebs"}], "objects": []}, "repository", "no copy of its files"),
    ({"snapshots": [], "objects": [{"name": "files.tar.zst"}]}, "snapshot", "holds no snapshot"),
    ({"snapshots": [], "objects": []}, "auto", "no copy of its files"),
    ({"snapshots": [], "objects": []}, "nowhere", "source must be one of"),
])
def test_choose_source_refusals(manifest, source, text):
    with pytest.raises(ConfigError, match=text):
        snapshot_backup.choose_source(dict(manifest, backup_id="b"), source)


def test_a_local_snapshot_refuses_another_servers_data_directory(tmp_path, monkeypatch):
    """The server's data_directory path exists on this host but holds another PostgreSQL (pg_control's system
    identifier differs): a local snapshot of it would back up the wrong database."""
    import struct  # pylint: disable=import-outside-toplevel

    from ansible_collections.dataprotection.databases.plugins.module_utils.engines import postgresql  # pylint: disable=import-outside-toplevel

    data = tmp_path / "data"
    (data / "global").mkdir(parents=True)
    (data / "PG_VERSION").write_text("15\n")
    (data / "global" / "pg_control").write_bytes(struct.pack("=Q", 7301234567890123456) + b"\0" * 200)
    server = {"version_num": 150004, "version": "15.4", "major": 15, "system_identifier": "7309999999999999999", "wal_level": "replica",
              "in_recovery": False, "timeline": 1, "archive_mode": "off", "archive_command": "", "data_directory": str(data)}
    monkeypatch.setattr(postgresql, "inspect", lambda conn: dict(server))
    monkeypatch.setattr(postgresql.Connection, "query", lambda self, sql, major=None: [["t", "t", "t", "16777216", "0"]])
    request = BackupRequest("postgresql", "volume-snapshot", "orders", snapshot={"provider": "btrfs"})
    with pytest.raises(EngineError, match="another PostgreSQL"):
        postgresql.plan_snapshot(request, local=True)
    assert postgresql.control_system_identifier(str(data)) == "7301234567890123456"
    server["system_identifier"] = "7301234567890123456"
    plan = postgresql.plan_snapshot(request, local=True)
    assert plan["wal_dir"] == str(data / "pg_wal") and plan["data_dir"] == str(data)
    # A remote provider cannot see the host's files: the WAL is read through SQL.
    assert postgresql.plan_snapshot(request, local=False)["wal_dir"] is None
