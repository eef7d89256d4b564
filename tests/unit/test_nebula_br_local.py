# -*- coding: utf-8 -*-
# Copyright: contributors to the dataprotection.databases collection
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Nebula Graph method nebula-br with backend local (EXPERIMENTAL): CREATE SNAPSHOT checkpoints, against a fake console.

No Nebula Graph can run on the test machines.  The fake ``nebula-console``
(tests/unit/fixtures/nebula/nebula-console) answers ``CREATE SNAPSHOT``,
``SHOW SNAPSHOTS`` and ``DROP SNAPSHOT <name>`` as the Nebula docs' "Manage
snapshots" page describes them (GOD only; Name/Status/Hosts columns), and
makes each host's checkpoints where that page and Nebula's snapshot design
notes put them: ``<data_path>/nebula/<space id>/checkpoints/<snapshot>/{data,wal}``
(copies here; the real ones hard-link the SST files).  The data paths are real
directories of the test, so the streaming into the repository and the restore
into a data_dir run for real.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json
import os
import sys
import types

import pytest

from ansible_collections.dataprotection.databases.plugins.module_utils import engines
from ansible_collections.dataprotection.databases.plugins.module_utils.backup import BackupRequest, run_backup
from ansible_collections.dataprotection.databases.plugins.module_utils.engines import nebula
from ansible_collections.dataprotection.databases.plugins.module_utils.errors import ConfigError, EngineError
from ansible_collections.dataprotection.databases.plugins.module_utils.repoconfig import new_config, write_config
from ansible_collections.dataprotection.databases.plugins.module_utils.repository import LocalRepo
from ansible_collections.dataprotection.databases.plugins.module_utils.restore import RestoreRequest, run_restore

FIXTURE = os.path.join(os.path.dirname(__file__), "fixtures", "nebula", "nebula-console")
PASSWORD = "s3cret-nebula-pw"
CLUSTER = "graph"


def write(path, data):
    os.makedirs(os.path.dirname(str(path)), exist_ok=True)
    with open(str(path), "wb") as handle:
        handle.write(data)


@pytest.fixture
def cluster(tmp_path, monkeypatch):
    """Data paths of storaged0 and metad0 on this host, the fake console in a bin_dir, a local repository."""
    storage = tmp_path / "data" / "storage"
    meta = tmp_path / "data" / "meta"
    for space_id in (1, 2):
        write(storage / "nebula" / str(space_id) / "data" / "000009.sst", ("sst of space %d\n" % space_id).encode("ascii"))
        write(storage / "nebula" / str(space_id) / "wal" / "1" / "0000000000000000001.wal", b"wal\n")
    write(meta / "nebula" / "0" / "data" / "000003.sst", b"schema\n")
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    with open(FIXTURE) as handle:
        body = handle.read().split("\n", 1)[1]
    (bin_dir / "nebula-console").write_text("#!%s\n%s" % (sys.executable, body))
    os.chmod(str(bin_dir / "nebula-console"), 0o755)
    state = tmp_path / "console.json"
    state.write_text(json.dumps({
        "spaces": ["basketballplayer", "docs"], "password": PASSWORD, "version": "3.6.0", "roles": {},
        "hosts": [{"host": "storaged0", "port": 9779, "status": "ONLINE"}, {"host": "storaged1", "port": 9779, "status": "ONLINE"}],
        "metas": [{"host": "metad0", "port": 9559, "status": "ONLINE"}],
        "data_paths": {"storaged0:9779": str(storage), "metad0:9559": str(meta)}}))
    monkeypatch.setenv("NEBULA_FAKE_STATE", str(state))
    monkeypatch.setitem(engines.REGISTRY, "nebula", nebula)
    repo = tmp_path / "repo"
    repo.mkdir()
    write_config(LocalRepo({"path": str(repo)}), new_config()[0])

    def read():
        return json.loads(state.read_text())

    def update(**changes):
        data = read()
        data.update(changes)
        state.write_text(json.dumps(data))

    return types.SimpleNamespace(storage=str(storage), meta=str(meta), bin_dir=str(bin_dir), spec={"type": "local", "path": str(repo)},
                                 read=read, update=update, tmp=tmp_path)


def request(cluster, user="root", **options):
    options.setdefault("backend", "local")
    options.setdefault("nodes", ["storaged0:9779=%s" % cluster.storage, "metad0:9559=%s" % cluster.meta])
    return BackupRequest("nebula", "nebula-br", CLUSTER, connection={"user": user, "password": PASSWORD, "bin_dir": cluster.bin_dir},
                         options=options)


def statements(cluster):
    return [argv[argv.index("-e") + 1] for argv in cluster.read().get("calls", [])]


def checkpoints(path):
    found = []
    for dirpath, dirnames, filenames in os.walk(path):
        if os.path.basename(dirpath) == "checkpoints" and dirnames:
            found.append(dirpath)
    return found


def manifests(cluster):
    return [i.key for i in LocalRepo({"path": cluster.spec["path"]}).list("%s/backups/" % CLUSTER) if i.key.endswith("manifest.json")]


def test_plan_names_the_nodes_taken_and_not_taken(cluster):
    plan = run_backup(cluster.spec, request(cluster), check_mode=True)["plan"]
    assert plan["nodes"] == [{"node": "storaged0:9779", "data_paths": [cluster.storage]}, {"node": "metad0:9559", "data_paths": [cluster.meta]}]
    assert plan["not_taken"] == ["storaged1:9779"]
    assert any("storaged1:9779 are NOT taken" in w for w in plan["warnings"])
    assert "CREATE SNAPSHOT" not in statements(cluster) and not cluster.read().get("snapshots")


