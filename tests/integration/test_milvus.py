# -*- coding: utf-8 -*-
# Copyright: contributors to the dataprotection.databases collection
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Milvus ``method: milvus-export`` against a real server: milvus-lite's gRPC server mode, reached through pymilvus.

Export, drop, restore, then the same rows (vectors compared as exact float32
values) and the same search results (ids and distances); a collection with
many field types (auto_id INT64 key, VARCHAR, FLOAT_VECTOR, SPARSE_FLOAT_VECTOR,
JSON, ARRAY, BOOL, FLOAT, nullable DOUBLE, dynamic fields), two partitions and
several batches; check mode; refusals that store nothing (a GEOMETRY field, a
collection that does not exist, existing collections without force).
milvus-lite has no authentication: wrong credentials are shown against a
pymilvus client that fails the way Milvus documents it (error code 1800).
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import random
import struct

import pytest

from harness.milvusserver import running

from ansible_collections.dataprotection.databases.plugins.module_utils.backup import BackupRequest, run_backup
from ansible_collections.dataprotection.databases.plugins.module_utils.engines import milvus_native
from ansible_collections.dataprotection.databases.plugins.module_utils.errors import ConfigError, EngineError
from ansible_collections.dataprotection.databases.plugins.module_utils.repository import LocalRepo
from ansible_collections.dataprotection.databases.plugins.module_utils.restore import RestoreRequest, run_restore

pymilvus = pytest.importorskip("pymilvus", reason="no Milvus server can run here: pymilvus (which milvus-lite needs) is not installed")

DIM = 8
ROWS = 1300
BATCH = 250


@pytest.fixture
def milvus_server():
    with running() as server:
        yield server


def stored_keys(spec, cluster):
    return [info.key for info in LocalRepo({"path": spec["path"]}).list("%s/" % cluster) if "/backups/" in info.key]


def client_of(server):
    return pymilvus.MilvusClient(uri=server.uri)


def f32(values):
    """The float32 bits of a vector, to compare vectors exactly."""
    return struct.pack("<%df" % len(values), *values)


def populate(client):
    rng = random.Random(7)
    DataType = pymilvus.DataType
    schema = pymilvus.MilvusClient.create_schema(auto_id=True, enable_dynamic_field=True, description="many types")
    schema.add_field("id", DataType.INT64, is_primary=True)
    schema.add_field("v", DataType.FLOAT_VECTOR, dim=DIM)
    schema.add_field("title", DataType.VARCHAR, max_length=64)
    schema.add_field("meta", DataType.JSON)
    schema.add_field("tags", DataType.ARRAY, element_type=DataType.INT64, max_capacity=4)
    schema.add_field("flag", DataType.BOOL)
    schema.add_field("score", DataType.FLOAT)
    schema.add_field("weight", DataType.DOUBLE, nullable=True)
    schema.add_field("sp", DataType.SPARSE_FLOAT_VECTOR)
    index = client.prepare_index_params()
    index.add_index("v", index_type="HNSW", metric_type="L2", params={"M": 16, "efConstruction": 200})
    index.add_index("sp", index_type="SPARSE_INVERTED_INDEX", metric_type="IP")
    client.create_collection("docs", schema=schema, index_params=index)
    client.create_partition("docs", "recent")
    for partition, count in (("_default", ROWS - 400), ("recent", 400)):
        rows = []
        for number in range(count):
            rows.append({
                "v": [rng.uniform(-1, 1) for dummy in range(DIM)],
                "title": "doc %s %d" % (partition, number),
                "meta": {"n": number, "nested": {"x": [1.25, "y"]}},
                "tags": [number % 7, number % 11],
                "flag": number % 2 == 0,
                "score": rng.uniform(0, 10),
                "weight": None if number % 5 == 0 else number / 3.0,
                "sp": {rng.randrange(1000): rng.uniform(0, 1), rng.randrange(1000, 2000): 0.5},
                "colour": "red" if number % 3 else "blue",  # a dynamic field
            })
        client.insert("docs", rows, partition_name=partition)
    schema = pymilvus.MilvusClient.create_schema(auto_id=False)
    schema.add_field("key", DataType.VARCHAR, is_primary=True, max_length=16)
    schema.add_field("emb", DataType.FLOAT_VECTOR, dim=4)
    index = client.prepare_index_params()
    index.add_index("emb", index_type="FLAT", metric_type="COSINE")
    client.create_collection("plain", schema=schema, index_params=index)
    client.insert("plain", [{"key": "k%03d" % n, "emb": [n + 0.5, 1.0 / (n + 1), -n, 3.0]} for n in range(40)])
    client.alter_collection_properties("plain", properties={"collection.ttl.seconds": 315360000})
    client.flush("docs")
    client.flush("plain")


