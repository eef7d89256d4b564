# -*- coding: utf-8 -*-
# Copyright: contributors to the dataprotection.databases collection
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Milvus: logical exports (``milvus-export``), the upstream ``milvus-backup`` tool (EXPERIMENTAL) and volume snapshots
after a flush of every collection (EXPERIMENTAL).

The first two live in ``milvus_native``; this module dispatches to them and
holds the volume-snapshot hooks described below.

EXPERIMENTAL: this code has never run against a real Milvus (none can run on
the machines that test this collection).  It is tested against a fake HTTP
server built from the RESTful API v2 reference: "List Collections"
(``POST /v2/vectordb/collections/list`` with ``{"dbName": ...}``, answering
``{"code": 0, "data": [names]}``) and "Flush Collection"
(``POST /v2/vectordb/collections/flush`` with ``{"dbName": ...,
"collectionName": ...}``, answering ``{"code": 0, "data": {}}``); errors are
``{"code": <non-zero>, "message": ...}``, usually with HTTP 200.

Before the volumes are snapshotted, every collection of the databases named
(``connection.databases``, default ``[default]``) is flushed: Milvus seals its
growing segments and writes them to the object storage.  Recent Milvus
versions answer the REST flush only once the segments are persisted (the v2
handler waits for the flush state); older ones may answer once they are
sealed, and the REST API has no call to wait for them: that difference is
unproven here.

Consistency, decided: the manifest says ``consistency: crash`` with
``flushed: true`` and the collections.  The flush does not stop inserts: what
is written after it lives in the message queue (Milvus' write-ahead log:
Pulsar, Kafka, RocksMQ or Woodpecker) until the next flush.  And Milvus keeps
its data in three places: the metadata in etcd, the segments in the object
storage (MinIO, S3), the recent writes in the message queue.  Which volumes
make a restorable Milvus is a question of the deployment: the snapshot must
cover etcd's and the object storage's volumes (and the message queue's to
keep what was written after the flush).  A standalone Milvus whose
``volumes/`` (etcd, minio, milvus) lie on one file system is snapshotted at
one instant by a local provider; volumes snapshotted one after the other are
not one point in time: etcd may then name segments the object storage's
snapshot lacks, or the other way round.  The plan warns.  A remote object
storage (S3) is not snapshotted at all.

The server is reached over its REST API with the standard library only:
``connection.host`` (default 127.0.0.1; an ``http://`` or ``https://`` URL is
used as given), ``connection.port`` (default 19530), and either
``connection.token`` (an API key) or ``connection.user`` and
``connection.password``, sent as ``Authorization: Bearer user:password``.
Milvus exposes no stable cluster identity over REST, so none is recorded.
``snapshot.data_dir`` names the directory on this host for a local provider.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json
import socket
import urllib.error
import urllib.request

from ansible_collections.dataprotection.databases.plugins.module_utils import tools
from ansible_collections.dataprotection.databases.plugins.module_utils.errors import ConfigError, EngineError
from ansible_collections.dataprotection.databases.plugins.module_utils.engines import milvus_native, volume
from ansible_collections.dataprotection.databases.plugins.module_utils.quiesce import Quiesce
from ansible_collections.dataprotection.databases.plugins.module_utils.timeutil import utcnow

METHODS = ("milvus-export", "milvus-backup", "volume-snapshot")
ENGINE = "milvus"
DEFAULT_HOST = "127.0.0.1"
HTTP_TIMEOUT = 60
FLUSH_TIMEOUT = 3600
LIST_PATH = "/v2/vectordb/collections/list"
FLUSH_PATH = "/v2/vectordb/collections/flush"
AUTH_CODE = 1800  # "user hasn't authenticated"
HIDDEN = milvus_native.HIDDEN


