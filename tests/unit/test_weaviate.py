# -*- coding: utf-8 -*-
# Copyright: contributors to the dataprotection.databases collection
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Weaviate ``weaviate-backup``: backups and restores through Weaviate's backup API.

No Weaviate server runs here.  The server is ``tests/harness/weaviateapi.py``,
a threaded HTTP server on loopback built from Weaviate's published REST API
(OpenAPI ``openapi-specs/schema.json`` of weaviate/weaviate; the backup
documentation: ``POST /v1/backups/{backend}``, ``GET /v1/backups/{backend}/{id}``,
``POST``/``GET /v1/backups/{backend}/{id}/restore``; ``GET /v1/meta`` listing the
enabled modules; ``GET /v1/schema``): statuses STARTED -> TRANSFERRING ->
SUCCESS across polls, 422 for a disabled backend, an unknown class, an existing
backup id or a restore over an existing class, 401/403 for API keys, and the
filesystem backend writing ``<backupsPath>/<id>/...`` on disk and reading it
back for a restore.  The tests assert the exact calls made and their outcomes.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json
import os
import shutil

import pytest

from ansible_collections.dataprotection.databases.plugins.module_utils.backup import BackupRequest, run_backup
from ansible_collections.dataprotection.databases.plugins.module_utils.engines import weaviate
from ansible_collections.dataprotection.databases.plugins.module_utils.errors import ConfigError, EngineError
from ansible_collections.dataprotection.databases.plugins.module_utils.manifest import read_manifest
from ansible_collections.dataprotection.databases.plugins.module_utils.repository import LocalRepo
from ansible_collections.dataprotection.databases.plugins.module_utils.restore import RestoreRequest, run_restore

from harness.weaviateapi import FakeWeaviate

CLUSTER = "vectors"
TOKEN = "s3cret-weaviate-key"


def committed(spec, cluster=CLUSTER):
    return [info.key for info in LocalRepo({"path": spec["path"]}).list("%s/backups/" % cluster)]


@pytest.fixture(autouse=True)
def fast_polls(monkeypatch):
    monkeypatch.setattr(weaviate, "POLL_FIRST", 0.01)
    monkeypatch.setattr(weaviate, "POLL_MAX", 0.05)


def seeded(fake):
    fake.add_class("Article", ["title"])
    fake.add_class("Author", ["name"])
    for title in ("one", "two", "three"):
        fake.add_object("Article", {"title": title})
    fake.add_object("Author", {"name": "Ada"})
    return fake


@pytest.fixture
def backups(tmp_path):
    path = tmp_path / "weaviate-backups"
    path.mkdir()
    return str(path)


@pytest.fixture
def fake(backups):
    server = seeded(FakeWeaviate(backups)).start()
    yield server
    server.stop()


def conn(server, **extra):
    return dict({"host": "127.0.0.1", "port": server.port}, **extra)


def backup_request(server, **options):
    opts = {"collections": None, "backend": None, "nodes": None, "operation_timeout": 30}
    opts.update(options)
    return BackupRequest("weaviate", "weaviate-backup", CLUSTER, connection=conn(server), options=opts)


def restore_request(server, backup_id, force=False, **options):
    opts = {"collections": None, "backend": None, "nodes": None, "operation_timeout": 30}
    opts.update(options)
    return RestoreRequest("weaviate", CLUSTER, None, backup_id=backup_id, force=force, options=opts, connection=conn(server))


def titles(server, name="Article"):
    return sorted(o["properties"]["title"] for o in server.objects.get(name, []))


def test_weaviate_ids_are_lowercase_and_url_safe():
    assert weaviate.weaviate_id("Vectors.EU-weaviate-backup-20261203210500") == "vectors-eu-weaviate-backup-20261203210500"
    assert weaviate.weaviate_id("a_b-c") == "a_b-c"