def test_backup_streams_this_hosts_checkpoints_then_drops_the_snapshot(cluster):
    result = run_backup(cluster.spec, request(cluster))
    manifest = result["manifest"]
    info = manifest["nebula_snapshot"]
    name = info["name"]
    assert name.startswith("SNAPSHOT_") and manifest["positions"] == {"snapshot": name, "nodes": ["storaged0:9779", "metad0:9559"]}
    assert [(c["node"], c["space_ids"]) for c in info["checkpoints"]] == [("storaged0:9779", [1, 2]), ("metad0:9559", [0])]
    assert [o["name"] for o in manifest["objects"]] == ["checkpoints-storaged0-9779-0.tar", "checkpoints-metad0-9559-0.tar"]
    assert manifest["consistency"] == "application" and manifest["compression"] == "none"
    sent = statements(cluster)
    assert "CREATE SNAPSHOT" in sent and ("DROP SNAPSHOT %s" % name) in sent
    assert sent.index("CREATE SNAPSHOT") < sent.index("DROP SNAPSHOT %s" % name)
    assert cluster.read()["snapshots"] == [] and checkpoints(cluster.storage) == [] and checkpoints(cluster.meta) == []
    assert info["not_taken"] == ["storaged1:9779"] and PASSWORD not in json.dumps(result, default=str)


def test_restore_lays_a_nodes_checkpoint_out_as_its_data_path(cluster):
    manifest = run_backup(cluster.spec, request(cluster))["manifest"]
    connection = {"password": PASSWORD, "bin_dir": cluster.bin_dir}
    target = str(cluster.tmp / "restored-storage")
    assert nebula.restores_into_server(manifest) is False
    with pytest.raises(ConfigError, match="name the one to restore"):
        run_restore(cluster.spec, RestoreRequest("nebula", CLUSTER, target, backup_id=manifest["backup_id"], connection=connection))
    req = RestoreRequest("nebula", CLUSTER, target, backup_id=manifest["backup_id"], connection=connection, options={"nodes": ["storaged0:9779"]})
    result = run_restore(cluster.spec, req)
    for space_id in (1, 2):
        with open(os.path.join(target, "nebula", str(space_id), "data", "000009.sst"), "rb") as handle:
            assert handle.read() == ("sst of space %d\n" % space_id).encode("ascii")
        assert os.path.isfile(os.path.join(target, "nebula", str(space_id), "wal", "1", "0000000000000000001.wal"))
    assert sorted(os.listdir(target)) == ["nebula"] and sorted(os.listdir(os.path.join(target, "nebula"))) == ["1", "2"]
    assert result["restored"]["node"] == "storaged0:9779" and result["restored"]["space_ids"] == [1, 2]
    # Over a non-empty directory only with force.
    with pytest.raises(ConfigError, match="not empty"):
        run_restore(cluster.spec, req)
    meta_target = str(cluster.tmp / "restored-meta")
    run_restore(cluster.spec, RestoreRequest("nebula", CLUSTER, meta_target, backup_id=manifest["backup_id"], connection=connection,
                                             options={"nodes": ["metad0:9559"]}))
    with open(os.path.join(meta_target, "nebula", "0", "data", "000003.sst"), "rb") as handle:
        assert handle.read() == b"schema\n"
    forced = RestoreRequest("nebula", CLUSTER, target, backup_id=manifest["backup_id"], connection=connection, force=True,
                            options={"nodes": ["storaged0:9779"]})
    assert run_restore(cluster.spec, forced)["restored"]["space_ids"] == [1, 2]


def test_failed_snapshot_is_dropped_and_nothing_is_recorded(cluster):
    cluster.update(snapshot_fails=True)
    with pytest.raises(EngineError) as caught:
        run_backup(cluster.spec, request(cluster))
    assert "CREATE SNAPSHOT" in caught.value.message and "did not answer" in caught.value.message
    state = cluster.read()
    assert state["snapshots"] == [] and len(state["dropped"]) == 1 and state["dropped"][0].startswith("SNAPSHOT_")
    assert manifests(cluster) == []


def test_a_data_path_without_the_checkpoint_fails_and_drops_the_snapshot(cluster):
    # The console makes no checkpoint under this path: it is not the data path of storaged0 that the cluster uses.
    other = cluster.tmp / "elsewhere"
    (other / "nebula").mkdir(parents=True)
    with pytest.raises(EngineError, match="left no checkpoint"):
        run_backup(cluster.spec, request(cluster, nodes=["storaged0:9779=%s" % other]))
    state = cluster.read()
    assert state["snapshots"] == [] and len(state["dropped"]) == 1 and checkpoints(cluster.storage) == []
    assert manifests(cluster) == [] and [i.key for i in LocalRepo({"path": cluster.spec["path"]}).list("%s/backups/" % CLUSTER)] == []


@pytest.mark.parametrize("user,options,message", [
    ("alice", {}, "GOD role"),
    ("root", {"collections": ["docs"]}, "every graph space"),
    ("root", {"nodes": ["storaged0:9779"]}, "nodes must name"),
    ("root", {"nodes": ["storaged9:9779=/srv"]}, "not hosts of Nebula Graph"),
    ("root", {"nodes": ["storaged0:9779=/nonexistent"]}, "no nebula directory"),
    ("root", {"nodes": ["storaged0=/srv"]}, "not host:port"),
])
def test_bad_input_is_refused_before_any_snapshot(cluster, user, options, message):
    with pytest.raises(ConfigError, match=message):
        run_backup(cluster.spec, request(cluster, user=user, **options))
    assert "CREATE SNAPSHOT" not in statements(cluster) and not cluster.read().get("snapshots")