def all_rows(client, name, key):
    iterator = client.query_iterator(name, batch_size=500, output_fields=["*"])
    rows = {}
    while True:
        batch = iterator.next()
        if not batch:
            break
        for row in batch:
            rows[row[key]] = row
    iterator.close()
    return rows


def partition_keys(client, name, partition, key):
    iterator = client.query_iterator(name, batch_size=500, output_fields=[key], partition_names=[partition])
    keys = set()
    while True:
        batch = iterator.next()
        if not batch:
            break
        keys.update(row[key] for row in batch)
    iterator.close()
    return keys


def searches(client, queries):
    found = []
    for query in queries:
        hits = client.search("docs", data=[query], anns_field="v", limit=5, search_params={"metric_type": "L2", "params": {"ef": 500}})
        found.append([(hit["id"], hit["distance"]) for hit in hits[0]])
    hits = client.search("plain", data=[[1.0, 0.5, -1.0, 3.0]], anns_field="emb", limit=3, search_params={"metric_type": "COSINE"})
    found.append([(hit["key"], hit["distance"]) for hit in hits[0]])
    return found


def backup(spec, server, check_mode=False, **options):
    options.setdefault("batch_size", BATCH)
    request = BackupRequest(engine="milvus", method="milvus-export", cluster="vectors", connection=server.connection, options=options)
    return run_backup(spec, request, check_mode=check_mode)


def restore(spec, server, backup_id, force=False, check_mode=False, **options):
    request = RestoreRequest(engine="milvus", cluster="vectors", target=None, backup_id=backup_id, force=force, connection=server.connection,
                             options=options)
    return run_restore(spec, request, check_mode=check_mode)


def test_export_drop_restore_same_rows_and_searches(spec, milvus_server):
    client = client_of(milvus_server)
    populate(client)
    rng = random.Random(11)
    queries = [[rng.uniform(-1, 1) for dummy in range(DIM)] for dummy in range(6)]
    before_rows = all_rows(client, "docs", "id")
    before_plain = all_rows(client, "plain", "key")
    before_recent = partition_keys(client, "docs", "recent", "id")
    before_search = searches(client, queries)
    assert len(before_rows) == ROWS and len(before_recent) == 400

    plan = backup(spec, milvus_server, check_mode=True)["plan"]
    assert [(c["name"], c["row_count"]) for c in plan["collections"]] == [("docs", ROWS), ("plain", 40)]
    fields = dict((f["name"], f) for f in plan["collections"][0]["schema"]["fields"])
    assert fields["id"]["is_primary"] and fields["id"]["auto_id"] and fields["v"]["type"] == "FLOAT_VECTOR" and fields["v"]["params"]["dim"] == DIM
    assert fields["tags"]["element_type"] == "INT64" and fields["weight"]["nullable"]
    assert stored_keys(spec, "vectors") == []

    result = backup(spec, milvus_server)
    manifest = result["manifest"]
    saved = dict((c["name"], c) for c in manifest["milvus"]["collections"])
    assert saved["docs"]["row_count"] == ROWS and saved["plain"]["row_count"] == 40
    assert saved["docs"]["schema"]["enable_dynamic_field"] is True and saved["docs"]["schema"]["auto_id"] is True
    assert sorted(saved["docs"]["partitions"]) == ["_default", "recent"]
    assert [(o["partition"], o["rows"]) for o in saved["docs"]["objects"]] == [("_default", ROWS - 400), ("recent", 400)]
    assert sorted((i["field_name"], i["index_type"], i["metric_type"]) for i in saved["docs"]["indexes"]) == [
        ("sp", "SPARSE_INVERTED_INDEX", "IP"), ("v", "HNSW", "L2")]
    assert manifest["consistency"] == "collection"

    client.drop_collection("docs")
    client.drop_collection("plain")
    assert client.list_collections() == []

    restored = restore(spec, milvus_server, manifest["backup_id"])["restored"]
    assert sorted((c["name"], c["rows"]) for c in restored["collections"]) == [("docs", ROWS), ("plain", 40)]
    assert restored["auto_id_disabled"] == ["default.docs"]

    after_rows = all_rows(client, "docs", "id")
    assert sorted(after_rows) == sorted(before_rows)
    for key, row in before_rows.items():
        other = after_rows[key]
        assert f32(other.pop("v")) == f32(row.pop("v"))
        assert other.pop("sp") == row.pop("sp")
        assert other == row
    assert all_rows(client, "plain", "key") == before_plain
    assert client.describe_collection("plain")["properties"] == {"collection.ttl.seconds": "315360000"}
    assert partition_keys(client, "docs", "recent", "id") == before_recent
    # Same ids in the same order; the distances agree to float32 rounding (milvus-lite's float32 arithmetic may sum in another
    # order over another segment layout: a few units in the last place), and the vectors themselves are bit-identical (above).
    after_search = searches(client, queries)
    assert [[hit[0] for hit in hits] for hits in after_search] == [[hit[0] for hit in hits] for hits in before_search]
    for hits, old in zip(after_search, before_search):
        assert all(abs(h[1] - o[1]) <= 1e-6 * max(1.0, abs(o[1])) for h, o in zip(hits, old))
    description = client.describe_collection("docs")
    assert description["enable_dynamic_field"] and not description["auto_id"]
    assert sorted(client.list_partitions("docs")) == ["_default", "recent"]
    assert sorted(client.describe_index("docs", name)["index_type"] for name in client.list_indexes("docs")) == ["HNSW", "SPARSE_INVERTED_INDEX"]

    # The collections exist now: refused without force, nothing changed; replaced with force.
    client.insert("plain", [{"key": "extra", "emb": [1.0, 1.0, 1.0, 1.0]}])
    with pytest.raises(ConfigError, match="already has the collections default.docs, default.plain"):
        restore(spec, milvus_server, manifest["backup_id"])
    assert len(all_rows(client, "plain", "key")) == 41
    restore(spec, milvus_server, manifest["backup_id"], force=True, collections=["plain"])
    assert all_rows(client, "plain", "key") == before_plain
    assert len(all_rows(client, "docs", "id")) == ROWS