def test_backup_streams_the_server_directory_then_a_deleted_class_is_restored(spec, fake, backups):
    result = run_backup(spec, backup_request(fake))
    manifest = result["manifest"]
    wid = weaviate.weaviate_id(manifest["backup_id"])
    posts = fake.calls("POST")
    assert posts == [("POST", "/v1/backups/filesystem", {"id": wid, "include": ["Article", "Author"]})]
    polls = fake.calls("GET")
    assert [p[1] for p in polls] == ["/v1/backups/filesystem/%s" % wid] * 2
    info = manifest["weaviate"]
    assert info["backend"] == "filesystem" and info["backup_id"] == wid
    assert info["classes"] == ["Article", "Author"] and info["nodes"] == ["node1"]
    assert info["path"] == os.path.join(backups, wid)
    assert info["stored"] is True and info["location"] == "repository" and info["server_copy_removed"] is True
    assert manifest["engine_version"] == "1.25.4"
    assert manifest["positions"] == {"weaviate_backup_id": wid, "backend": "filesystem", "classes": ["Article", "Author"], "stored": True}
    assert [o["name"] for o in manifest["objects"]] == ["weaviate-backup.tar"] and manifest["compression"] == "none"
    assert not os.path.exists(os.path.join(backups, wid)), "the server's copy is removed once the repository holds it"
    assert read_manifest(LocalRepo({"path": spec["path"]}), CLUSTER, manifest["backup_id"])["weaviate"]["backup_id"] == wid

    # Lose a class on the server, then restore it from the repository.
    fake.classes.pop("Article")
    fake.objects.pop("Article")
    before = len(fake.requests)
    result = run_restore(spec, restore_request(fake, manifest["backup_id"], collections=["Article"]))
    assert result["restored"]["classes"] == ["Article"] and result["restored"]["deleted_classes"] == []
    assert result["restored"]["put_back"] == os.path.join(backups, wid)
    assert titles(fake) == ["one", "three", "two"]
    assert len(fake.objects["Author"]) == 1
    calls = [(m, p, b) for m, p, b in fake.requests[before:] if p.startswith("/v1/backups")]
    assert calls[0] == ("POST", "/v1/backups/filesystem/%s/restore" % wid, {"include": ["Article"]})
    assert [c[:2] for c in calls[1:]] == [("GET", "/v1/backups/filesystem/%s/restore" % wid)] * 2
    assert not os.path.exists(os.path.join(backups, wid)), "the put-back directory is removed after the restore"


def test_restore_refuses_an_existing_class_unless_force_and_check_mode_changes_nothing(spec, fake, backups):
    manifest = run_backup(spec, backup_request(fake, collections=["Article"]))["manifest"]
    assert manifest["weaviate"]["classes"] == ["Article"]
    fake.add_object("Article", {"title": "written after the backup"})
    before = len(fake.requests)
    with pytest.raises(ConfigError) as refused:
        run_restore(spec, restore_request(fake, manifest["backup_id"]))
    assert "Article" in refused.value.message and "force" in refused.value.hint
    assert [r for r in fake.requests[before:] if r[0] != "GET"] == []
    assert os.listdir(backups) == []

    plan = run_restore(spec, restore_request(fake, manifest["backup_id"], force=True), check_mode=True)
    assert "restored" not in plan and plan["plan"]["delete_classes"] == ["Article"]
    assert plan["plan"]["put_back"] == os.path.join(backups, manifest["weaviate"]["backup_id"])
    assert [r for r in fake.requests[before:] if r[0] != "GET"] == [] and len(fake.objects["Article"]) == 4

    result = run_restore(spec, restore_request(fake, manifest["backup_id"], force=True))
    assert result["restored"]["deleted_classes"] == ["Article"]
    assert ("DELETE", "/v1/schema/Article", None) in fake.requests[before:]
    assert titles(fake) == ["one", "three", "two"]


def test_a_disabled_backup_module_is_refused_before_any_change(spec, backups):
    server = seeded(FakeWeaviate(backups, modules=("backup-s3", "text2vec-openai"))).start()
    try:
        with pytest.raises(EngineError) as refused:
            run_backup(spec, backup_request(server))
        assert "backup-filesystem" in refused.value.message and "backup-s3" in refused.value.message
        assert "ENABLE_MODULES" in refused.value.hint and "BACKUP_FILESYSTEM_PATH" in refused.value.hint
        assert [r for r in server.requests if r[0] != "GET"] == []
        assert committed(spec) == [] and os.listdir(backups) == []
    finally:
        server.stop()


def test_an_unknown_class_or_backend_is_refused_before_any_change(spec, fake):
    with pytest.raises(ConfigError) as unknown:
        run_backup(spec, backup_request(fake, collections=["Article", "article"]))
    assert "article" in unknown.value.message and "Article, Author" in unknown.value.hint
    with pytest.raises(ConfigError):
        run_backup(spec, backup_request(fake, backend="gcs"))
    assert fake.calls("POST") == [] and committed(spec) == []


def test_a_failed_backup_is_an_error_with_the_servers_message_and_nothing_is_stored(spec, fake):
    fake.fail_backup = "write chunk: no space left on device"
    with pytest.raises(EngineError) as failed:
        run_backup(spec, backup_request(fake))
    assert "FAILED" in failed.value.message and "no space left on device" in failed.value.message
    assert len(fake.calls("POST")) == 1
    assert committed(spec) == []


