# -*- coding: utf-8 -*-
# Copyright: contributors to the dataprotection.databases collection
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Milvus ``method: milvus-backup`` (EXPERIMENTAL) against a fake tool, and milvus-export's row and index encodings.

The fake (tests/unit/fixtures/milvus/milvus-backup) follows the command line
documented by zilliztech/milvus-backup (README and milvus.io "Back up and
Restore Data Using Commands": ``create -n <name> [-c <colls>] [-d
<databases>]``, ``get -n``, ``restore -n <name> [--restore_index]
[--drop_exist_collection]``, ``delete -n``, each with ``--config
backup.yaml``, whose ``milvus`` section names the server and whose ``minio``
section the bucket and root path the backups go to).  It records its argv and
the configuration it was given.  The encodings are checked against the shapes
pymilvus documents for query results (sparse vectors as ``{index: value}``)
and for ``describe_index`` on a Milvus server (build parameters flattened next
to ``index_type`` and ``metric_type``).
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json
import os
import struct

import pytest

from ansible_collections.dataprotection.databases.plugins.module_utils.backup import BackupRequest, run_backup
from ansible_collections.dataprotection.databases.plugins.module_utils.engines import milvus, milvus_native
from ansible_collections.dataprotection.databases.plugins.module_utils.errors import ConfigError, MissingDependency, ToolError
from ansible_collections.dataprotection.databases.plugins.module_utils.repository import LocalRepo
from ansible_collections.dataprotection.databases.plugins.module_utils.restore import RestoreRequest, run_restore

FIXTURES = os.path.join(os.path.dirname(__file__), "fixtures", "milvus")
PASSWORD = "s3cret-milvus-backup-pw"
MINIO_SECRET = "minio-s3cret-key"
CONFIG = """# milvus-backup configuration
milvus:
  address: somewhere-else
  port: 1
minio:
  storageType: "minio"
  address: 127.0.0.1
  port: 9000
  accessKeyID: minioadmin
  secretAccessKey: "%s"
  useSSL: false
  bucketName: "a-bucket"
  rootPath: "files"
  backupBucketName: "backups-bucket"
  backupRootPath: "milvus/backup"
backup:
  maxSegmentGroupSize: 2G
""" % MINIO_SECRET


@pytest.fixture
def fake(tmp_path, monkeypatch):
    root = tmp_path / "objectstore"
    root.mkdir()
    config = tmp_path / "backup.yaml"
    config.write_text(CONFIG)
    monkeypatch.setenv("FAKE_MILVUS_BACKUP_ROOT", str(root))
    monkeypatch.setenv("FAKE_MILVUS_PASSWORD", PASSWORD)
    monkeypatch.setenv("PATH", FIXTURES + os.pathsep + os.environ.get("PATH", ""))
    return {"root": str(root), "config": str(config)}


def calls(fake):
    path = os.path.join(fake["root"], "calls.jsonl")
    if not os.path.exists(path):
        return []
    with open(path) as handle:
        return [json.loads(line) for line in handle]


def connection(**extra):
    return dict({"host": "milvus.example", "port": 19531, "user": "root", "password": PASSWORD}, **extra)


def committed(spec, cluster):
    return [info.key for info in LocalRepo({"path": spec["path"]}).list("%s/backups/" % cluster)]


def backup(spec, fake, **options):
    options.setdefault("backend", fake["config"])
    request = BackupRequest(engine="milvus", method="milvus-backup", cluster="mb", connection=options.pop("connection", connection()), options=options)
    return run_backup(spec, request)


def restore(spec, backup_id, force=False, check_mode=False, **options):
    request = RestoreRequest(engine="milvus", cluster="mb", target=None, backup_id=backup_id, force=force, connection=connection(), options=options)
    return run_restore(spec, request, check_mode=check_mode)