class Connection(milvus_native.Settings):
    """How to reach Milvus' REST API v2: a base URL and a bearer token (an API key, or user:password)."""

    def __init__(self, params):
        super(Connection, self).__init__(params)
        self.url = tools.http_base_url((params or {}).get("host"), self.port, DEFAULT_HOST)

    def _headers(self):
        headers = {"Accept": "application/json", "Content-Type": "application/json", "User-Agent": "dataprotection.databases"}
        secret = self.secret()
        if secret:
            headers["Authorization"] = "Bearer %s" % secret
        return headers

    def call(self, path, body, timeout=HTTP_TIMEOUT):
        """One POST with a JSON body; return (status, body text).  EngineError when the server cannot be reached."""
        data = json.dumps(body).encode("utf-8")
        request = urllib.request.Request(self.url + path, data=data, headers=self._headers(), method="POST")
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        try:
            with opener.open(request, timeout=timeout) as response:
                return response.status, response.read().decode("utf-8", "replace")
        except urllib.error.HTTPError as exc:
            try:
                text = exc.read().decode("utf-8", "replace")
            except (IOError, OSError):
                text = ""
            return exc.code, text
        except (urllib.error.URLError, socket.timeout, OSError) as exc:
            raise EngineError("cannot reach Milvus at %s: %s" % (self.url, self.scrub(str(getattr(exc, "reason", exc)))),
                              hint="Check connection.host and connection.port (the proxy's port, default 19530) and that Milvus is running")

    def api(self, path, body, timeout=HTTP_TIMEOUT):
        """Call an endpoint; return its ``data`` or raise EngineError saying what went wrong (never with the credentials)."""
        status, text = self.call(path, body, timeout)
        try:
            payload = json.loads(text)
        except ValueError:
            payload = None
        code = payload.get("code") if isinstance(payload, dict) else None
        message = self.scrub(str(payload.get("message") or "")) if isinstance(payload, dict) else ""
        who = "user %s" % self.user if self.user else ("the token" if self.token else "no credentials")
        if status == 401 or code == AUTH_CODE:
            raise EngineError("Milvus at %s did not accept %s (%s)" % (self.url, who, message or "HTTP %d" % status),
                              hint="Check connection.user and connection.password (or connection.token); authorization is on for this server")
        if status == 403 or "permission deny" in message.lower() or "privilege" in message.lower():
            raise EngineError("Milvus at %s denies %s %s: %s" % (self.url, who, path, message or "HTTP %d" % status),
                              hint="Grant the role of that user the privileges ShowCollections and Flush on the databases backed up")
        if not isinstance(payload, dict) or "code" not in payload:
            raise EngineError("%s%s did not answer like the Milvus REST API v2 (HTTP %d): %s" % (self.url, path, status, self.scrub(text.strip()[:200])),
                              hint="Check that connection.host and connection.port point at a Milvus proxy (REST API v2, Milvus 2.4 or later)")
        if status != 200 or code != 0:
            raise EngineError("Milvus at %s: %s %s failed (code %s): %s" % (self.url, path, json.dumps(body, sort_keys=True), code, message))
        return payload.get("data")

    def collections(self, database):
        data = self.api(LIST_PATH, {"dbName": database})
        if not isinstance(data, list):
            raise EngineError("Milvus at %s listed the collections of database %s as %r, not a list" % (self.url, database, data))
        return [str(name) for name in data]

    def flush(self, database, collection, timeout=FLUSH_TIMEOUT):
        return self.api(FLUSH_PATH, {"dbName": database, "collectionName": collection}, timeout=timeout)


def plan_snapshot(request, local=False):
    """Read-only: the collections of each database (which also proves the credentials may list them)."""
    data_dir = volume.storage_dir(request, local, "directory that holds Milvus' volumes (etcd, object storage, message queue)")
    conn = Connection(request.connection)
    collections = dict((database, conn.collections(database)) for database in conn.databases)
    warnings = [
        "Milvus: the snapshot is crash-consistent (consistency: crash): the flush persists the growing segments first but does not stop "
        "inserts; later ones are only in the message queue",
        "Milvus keeps its metadata in etcd and its segments in the object storage (MinIO, S3): the snapshot must cover the volumes of etcd "
        "and of the object storage (and of the message queue for what was written after the flush); volumes snapshotted one after the "
        "other are not one point in time, and an object storage outside these volumes (S3) is not in the snapshot at all",
        "Milvus' REST API cannot show that the user may flush: a refusal comes from the flush itself, before anything is snapshotted",
    ]
    if not any(collections.values()):
        warnings.append("Milvus at %s has no collection in %s: nothing is flushed" % (conn.url, ", ".join(conn.databases)))
    return {
        "server": conn.url,
        "server_version": None,
        "data_dir": data_dir,
        "databases": list(conn.databases),
        "collections": collections,
        "quiesce": "POST %s for every collection (segments sealed and persisted; inserts are not stopped)" % FLUSH_PATH,
        "warnings": warnings,
    }