def test_a_backup_still_running_at_the_timeout_is_reported_with_its_id(spec, fake):
    fake.stall = True
    with pytest.raises(EngineError) as late:
        run_backup(spec, backup_request(fake, operation_timeout=1))
    wid = fake.calls("POST")[0][2]["id"]
    assert wid in late.value.message and "goes on on the server" in late.value.message
    assert "operation_timeout" in late.value.hint
    assert committed(spec) == []


class Ctx(object):
    """What backup.run_backup hands an engine, with a fixed backup id."""

    def __init__(self, backup_id):
        self.backup_id = backup_id
        self.objects = []

    def store(self, base_name, source):
        data = source.read()
        self.objects.append({"name": base_name, "size": len(data)})
        return self.objects[-1]


def test_a_backup_id_that_exists_on_the_server_is_a_clear_error(fake, backups):
    request = backup_request(fake)
    weaviate.run_backup(request, Ctx("vectors-weaviate-backup-20261203000000"))
    with pytest.raises(EngineError) as exists:
        weaviate.run_backup(request, Ctx("vectors-weaviate-backup-20261203000000"))
    assert "already has a backup vectors-weaviate-backup-20261203000000" in exists.value.message
    assert "already exists" in exists.value.message
    assert len(fake.calls("POST")) == 2


def test_api_keys_go_as_bearer_and_a_wrong_or_read_only_key_is_refused(spec, backups):
    server = seeded(FakeWeaviate(backups, tokens=[TOKEN], readonly=["reader"])).start()
    try:
        request = backup_request(server)
        with pytest.raises(EngineError) as missing:
            weaviate.plan_backup(request)
        assert "401" in missing.value.message and "AUTHENTICATION_APIKEY_ALLOWED_KEYS" in missing.value.hint
        request.connection["token"] = "wrong-key"
        with pytest.raises(EngineError) as wrong:
            weaviate.plan_backup(request)
        assert "not accepted" in wrong.value.message and "wrong-key" not in str(wrong.value)
        request.connection["token"] = "reader"
        with pytest.raises(EngineError) as reader:
            run_backup(spec, request)
        assert "403" in reader.value.message and committed(spec) == []
        request.connection["token"] = TOKEN
        request.connection["host"] = server.url + "/"
        request.connection["port"] = 1
        manifest = run_backup(spec, request)["manifest"]
        assert TOKEN not in json.dumps(manifest)
        assert manifest["server"] == server.url
    finally:
        server.stop()


def test_the_s3_backend_leaves_the_data_in_weaviates_bucket_and_restores_from_it(spec, backups):
    server = seeded(FakeWeaviate(backups, modules=("backup-s3",))).start()
    try:
        manifest = run_backup(spec, backup_request(server, backend="s3"))["manifest"]
        wid = manifest["weaviate"]["backup_id"]
        assert manifest["objects"] == [] and manifest["weaviate"]["stored"] is False
        assert manifest["weaviate"]["path"] == "s3://weaviate-backups/%s" % wid
        assert manifest["weaviate"]["bucket"] == "weaviate-backups"
        assert manifest["weaviate"]["location"].startswith("s3: bucket weaviate-backups")
        assert wid in server.bucket and os.listdir(backups) == []
        server.classes.clear()
        server.objects.clear()
        result = run_restore(spec, restore_request(server, manifest["backup_id"]))
        assert result["restored"]["put_back"] is None
        assert titles(server) == ["one", "three", "two"] and [o["properties"]["name"] for o in server.objects["Author"]] == ["Ada"]
        with pytest.raises(ConfigError):
            run_restore(spec, restore_request(server, manifest["backup_id"], backend="filesystem"))
    finally:
        server.stop()


def test_a_backup_path_not_on_this_host_stays_on_the_servers_disk_and_restores_from_there(spec, backups):
    remote = "/srv/weaviate-on-another-host/backups"
    server = seeded(FakeWeaviate(backups, reported_path=remote)).start()
    try:
        plan = run_backup(spec, backup_request(server), check_mode=True)["plan"]
        assert plan["objects"] == [] and "stays on the server's disk" in plan["data"]
        manifest = run_backup(spec, backup_request(server))["manifest"]
        wid = manifest["weaviate"]["backup_id"]
        assert manifest["objects"] == [] and manifest["weaviate"]["stored"] is False
        assert manifest["weaviate"]["location"] == "server disk: %s/%s" % (remote, wid)
        assert os.path.isfile(os.path.join(backups, wid, "backup_config.json")), "Weaviate's own copy is left in place"
        server.classes.pop("Author")
        server.objects.pop("Author")
        result = run_restore(spec, restore_request(server, manifest["backup_id"], collections=["Author"]))
        assert result["restored"]["put_back"] is None
        assert [o["properties"]["name"] for o in server.objects["Author"]] == ["Ada"]

        # Gone from the server's disk: the restore API's 404 is a clear error.
        shutil.rmtree(os.path.join(backups, wid))
        server.classes.clear()
        with pytest.raises(EngineError) as missing:
            run_restore(spec, restore_request(server, manifest["backup_id"]))
        assert "does not find backup %s" % wid in missing.value.message and remote in missing.value.hint
        assert server.classes == {}
    finally:
        server.stop()