def test_backup_runs_create_then_get_with_a_private_config(spec, fake):
    request = BackupRequest(engine="milvus", method="milvus-backup", cluster="mb", connection=connection(), options={"backend": fake["config"]})
    (warning,) = run_backup(spec, request, check_mode=True)["plan"]["warnings"]
    assert "stays in bucket backups-bucket" in warning and "backup_retention) leaves it there" in warning and "milvus-backup delete -n" in warning
    assert calls(fake) == [] and committed(spec, "mb") == []
    result = backup(spec, fake, collections=["docs", "plain"])
    manifest = result["manifest"]
    name = manifest["milvus_backup"]["name"]
    assert name == "dp_" + "".join(c if c.isalnum() else "_" for c in manifest["backup_id"])
    assert manifest["milvus_backup"]["bucket"] == "backups-bucket" and manifest["milvus_backup"]["path"] == "milvus/backup/" + name
    made = calls(fake)
    config_path = made[0]["argv"][-1]
    assert [c["argv"] for c in made] == [
        ["milvus-backup", "create", "-n", name, "-c", "docs,plain", "--config", config_path],
        ["milvus-backup", "get", "-n", name, "--config", config_path],
    ]
    assert made[0]["mode"] == "0o600" and not os.path.exists(config_path)
    given = made[0]["config"]
    assert given["milvus"] == {"address": "milvus.example", "port": 19531, "authorizationEnabled": True, "tlsMode": 0, "user": "root",
                               "password": PASSWORD}
    assert given["minio"]["backupBucketName"] == "backups-bucket" and given["backup"] == {"maxSegmentGroupSize": "2G"}
    assert os.path.exists(os.path.join(fake["root"], "backups-bucket", "milvus", "backup", name, "meta", "backup_meta.json"))
    assert [o["name"] for o in manifest["objects"]] == ["milvus-backup-%s.txt" % name]
    assert PASSWORD not in json.dumps(manifest) and MINIO_SECRET not in json.dumps(manifest)

    plan = restore(spec, manifest["backup_id"], check_mode=True, backend=fake["config"])["plan"]
    assert plan["name"] == name and plan["bucket"] == "backups-bucket" and "restored" not in plan
    assert len(calls(fake)) == 2

    restored = restore(spec, manifest["backup_id"], backend=fake["config"])["restored"]
    argv = calls(fake)[-1]["argv"]
    assert argv == ["milvus-backup", "restore", "-n", name, "--restore_index", "--config", argv[-1]]
    assert restored["name"] == name and "restore backup %s success" % name in restored["output"]
    with open(os.path.join(fake["root"], "restored.json")) as handle:
        assert json.load(handle) == {"name": name, "collections": ["docs", "plain"], "index": True}


def test_restore_into_existing_collections_needs_force(spec, fake, monkeypatch):
    manifest = backup(spec, fake, collections=["docs"])["manifest"]
    monkeypatch.setenv("FAKE_MILVUS_EXISTING", "docs")
    with pytest.raises(ToolError, match="collection already exist: docs"):
        restore(spec, manifest["backup_id"], backend=fake["config"])
    assert not os.path.exists(os.path.join(fake["root"], "restored.json"))
    restore(spec, manifest["backup_id"], force=True, backend=fake["config"])
    assert calls(fake)[-1]["argv"][4:6] == ["--restore_index", "--drop_exist_collection"]


def test_databases_and_qualified_collections(spec, fake):
    backup(spec, fake, collections=["shop.items", "shop.users"])
    assert calls(fake)[0]["argv"][2:8] == ["-n", calls(fake)[0]["argv"][3], "-d", "shop", "-c", "items,users"]


def test_failures_leave_nothing(spec, fake, monkeypatch):
    with pytest.raises(ToolError) as info:
        backup(spec, fake, connection=connection(password="wrong-pw-123"))
    assert "auth check failure" in info.value.message and "wrong-pw-123" not in str(info.value)
    assert committed(spec, "mb") == []

    monkeypatch.setenv("FAKE_MILVUS_FAIL", "get")
    with pytest.raises(ToolError, match="get failed"):
        backup(spec, fake)
    assert [c["argv"][1] for c in calls(fake)][-3:] == ["create", "get", "delete"]
    assert committed(spec, "mb") == []
    assert not any(files for dummy, dummy2, files in os.walk(os.path.join(fake["root"], "backups-bucket")))


def test_missing_tool_and_configuration(spec, fake, monkeypatch, tmp_path):
    with pytest.raises(ConfigError, match="needs backend"):
        backup(spec, fake, backend=None)
    bucketless = tmp_path / "nobucket.yaml"
    bucketless.write_text("milvus:\n  address: x\nminio:\n  address: y\n")
    with pytest.raises(ConfigError, match="names no bucket"):
        backup(spec, fake, backend=str(bucketless))
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.setattr(milvus_native.tools, "find_tool", lambda *args, **kwargs: None)
    with pytest.raises(MissingDependency) as info:
        backup(spec, fake)
    assert "milvus-backup" in info.value.message and "github.com/zilliztech/milvus-backup" in info.value.hint
    assert calls(fake) == [] and committed(spec, "mb") == []


def test_restore_with_another_bucket_is_refused(spec, fake, tmp_path):
    manifest = backup(spec, fake)["manifest"]
    other = tmp_path / "other.yaml"
    other.write_text(CONFIG.replace("backups-bucket", "elsewhere"))
    with pytest.raises(ConfigError, match="is in bucket backups-bucket"):
        restore(spec, manifest["backup_id"], backend=str(other))
    assert calls(fake)[-1]["argv"][1] == "get"


def test_methods_and_dispatch():
    assert milvus.METHODS == ("milvus-export", "milvus-backup", "volume-snapshot")
    assert milvus.restores_into_server({"method": "milvus-export"}) and not milvus.restores_into_server({"method": "volume-snapshot"})


