# -*- coding: utf-8 -*-
# Copyright: contributors to the dataprotection.databases collection
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Qdrant ``qdrant-snapshot`` backups and restores (EXPERIMENTAL: never run against a real Qdrant).

No Qdrant server can run on the test machines.  The engine talks HTTP to
tests/harness/qdrantapi.py, a stateful stand-in written from Qdrant's
published OpenAPI description (qdrant/qdrant ``docs/redoc/master/openapi.json``:
the collections, snapshots and cluster endpoints, their ``{"result", "status",
"time"}`` envelopes, ErrorResponse, SnapshotDescription with its sha256
``checksum``, the upload's ``priority`` and ``checksum`` query parameters)
and from the snapshot and distributed-deployment documentation (a collection
snapshot covers the node's local shards only; ``GET /cluster`` lists p2p
URIs).  Its 401 texts and the checksum-mismatch refusal (400) follow the
server's source.  The tests assert the exact calls made and the outcomes:
backup, drop, restore, points back identical; snapshots removed on the server
after a backup and after a failed one; several nodes.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json
import math
import time

import pytest

from harness.qdrantapi import FakeQdrant
from harness.s3server import closed_port, make_tls_material

from ansible_collections.dataprotection.databases.plugins.module_utils import matrix
from ansible_collections.dataprotection.databases.plugins.module_utils.backup import BackupRequest, run_backup
from ansible_collections.dataprotection.databases.plugins.module_utils.engines import qdrant, volume
from ansible_collections.dataprotection.databases.plugins.module_utils.errors import ConfigError, EngineError, IntegrityError
from ansible_collections.dataprotection.databases.plugins.module_utils.repository import LocalRepo
from ansible_collections.dataprotection.databases.plugins.module_utils.restore import RestoreRequest, run_restore

KEY = "s3cret-qdrant-key"
RO_KEY = "read-only-qdrant-key"
CLUSTER = "vectors"


def points(prefix, count, size=4):
    return [{"id": i, "vector": [round(0.1 * (i + j), 3) for j in range(size)], "payload": {"src": prefix, "n": i}} for i in range(count)]


def stored_keys(spec):
    return sorted(info.key for info in LocalRepo({"path": spec["path"]}).list("%s/" % CLUSTER))


def payload_keys(spec):
    return [k for k in stored_keys(spec) if "/backups/" in k]


@pytest.fixture
def fake():
    server = FakeQdrant(api_key=KEY, read_only_key=RO_KEY).start()
    server.create_collection("docs", size=4, distance="Cosine", points=points("docs", 25))
    server.create_collection("images", size=8, distance="Dot", points=points("images", 7, size=8))
    yield server
    server.stop()


def conn(server, token=KEY):
    return {"host": server.url, "token": token}


def backup_request(connection, **options):
    return BackupRequest("qdrant", "qdrant-snapshot", CLUSTER, connection=connection, options=options)


def restore_request(connection, backup_id, force=False, **options):
    return RestoreRequest("qdrant", CLUSTER, None, backup_id=backup_id, force=force, options=options, connection=connection)


def next_second():
    """Backup ids are per second: wait for the next one before a second backup of the cluster."""
    now = time.time()
    time.sleep(math.ceil(now) - now + 0.01)


def calls_from(server, start=0):
    return server.calls[start:]


# Methods and plumbing -------------------------------------------------------


def test_methods_and_the_volume_snapshot_hooks_are_kept():
    assert qdrant.METHODS == ("qdrant-snapshot", "volume-snapshot")
    assert matrix.implemented_methods("qdrant") == ("qdrant-snapshot", "volume-snapshot")
    assert qdrant.plan_snapshot is volume.plan_snapshot and qdrant.quiesce is volume.quiesce
    assert qdrant.finish_snapshot_restore is volume.finish_snapshot_restore
    assert qdrant.restores_into_server({"method": "qdrant-snapshot"}) is True
    assert qdrant.restores_into_server({"method": "volume-snapshot"}) is False
    # No compression in the support matrix for this method: the snapshot is stored as the server made it.
    assert backup_request({}).compression == "none"


@pytest.mark.parametrize("given, url", [
    ("qdrant-0", "http://qdrant-0:6333"),
    ("qdrant-0:7333", "http://qdrant-0:7333"),
    ("https://q.example.net/prefix/", "https://q.example.net/prefix"),
    ("::1", "http://[::1]:6333"),
    ("[::1]:7000", "http://[::1]:7000"),
])
def test_node_urls(given, url):
    assert qdrant.node_url(given) == url


# Backup, drop, restore --------------------------------------------------------


def test_backup_drop_restore_brings_the_points_back(fake, spec):
    before = {"docs": fake.points("docs"), "images": fake.points("images")}
    result = run_backup(spec, backup_request(conn(fake)))
    calls = fake.calls
    creates = [c for c in calls if c[0] == "POST"]
    assert [c[:2] for c in calls if c[0] != "GET" or "/snapshots/" in c[1]] == [
        ("POST", "/collections/docs/snapshots"),
        ("GET", "/collections/docs/snapshots/" + fake_name(calls, "docs")),
        ("DELETE", "/collections/docs/snapshots/" + fake_name(calls, "docs")),
        ("POST", "/collections/images/snapshots"),
        ("GET", "/collections/images/snapshots/" + fake_name(calls, "images")),
        ("DELETE", "/collections/images/snapshots/" + fake_name(calls, "images")),
    ]
    assert all(c[2] == {"wait": "true"} for c in creates)
    assert ("GET", "/collections", {}) in calls and ("GET", "/cluster", {}) in calls
    assert ("GET", "/collections/docs", {}) in calls and ("GET", "/collections/images", {}) in calls
    assert fake.snapshot_names() == []

    manifest = result["manifest"]
    info = manifest["qdrant"]
    assert info["collections"] == ["docs", "images"]
    assert [n["url"] for n in info["nodes"]] == [fake.url] and info["nodes"][0]["peer_id"] is None
    by_name = dict((s["collection"], s) for s in info["snapshots"])
    assert by_name["docs"]["points_count"] == 25 and by_name["images"]["points_count"] == 7
    assert by_name["docs"]["vectors"] == {"size": 4, "distance": "Cosine"} and by_name["images"]["vectors"] == {"size": 8, "distance": "Dot"}
    records = dict((o["name"], o) for o in manifest["objects"])
    for snap in info["snapshots"]:
        assert snap["snapshot"].startswith("%s-%s-" % (snap["collection"], fake.peer_id)) and snap["checksum_reported"]
        assert records[snap["object"]]["sha256"] == snap["checksum"] and records[snap["object"]]["size"] == snap["size"]
        assert records[snap["object"]]["qdrant"] == {"collection": snap["collection"], "node": fake.url, "snapshot": snap["snapshot"],
                                                     "checksum": snap["checksum"]}
    assert manifest["positions"]["points"] == {"docs": 25, "images": 7}
    assert manifest["engine_version"] == "1.12.4" and manifest["identity"] is None
    assert KEY not in json.dumps(manifest)

    # Drop both collections on the server, then restore the backup through the API.
    del fake.collections["docs"], fake.collections["images"]
    mark = len(fake.calls)
    restored = run_restore(spec, restore_request(conn(fake), manifest["backup_id"]))
    uploads = [c for c in calls_from(fake, mark) if c[0] == "POST"]
    assert uploads == [
        ("POST", "/collections/docs/snapshots/upload", {"wait": "true", "priority": "snapshot", "checksum": by_name["docs"]["checksum"]}),
        ("POST", "/collections/images/snapshots/upload", {"wait": "true", "priority": "snapshot", "checksum": by_name["images"]["checksum"]}),
    ]
    assert {"docs": fake.points("docs"), "images": fake.points("images")} == before
    assert fake.collections["images"]["config"]["params"]["vectors"] == {"size": 8, "distance": "Dot"}
    assert restored["restored"]["points"] == {"docs": {fake.url: 25}, "images": {fake.url: 7}}
    assert restored["restored"]["bytes"] == sum(s["size"] for s in info["snapshots"])


def fake_name(calls, collection):
    """The snapshot name the engine downloaded for ``collection`` (taken from the download call itself)."""
    prefix = "/collections/%s/snapshots/" % collection
    names = [c[1][len(prefix):] for c in calls if c[0] == "GET" and c[1].startswith(prefix)]
    assert len(names) == 1
    return names[0]


def test_collections_restricts_backup_and_restore(fake, spec):
    result = run_backup(spec, backup_request(conn(fake), collections=["images"]))
    assert [c[1] for c in fake.calls if c[0] == "POST"] == ["/collections/images/snapshots"]
    assert result["manifest"]["qdrant"]["collections"] == ["images"]
    next_second()
    both = run_backup(spec, backup_request(conn(fake)))
    del fake.collections["docs"]
    mark = len(fake.calls)
    # images still exists on the server: restoring only docs needs no force.
    run_restore(spec, restore_request(conn(fake), both["manifest"]["backup_id"], collections=["docs"]))
    assert [c[1] for c in calls_from(fake, mark) if c[0] == "POST"] == ["/collections/docs/snapshots/upload"]
    assert len(fake.points("docs")) == 25
    with pytest.raises(ConfigError, match="collection nope does not exist in backup"):
        run_restore(spec, restore_request(conn(fake), result["manifest"]["backup_id"], force=True, collections=["nope"]))


def test_restore_refuses_an_existing_collection_unless_force(fake, spec):
    backup_id = run_backup(spec, backup_request(conn(fake)))["backup"]["backup_id"]
    original = fake.points("docs")
    fake.collections["docs"]["points"]["0"]["payload"] = {"changed": True}
    mark = len(fake.calls)
    with pytest.raises(ConfigError) as caught:
        run_restore(spec, restore_request(conn(fake), backup_id))
    assert "already has the collection(s) docs, images" in caught.value.message and "force: true" in caught.value.hint
    assert [c for c in calls_from(fake, mark) if c[0] != "GET"] == []
    run_restore(spec, restore_request(conn(fake), backup_id, force=True))
    assert fake.points("docs") == original


def test_check_mode_returns_the_plans_and_changes_nothing(fake, spec):
    plan = run_backup(spec, backup_request(conn(fake)), check_mode=True)["plan"]
    assert plan["collections"] == ["docs", "images"] and plan["experimental"] is True
    assert plan["snapshots"] == [{"collection": "docs", "node": fake.url}, {"collection": "images", "node": fake.url}]
    assert [c for c in fake.calls if c[0] != "GET"] == [] and payload_keys(spec) == []
    backup_id = run_backup(spec, backup_request(conn(fake)))["backup"]["backup_id"]
    del fake.collections["docs"]
    mark = len(fake.calls)
    result = run_restore(spec, restore_request(conn(fake), backup_id, force=True), check_mode=True)
    assert "restored" not in result
    assert [(u["collection"], u["node"]) for u in result["plan"]["uploads"]] == [("docs", fake.url), ("images", fake.url)]
    assert result["plan"]["replaces"] == [{"node": fake.url, "collection": "images"}]
    assert [c for c in calls_from(fake, mark) if c[0] != "GET"] == [] and "docs" not in fake.collections


# Refusals and failures ----------------------------------------------------------


def test_a_missing_collection_is_refused_before_any_snapshot(fake, spec):
    with pytest.raises(ConfigError) as caught:
        run_backup(spec, backup_request(conn(fake), collections=["docs", "nope"]))
    assert caught.value.message == "the Qdrant collection nope does not exist on Qdrant at %s" % fake.url
    assert caught.value.hint == "Collections there: docs, images"
    assert [c for c in fake.calls if c[0] != "GET"] == [] and payload_keys(spec) == []


@pytest.mark.parametrize("token, text", [
    (None, "requires an API key (HTTP 401): Must provide an API key"),
    ("wrong-key", "refused the API key (HTTP 401): Invalid API key or JWT"),
])
def test_wrong_or_missing_api_key(fake, spec, token, text):
    with pytest.raises(EngineError) as caught:
        run_backup(spec, backup_request(conn(fake, token)))
    assert text in caught.value.message and "service.api_key" in caught.value.hint
    assert "wrong-key" not in str(caught.value)
    assert payload_keys(spec) == []


def test_a_read_only_key_fails_at_the_snapshot_and_leaves_nothing(fake, spec):
    with pytest.raises(EngineError) as caught:
        run_backup(spec, backup_request(conn(fake, RO_KEY)))
    assert "forbids POST /collections/docs/snapshots with this API key (HTTP 403)" in caught.value.message
    assert "read-write key" in caught.value.hint and RO_KEY not in str(caught.value)
    assert payload_keys(spec) == [] and fake.snapshot_names() == []


def test_an_unreachable_server(spec):
    with pytest.raises(EngineError, match=r"cannot reach Qdrant at http://127.0.0.1:\d+"):
        run_backup(spec, backup_request({"host": "127.0.0.1", "port": closed_port(), "token": KEY}))


def test_https_with_the_ca_file_and_without_it(spec, tmp_path):
    ca_file, cert_file, key_file = make_tls_material(str(tmp_path))
    server = FakeQdrant(api_key=KEY, tls=(cert_file, key_file)).start()
    try:
        server.create_collection("docs", points=points("docs", 3))
        connection = {"host": "https://localhost:%d" % server.port, "token": KEY}
        with pytest.raises(EngineError) as caught:
            run_backup(spec, backup_request(connection))
        assert "the TLS certificate of Qdrant at https://localhost:%d cannot be verified" % server.port in caught.value.message
        assert "tls_ca_file" in caught.value.hint
        result = run_backup(spec, backup_request(dict(connection, tls_ca_file=ca_file)))
        assert result["manifest"]["positions"]["points"] == {"docs": 3} and server.snapshot_names() == []
    finally:
        server.stop()


def test_the_exact_calls_of_a_one_collection_backup(fake, spec):
    run_backup(spec, backup_request(conn(fake), collections=["docs"]))
    name = fake_name(fake.calls, "docs")
    plan = [("GET", "/", {}), ("GET", "/cluster", {}), ("GET", "/collections", {})]
    # The core plans first (read-only), then the backup checks again and works.
    assert fake.calls == plan + plan + [
        ("GET", "/collections/docs", {}),
        ("POST", "/collections/docs/snapshots", {"wait": "true"}),
        ("GET", "/collections/docs/snapshots/" + name, {}),
        ("DELETE", "/collections/docs/snapshots/" + name, {"wait": "true"}),
    ]


def test_a_checksum_mismatch_fails_the_backup_stores_nothing_and_deletes_the_snapshot(fake, spec):
    fake.fault = "corrupt_download"
    with pytest.raises(IntegrityError) as caught:
        run_backup(spec, backup_request(conn(fake)))
    assert "of collection docs downloaded from %s has sha256" % fake.url in caught.value.message
    name = fake_name(fake.calls, "docs")
    assert fake.calls[-1] == ("DELETE", "/collections/docs/snapshots/" + name, {"wait": "true"})
    assert fake.snapshot_names() == [] and payload_keys(spec) == []
    assert not [c for c in fake.calls if c[1] == "/collections/images/snapshots"]


def test_a_broken_download_fails_the_backup_and_deletes_the_snapshot(fake, spec):
    run_backup(spec, backup_request(conn(fake), collections=["images"]))
    kept = payload_keys(spec)
    fake.fault = "truncate_download"
    next_second()
    with pytest.raises(EngineError, match="the download of snapshot images-.* broke off after [0-9]+ of [0-9]+ bytes"):
        run_backup(spec, backup_request(conn(fake), collections=["images", "docs"]))
    assert fake.snapshot_names() == [] and payload_keys(spec) == kept
    assert [c[0] for c in fake.calls[-3:]] == ["POST", "GET", "DELETE"]


def test_without_a_reported_checksum_the_backup_records_its_own(fake, spec):
    fake.fault = "no_checksum"
    manifest = run_backup(spec, backup_request(conn(fake), collections=["docs"]))["manifest"]
    snap = manifest["qdrant"]["snapshots"][0]
    assert snap["checksum_reported"] is False and snap["checksum"] == manifest["objects"][0]["sha256"]


def test_a_restore_that_loses_points_is_reported(fake, spec):
    backup_id = run_backup(spec, backup_request(conn(fake), collections=["docs"]))["backup"]["backup_id"]
    del fake.collections["docs"]
    fake.fault = "lose_points_on_upload"
    with pytest.raises(EngineError) as caught:
        run_restore(spec, restore_request(conn(fake), backup_id))
    assert caught.value.message.endswith("docs on %s: 24 points, the backup recorded 25" % fake.url)


def test_a_checksum_mismatch_on_upload_names_the_server_error(fake, spec, monkeypatch):
    """The checksum the restore sends is the stored object's sha256; a server that disagrees refuses with 400 (as Qdrant does)."""
    manifest = run_backup(spec, backup_request(conn(fake), collections=["docs"]))["manifest"]
    del fake.collections["docs"]
    monkeypatch.setattr(qdrant, "_multipart", _tampered(qdrant._multipart))  # pylint: disable=protected-access
    with pytest.raises(EngineError) as caught:
        run_restore(spec, restore_request(conn(fake), manifest["backup_id"]))
    assert "upload failed (HTTP 400): Checksum mismatch: expected" in caught.value.message
    assert "docs" not in fake.collections
    assert [c[2]["checksum"] for c in fake.calls if c[1].endswith("/upload")] == [manifest["objects"][0]["sha256"]]


def test_a_failed_upload_names_what_was_restored_before_it(fake, spec, monkeypatch):
    manifest = run_backup(spec, backup_request(conn(fake)))["manifest"]
    del fake.collections["docs"], fake.collections["images"]
    monkeypatch.setattr(qdrant, "_multipart", _tampered(qdrant._multipart, only="images-"))  # pylint: disable=protected-access
    with pytest.raises(EngineError) as caught:
        run_restore(spec, restore_request(conn(fake), manifest["backup_id"]))
    assert "POST /collections/images/snapshots/upload failed (HTTP 400): Checksum mismatch" in caught.value.message
    assert caught.value.hint == "Already restored before the failure: docs on %s." % fake.url
    assert sorted(fake.collections) == ["docs"]


def _tampered(make, only=""):
    """Wrap the multipart body so that one byte of the snapshot differs from what the repository holds."""
    def tampered(source, size, filename):
        content_type, length, body = make(source, size, filename)
        if not filename.startswith(only):
            return content_type, length, body

        def flipped():
            for index, chunk in enumerate(body):
                yield chunk if index != 1 else bytes([chunk[0] ^ 0xFF]) + chunk[1:]
        return content_type, length, flipped()
    return tampered


# Several nodes -----------------------------------------------------------------


@pytest.fixture
def cluster():
    peers = {11: "http://10.0.0.1:6335/", 22: "http://10.0.0.2:6335/", 33: "http://10.0.0.3:6335/"}
    nodes = [FakeQdrant(api_key=KEY, peer_id=peer, cluster=peers).start() for peer in sorted(peers)]
    for index, node in enumerate(nodes):
        # Each node holds its local shard of the collection: different points on each.
        node.create_collection("docs", points=[dict(p, id=100 * index + p["id"]) for p in points("node%d" % index, 5 + index)])
        node.members = nodes
    yield nodes
    for node in nodes:
        node.stop()


def test_a_cluster_without_nodes_is_refused(cluster, spec):
    with pytest.raises(ConfigError) as caught:
        run_backup(spec, backup_request(conn(cluster[0])))
    assert "is one peer of a cluster of 3 (peers 11, 22, 33)" in caught.value.message
    assert "base URLs of every peer's REST API" in caught.value.hint
    with pytest.raises(ConfigError, match="nodes lacks the peers 33 of the cluster"):
        run_backup(spec, backup_request({"token": KEY}, nodes=[cluster[0].url, cluster[1].url]))
    assert all(c[0] == "GET" for node in cluster for c in node.calls) and payload_keys(spec) == []


def test_a_cluster_is_snapshotted_and_restored_on_every_node(cluster, spec):
    before = [node.points("docs") for node in cluster]
    urls = [node.url for node in cluster]
    result = run_backup(spec, backup_request({"token": KEY}, nodes=urls))
    info = result["manifest"]["qdrant"]
    assert [(s["node"], s["node_index"], s["points_count"]) for s in info["snapshots"]] == [(urls[0], 0, 18), (urls[1], 1, 18), (urls[2], 2, 18)]
    assert result["manifest"]["positions"]["points"] == {"docs": 18}
    assert [n["peer_id"] for n in info["nodes"]] == [11, 22, 33]
    for node in cluster:
        assert [c[:2] for c in node.calls if c[0] != "GET"] == [
            ("POST", "/collections/docs/snapshots"), ("DELETE", "/collections/docs/snapshots/" + fake_name(node.calls, "docs"))]
        assert node.snapshot_names() == []
    for node in cluster:
        del node.collections["docs"]
    with pytest.raises(ConfigError, match="nodes lacks the peers 22, 33 of the cluster"):
        run_restore(spec, restore_request({"token": KEY}, result["backup"]["backup_id"], nodes=urls[:1]))
    standalone = FakeQdrant(api_key=KEY).start()
    try:
        with pytest.raises(ConfigError, match="holds the snapshots of 3 Qdrant node.s., the target has 1"):
            run_restore(spec, restore_request(conn(standalone), result["backup"]["backup_id"]))
        assert [c for c in standalone.calls if c[0] != "GET"] == []
    finally:
        standalone.stop()
    restored = run_restore(spec, restore_request({"token": KEY}, result["backup"]["backup_id"], nodes=urls))
    assert [node.points("docs") for node in cluster] == before
    assert restored["restored"]["points"] == {"docs": {urls[0]: 18, urls[1]: 18, urls[2]: 18}}
    for node, snap in zip(cluster, info["snapshots"]):
        uploads = [c for c in node.calls if c[0] == "POST" and c[1].endswith("/upload")]
        assert uploads == [("POST", "/collections/docs/snapshots/upload", {"wait": "true", "priority": "snapshot", "checksum": snap["checksum"]})]


# Through the modules ------------------------------------------------------------


def test_the_backup_and_restore_modules_through_ansible_playbook(fake, spec):
    """The modules end to end: check mode changes nothing, a missing collection fails clearly, backup and restore by upload."""
    from harness.playbook import run_tasks  # pylint: disable=import-outside-toplevel

    args = dict(repo=spec, cluster=CLUSTER, engine="qdrant", method="qdrant-snapshot", connection=conn(fake))
    results = run_tasks([
        {"name": "Plan", "dataprotection.databases.backup": args, "register": "planned", "check_mode": True},
        {"name": "Refused", "dataprotection.databases.backup": dict(args, collections=["nope"]), "register": "refused"},
        {"name": "Backup", "dataprotection.databases.backup": dict(args, collections=["docs"]), "register": "taken"},
    ]).results
    assert not results["planned"].get("failed"), results["planned"]
    assert results["planned"]["plan"]["collections"] == ["docs", "images"]
    assert results["refused"]["failed"] and "the Qdrant collection nope does not exist" in results["refused"]["msg"]
    taken = results["taken"]
    assert not taken.get("failed"), taken
    assert taken["backup"]["method"] == "qdrant-snapshot" and taken["backup"]["positions"]["points"] == {"docs": 25}
    assert KEY not in json.dumps(results)
    assert [c[1] for c in fake.calls if c[0] == "POST"] == ["/collections/docs/snapshots"] and fake.snapshot_names() == []
    before = fake.points("docs")
    del fake.collections["docs"]
    restore = dict(repo=spec, cluster=CLUSTER, engine="qdrant", backup_id=taken["backup"]["backup_id"], connection=conn(fake))
    restored = run_tasks([{"name": "Restore", "dataprotection.databases.restore": restore, "register": "restored"}]).results["restored"]
    assert not restored.get("failed"), restored
    assert restored["restored"]["collections"] == ["docs"] and fake.points("docs") == before


def test_the_fake_recovers_from_its_own_snapshot_location_and_checks_the_checksum(fake):
    """The fake's PUT .../snapshots/recover (location and checksum as SnapshotRecover documents); the engine uploads instead."""
    node = qdrant.Node(fake.url, conn(fake))
    made = node.api("POST", "/collections/docs/snapshots", {"wait": "true"})
    assert set(made) == {"name", "creation_time", "size", "checksum"} and len(made["checksum"]) == 64
    assert node.api("GET", "/collections/docs/snapshots") == [made]
    original = fake.points("docs")
    del fake.collections["docs"]["points"]["0"]
    location = "file:///qdrant/snapshots/docs/%s" % made["name"]
    with pytest.raises(EngineError, match=r"\(HTTP 400\): Checksum mismatch"):
        node.api("PUT", "/collections/docs/snapshots/recover", body={"location": location, "checksum": "0" * 64})
    assert len(fake.points("docs")) == 24
    assert node.api("PUT", "/collections/docs/snapshots/recover", body={"location": location, "checksum": made["checksum"]}) is True
    assert fake.points("docs") == original
    with pytest.raises(EngineError, match=r"\(HTTP 404\): Not found: Collection `nope` doesn't exist!"):
        node.collection("nope")