class Flush(Quiesce):
    """A flush of every collection before the snapshot.  Nothing is held afterwards: the snapshot stays crash-consistent."""

    consistency = "crash"

    def __init__(self, conn, plan, timeout=FLUSH_TIMEOUT):
        super(Flush, self).__init__()
        self.conn = conn
        self.plan = plan
        self.timeout = timeout
        self.flushed = []

    def hold(self):
        for database in self.plan["databases"]:
            for collection in self.plan["collections"].get(database) or []:
                self.conn.flush(database, collection, timeout=self.timeout)
                self.flushed.append({"database": database, "collection": collection})
        self.facts.update({"flushed_at": utcnow(), "collections": list(self.flushed)})


def quiesce(request, plan):
    given = request.options.get("flush_timeout")
    return Flush(Connection(request.connection), plan, timeout=FLUSH_TIMEOUT if given is None else float(given))


def snapshot_facts(request, ctx, held):
    """The manifest's facts: the flushed collections (per database)."""
    return {
        "engine_version": held.plan.get("server_version"),
        "server": held.plan.get("server"),
        "data_dir": held.plan.get("data_dir"),
        "flushed": True,
        "flushed_collections": list(held.flushed),
        "databases": list(held.plan.get("databases") or []),
    }


def plan_snapshot_restore(repository, manifest, request, logs, data_dir, mounted=False):
    if logs is not None:
        raise ConfigError("Milvus volume snapshots have no log chain: point-in-time restores are not offered")
    owner = volume.check_restore(request, data_dir, mounted, "Milvus", "Start etcd, the object storage and Milvus on %s yourself" % data_dir)
    return {"data_dir": data_dir, "owner": owner, "flushed_collections": manifest.get("flushed_collections") or []}


def finish_snapshot_restore(repository, manifest, request, logs, data_dir):
    return volume.finish_restore(request, data_dir, "Milvus")


def remote_restore_next(manifest, logs):
    return ("Mount the new volumes where etcd, the object storage (MinIO) and Milvus kept their data when backup %s was taken, and start "
            "etcd and the object storage before Milvus: the copy is crash-consistent, and Milvus replays from its message queue what was "
            "written after the flush" % manifest["backup_id"])


# Native methods: milvus-export (pymilvus) and milvus-backup (the upstream tool, EXPERIMENTAL) ------------------------


def plan_backup(request):
    if request.method == "milvus-backup":
        return milvus_native.plan_tool_backup(request)
    return milvus_native.plan_export(request)


def run_backup(request, ctx):
    if request.method == "milvus-backup":
        return milvus_native.run_tool_backup(request, ctx)
    return milvus_native.run_export(request, ctx)


def restores_into_server(manifest):
    return manifest.get("method") in ("milvus-export", "milvus-backup")


def _native(manifest, logs):
    if logs is not None:
        raise ConfigError("Milvus backups have no log chain: point-in-time restores are not offered", hint="Restore a backup by backup_id")
    if manifest.get("method") not in ("milvus-export", "milvus-backup"):
        raise ConfigError("backup %s was taken with method %s, which is not restored through the server" % (manifest["backup_id"], manifest.get("method")))


def plan_restore(repository, manifest, request, logs=None):
    _native(manifest, logs)
    if manifest["method"] == "milvus-backup":
        return milvus_native.plan_tool_restore(manifest, request)
    return milvus_native.plan_import(repository, manifest, request)


def restore(repository, manifest, request, logs=None):
    _native(manifest, logs)
    if manifest["method"] == "milvus-backup":
        return milvus_native.run_tool_restore(manifest, request)
    return milvus_native.run_import(repository, manifest, request)