def test_row_encoding_round_trips_exactly():
    values = struct.unpack("<3f", struct.pack("<3f", 0.1, -1e-30, 3.4028234e38))
    row = {"id": 7, "v": list(values), "sp": {3: 0.5, 1: 0.125}, "meta": {"a": [1, "b"]}, "bm25": {1: 1.0}, "extra": None}
    line = json.dumps(milvus_native.encode_row(row, {"sp"}, {"bm25"}))
    back = milvus_native.decode_row(json.loads(line), {"sp"})
    assert back == {"id": 7, "v": list(values), "sp": {1: 0.125, 3: 0.5}, "meta": {"a": [1, "b"]}, "extra": None}
    assert struct.pack("<3f", *back["v"]) == struct.pack("<3f", *values)


def test_index_definition_from_describe_index():
    described = {"index_type": "HNSW", "metric_type": "COSINE", "M": "16", "efConstruction": "200", "field_name": "v", "index_name": "v_idx",
                 "total_rows": 10, "indexed_rows": 10, "pending_index_rows": 0, "state": "Finished"}
    assert milvus_native.index_of(described) == {"field_name": "v", "index_name": "v_idx", "index_type": "HNSW", "metric_type": "COSINE",
                                                 "params": {"M": "16", "efConstruction": "200"}}


def test_unknown_types_are_refused():
    schema = {"fields": [{"name": "id", "type": "INT64"}, {"name": "bits", "type": "BINARY_VECTOR"}], "functions": []}
    with pytest.raises(ConfigError, match="collection c1 \\(database db\\): field bits has type BINARY_VECTOR"):
        milvus_native.check_types("db", "c1", schema)
    schema = {"fields": [{"name": "id", "type": "INT64"}, {"name": "arr", "type": "ARRAY", "element_type": "STRUCT"}], "functions": []}
    with pytest.raises(ConfigError, match="field arr is an ARRAY of STRUCT"):
        milvus_native.check_types("db", "c1", schema)
    schema = {"fields": [{"name": "text", "type": "VARCHAR"}, {"name": "sparse", "type": "SPARSE_FLOAT_VECTOR", "is_function_output": True}],
              "functions": [{"name": "bm25", "output_field_names": ["sparse"]}]}
    milvus_native.check_types("db", "c1", schema)


class FakeIterator(object):
    def __init__(self, rows, batch_size):
        self.batches = [rows[i:i + batch_size] for i in range(0, len(rows), batch_size)]

    def next(self):
        return self.batches.pop(0) if self.batches else []

    def close(self):
        pass


class FakeClient(object):
    """The MilvusClient calls milvus-export makes, answering with the shapes pymilvus documents; records them."""

    log = []
    state = "NotLoad"

    def __init__(self, **kwargs):
        self.kwargs = kwargs

    def __getattr__(self, name):
        answers = {
            "list_collections": ["released"],
            "describe_collection": {"fields": [{"name": "id", "type": "INT64", "is_primary": True, "params": {}},
                                               {"name": "v", "type": "FLOAT_VECTOR", "params": {"dim": 2}}],
                                    "auto_id": False, "enable_dynamic_field": False, "functions": [], "num_partitions": 1},
            "list_indexes": [], "list_partitions": ["_default"], "get_collection_stats": {"row_count": 3},
            "get_load_state": {"state": FakeClient.state}, "get_server_version": "v2.5.4",
            "query": [{"count(*)": 3}],
        }

        def call(*args, **kwargs):
            FakeClient.log.append(name)
            if name == "query_iterator":
                return FakeIterator([{"id": n, "v": [n * 0.5, 1.0]} for n in range(3)], kwargs["batch_size"])
            return answers.get(name)
        return call


def test_export_releases_what_it_loaded(spec, monkeypatch):
    fake_module = type("pymilvus", (), {"MilvusClient": FakeClient})
    monkeypatch.setattr(milvus_native, "_pymilvus", lambda: fake_module)
    request = BackupRequest(engine="milvus", method="milvus-export", cluster="mx", connection={"port": 19530}, options={"batch_size": 2})
    FakeClient.log[:] = []
    FakeClient.state = "NotLoad"
    manifest = run_backup(spec, request)["manifest"]
    assert manifest["milvus"]["collections"][0]["row_count"] == 3 and manifest["engine_version"] == "v2.5.4"
    log = FakeClient.log
    assert log.index("flush") < log.index("load_collection") < log.index("query_iterator") < log.index("release_collection")
    FakeClient.log[:] = []
    FakeClient.state = "Loaded"
    request.cluster = "mx-loaded"
    run_backup(spec, request)
    assert "query_iterator" in FakeClient.log and "load_collection" not in FakeClient.log and "release_collection" not in FakeClient.log