def test_the_modules_back_up_and_restore_through_a_play(tmp_path, fake, backups):
    """The backup and restore modules as a play runs them: check mode plans, then a backup and a restore with force."""
    from harness.playbook import run_tasks, task  # pylint: disable=import-outside-toplevel

    repo = {"type": "local", "path": str(tmp_path / "play-repo")}
    connection = {"host": "127.0.0.1", "port": fake.port}
    common = dict(repo=repo, cluster=CLUSTER, engine="weaviate", connection=connection)
    run = run_tasks([
        task("backup_repo", "repo", repo=repo),
        dict(task("backup", "planned", method="weaviate-backup", collections=["Author"], **common), check_mode=True),
        task("backup", "taken", method="weaviate-backup", collections=["Author"], **common),
        task("restore", "refused", backup_id="{{ taken.backup.backup_id }}", **common),
        task("restore", "restored", backup_id="{{ taken.backup.backup_id }}", force=True, **common),
        task("backup_info", "info", repo=repo, cluster=CLUSTER),
    ])
    assert run["planned"]["plan"]["classes"] == ["Author"] and run["planned"]["plan"]["backend"] == "filesystem", run["planned"]
    assert not run["taken"].get("failed") and run["taken"]["backup"]["objects"] == ["weaviate-backup.tar"], run["taken"]
    assert run["refused"]["failed"] and "already has the class(es) Author" in run["refused"]["msg"], run["refused"]
    assert run["restored"]["restored"]["deleted_classes"] == ["Author"], run["restored"]
    assert [b["backup_id"] for b in run["info"]["backups"]] == [run["taken"]["backup"]["backup_id"]], run["info"]
    assert [o["properties"]["name"] for o in fake.objects["Author"]] == ["Ada"]
    assert [c for c in fake.calls("POST") if c[1] == "/v1/backups/filesystem"] == [
        ("POST", "/v1/backups/filesystem", {"id": weaviate.weaviate_id(run["taken"]["backup"]["backup_id"]), "include": ["Author"]})]


def test_a_restore_still_running_at_the_timeout_keeps_the_put_back_backup(spec, fake, backups):
    manifest = run_backup(spec, backup_request(fake, collections=["Author"]))["manifest"]
    wid = manifest["weaviate"]["backup_id"]
    fake.classes.pop("Author")
    fake.stall = True
    with pytest.raises(EngineError) as late:
        run_restore(spec, restore_request(fake, manifest["backup_id"], operation_timeout=1))
    assert "restore of backup %s" % wid in late.value.message and "goes on on the server" in late.value.message
    assert os.path.isfile(os.path.join(backups, wid, "backup_config.json")), "Weaviate may still be reading it"
    fake.stall = False
    status = weaviate.Connection(conn(fake)).get("/v1/backups/filesystem/%s/restore" % wid)
    assert status["status"] == "SUCCESS" and [o["properties"]["name"] for o in fake.objects["Author"]] == ["Ada"]


def test_connection_urls_tls_and_the_bearer_header():
    plain = weaviate.Connection({"host": "weaviate.internal", "token": TOKEN})
    assert plain.url == "http://weaviate.internal:8080" and plain.context is None
    assert plain._headers({"id": "x"})["Authorization"] == "Bearer %s" % TOKEN  # pylint: disable=protected-access
    assert "Authorization" not in weaviate.Connection({})._headers(None)  # pylint: disable=protected-access
    secure = weaviate.Connection({"host": "weaviate.internal", "port": 8443, "tls": True})
    assert secure.url == "https://weaviate.internal:8443" and secure.context is not None
    given = weaviate.Connection({"host": "https://vectors.example.com/weaviate/", "port": 1})
    assert given.url == "https://vectors.example.com/weaviate"
    with pytest.raises(ConfigError):
        weaviate.Connection({"host": "ftp://vectors.example.com"})