def test_refusals_store_nothing(spec, milvus_server, monkeypatch):
    client = client_of(milvus_server)
    DataType = pymilvus.DataType
    schema = pymilvus.MilvusClient.create_schema(auto_id=False)
    schema.add_field("id", DataType.INT64, is_primary=True)
    schema.add_field("v", DataType.FLOAT_VECTOR, dim=2)
    schema.add_field("where", DataType.GEOMETRY)
    client.create_collection("places", schema=schema)
    schema = pymilvus.MilvusClient.create_schema(auto_id=False)
    schema.add_field("id", DataType.INT64, is_primary=True)
    schema.add_field("v", DataType.FLOAT_VECTOR, dim=2)
    client.create_collection("fine", schema=schema)
    client.insert("fine", [{"id": 1, "v": [0.5, 0.25]}])

    with pytest.raises(ConfigError) as info:
        backup(spec, milvus_server)
    assert "collection places (database default): field where has type GEOMETRY" in info.value.message
    assert stored_keys(spec, "vectors") == []

    with pytest.raises(ConfigError) as info:
        backup(spec, milvus_server, collections=["fine", "missing"])
    assert "collection missing does not exist in database default" in info.value.message
    assert "fine" in info.value.hint and "places" in info.value.hint
    assert stored_keys(spec, "vectors") == []

    done = backup(spec, milvus_server, collections=["fine"])
    assert [c["name"] for c in done["manifest"]["milvus"]["collections"]] == ["fine"]
    with pytest.raises(ConfigError, match="collection nothere is not in backup"):
        restore(spec, milvus_server, done["backup"]["backup_id"], collections=["nothere"])
    plan = restore(spec, milvus_server, done["backup"]["backup_id"], force=True, check_mode=True)["plan"]
    assert plan["replaces"] == ["default.fine"] and "restored" not in plan
    assert client.has_collection("fine")

    # A restore whose row count check fails leaves no half-restored collection behind.
    monkeypatch.setattr(milvus_native, "_count", lambda conn, database, name: 999)
    client.drop_collection("fine")
    with pytest.raises(EngineError, match="holds 999 rows after the restore, the backup 1"):
        restore(spec, milvus_server, done["backup"]["backup_id"])
    assert not client.has_collection("fine")


def test_partition_key_collection(spec, milvus_server):
    """A collection with a partition key is read as a whole and restored with the same number of partitions."""
    client = client_of(milvus_server)
    DataType = pymilvus.DataType
    schema = pymilvus.MilvusClient.create_schema(auto_id=False)
    schema.add_field("sku", DataType.VARCHAR, is_primary=True, max_length=16)
    schema.add_field("tenant", DataType.VARCHAR, max_length=16, is_partition_key=True)
    schema.add_field("v", DataType.FLOAT_VECTOR, dim=3)
    index = client.prepare_index_params()
    index.add_index("v", index_type="AUTOINDEX", metric_type="IP")
    client.create_collection("tenants", schema=schema, index_params=index, num_partitions=4)
    client.insert("tenants", [{"sku": "s%d" % n, "tenant": "t%d" % (n % 5), "v": [n / 7.0, 1.0, -n / 3.0]} for n in range(90)])
    before = all_rows(client, "tenants", "sku")
    manifest = backup(spec, milvus_server, batch_size=20)["manifest"]
    saved = manifest["milvus"]["collections"][0]
    assert saved["partition_key"] is True and [(o["partition"], o["rows"]) for o in saved["objects"]] == [(None, 90)]
    client.drop_collection("tenants")
    restore(spec, milvus_server, manifest["backup_id"])
    after = all_rows(client, "tenants", "sku")
    assert sorted(after) == sorted(before)
    assert all(f32(after[k]["v"]) == f32(before[k]["v"]) and after[k]["tenant"] == before[k]["tenant"] for k in before)
    fields = dict((f["name"], f) for f in client.describe_collection("tenants")["fields"])
    assert fields["tenant"].get("is_partition_key")


def test_other_database(spec, milvus_server):
    """connection.databases names the database; a restore into a server without it creates it."""
    client = client_of(milvus_server)
    client.create_database("shop")
    shop = pymilvus.MilvusClient(uri=milvus_server.uri, db_name="shop")
    shop.create_collection("items", dimension=3, primary_field_name="id", vector_field_name="v", metric_type="L2", auto_id=False)
    shop.insert("items", [{"id": n, "v": [n * 0.25, -1.5, 2.0 / (n + 1)]} for n in range(30)])
    before = all_rows(shop, "items", "id")
    connection = dict(milvus_server.connection, databases=["shop"])
    request = BackupRequest(engine="milvus", method="milvus-export", cluster="vectors", connection=connection,
                            options={"collections": ["shop.items"], "batch_size": 7})
    manifest = run_backup(spec, request)["manifest"]
    assert [(c["database"], c["name"], c["row_count"]) for c in manifest["milvus"]["collections"]] == [("shop", "items", 30)]
    assert client.list_collections() == []  # nothing of it in the default database
    shop.drop_collection("items")
    client.drop_database("shop")
    assert "shop" not in client.list_databases()
    restored = restore(spec, milvus_server, manifest["backup_id"])["restored"]
    assert restored["collections"][0]["database"] == "shop" and "shop" in client.list_databases()
    after = all_rows(pymilvus.MilvusClient(uri=milvus_server.uri, db_name="shop"), "items", "id")
    assert sorted(after) == sorted(before) and all(f32(after[k]["v"]) == f32(before[k]["v"]) for k in before)


def test_wrong_credentials(spec, milvus_server, monkeypatch):
    """Milvus answers a wrong user or password with error code 1800 (its documented "user hasn't authenticated");
    milvus-lite has no authentication, so the client raises that error here."""

    class Refusing(object):
        def __init__(self, **kwargs):
            raise pymilvus.MilvusException(code=1800, message="auth check failure, please check username and password (%s)" % kwargs["token"])

    monkeypatch.setattr(pymilvus, "MilvusClient", Refusing)
    connection = dict(milvus_server.connection, user="root", password="Wr0ng-pass")
    request = BackupRequest(engine="milvus", method="milvus-export", cluster="vectors", connection=connection, options={})
    with pytest.raises(EngineError) as info:
        run_backup(spec, request)
    assert "did not accept user root" in info.value.message and "Wr0ng-pass" not in str(info.value)
    assert "connection.password" in info.value.hint
    assert stored_keys(spec, "vectors") == []


def test_missing_pymilvus(monkeypatch):
    monkeypatch.setitem(__import__("sys").modules, "pymilvus", None)
    with pytest.raises(milvus_native.MissingDependency) as info:
        milvus_native.Client({}).client("default")
    assert "pymilvus" in info.value.message and "pymilvus>=2.5" in info.value.hint
