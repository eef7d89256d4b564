# -*- coding: utf-8 -*-
# Copyright: contributors to the dataprotection.databases collection
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Weaviate: its own backup API (``weaviate-backup``), and volume snapshots (crash-consistent, shared in ``volume``).

B(experimental): ``weaviate-backup`` has never run against a real Weaviate.  It
is written from Weaviate's published REST API (the OpenAPI document
``openapi-specs/schema.json`` of weaviate/weaviate and the backup
documentation: ``POST /v1/backups/{backend}``, ``GET /v1/backups/{backend}/{id}``,
``POST`` and ``GET /v1/backups/{backend}/{id}/restore``, ``GET /v1/meta``,
``GET /v1/schema``, ``GET /v1/nodes``, ``DELETE /v1/schema/{class}``) and tested
against a fake server built from the same documents.

A backup checks in ``/v1/meta`` that the server's backup module
(``backup-filesystem`` or ``backup-s3``) is enabled, and in ``/v1/schema`` that
every class named in ``collections`` exists; then it asks Weaviate for a backup
of those classes (all of them when none are named) under an id derived from the
collection's backup id (lowercase, ``[a-z0-9_-]``) and polls its status until
``SUCCESS``.

Where the data lives:

- ``filesystem``: Weaviate writes the backup on the server's disk, in
  ``<BACKUP_FILESYSTEM_PATH>/<id>`` (the ``path`` its status reports).  When
  that directory is on this host (the module runs on the Weaviate host, as a
  user that can read and remove it), it is streamed into the repository as one
  tar object and then removed from the server's backup path, so the repository
  holds the backup like every other one (encryption, retention, copies).  A
  restore puts it back into the target's backup path before calling the
  restore API, and removes it again once the restore has finished.  When the
  directory is not on this host, the backup stays on the server's disk and the
  manifest says so (``weaviate.stored: false``, ``weaviate.location``): it is
  then only as safe as that disk, and the repository's retention does not
  delete it.
- ``s3``: the data stays in Weaviate's own bucket (``BACKUP_S3_BUCKET``); the
  manifest records the bucket and path the status reports.  Retention of the
  manifest does not delete it.

A restore restores the backup's classes (or the ``collections`` named) through
``POST /v1/backups/{backend}/{id}/restore`` into the server ``connection``
names, polled until ``SUCCESS``.  Weaviate refuses to restore a class that
exists; such classes are refused before anything changes unless ``force``, which
deletes them first.

The server is reached with the standard library: ``connection.host`` (default
127.0.0.1; an ``http://`` or ``https://`` URL is used as given),
``connection.port`` (default 8080), ``connection.token`` as
``Authorization: Bearer`` (an API key), ``connection.tls`` and
``connection.tls_ca_file`` for HTTPS.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json
import os
import re
import shutil
import socket
import ssl
import time
import urllib.error
import urllib.parse
import urllib.request

from ansible_collections.dataprotection.databases.plugins.module_utils import hostfiles, tools
from ansible_collections.dataprotection.databases.plugins.module_utils.engines import volume
from ansible_collections.dataprotection.databases.plugins.module_utils.errors import ConfigError, EngineError
from ansible_collections.dataprotection.databases.plugins.module_utils.timeutil import utcnow

METHODS = ("weaviate-backup", "volume-snapshot")
ENGINE = "weaviate"

# Volume snapshots: the storage directory as it is on disk, crash-consistent.
plan_snapshot = volume.plan_snapshot
quiesce = volume.quiesce
snapshot_facts = volume.snapshot_facts
plan_snapshot_restore = volume.plan_snapshot_restore
finish_snapshot_restore = volume.finish_snapshot_restore
remote_restore_next = volume.remote_restore_next

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8080
HTTP_TIMEOUT = 60
BACKENDS = ("filesystem", "s3")
DEFAULT_BACKEND = "filesystem"
BACKUP_OBJECT = "weaviate-backup.tar"
# Status phases (the OpenAPI BackupCreateStatusResponse / BackupRestoreStatusResponse enums).
DONE = "SUCCESS"
FAILED = ("FAILED", "CANCELED", "CANCELLING")
BACKEND_SETTINGS = {
    "filesystem": "BACKUP_FILESYSTEM_PATH (the directory Weaviate writes backups to)",
    "s3": "BACKUP_S3_BUCKET and the S3 credentials",
}
POLL_FIRST = 0.2
POLL_MAX = 5.0


def weaviate_id(backup_id):
    """Weaviate's backup id for one of ours: lowercase letters, digits, ``_`` and ``-`` only."""
    return re.sub(r"[^a-z0-9_-]", "-", backup_id.lower())


class Connection(object):
    """How to reach Weaviate's REST API: host (or a base URL), port, an API key, TLS."""

    def __init__(self, params):
        params = dict(params or {})
        self.port = int(params.get("port") or DEFAULT_PORT)
        host = params.get("host") or DEFAULT_HOST
        self.url = tools.http_base_url(host, self.port, DEFAULT_HOST)
        if params.get("tls") and self.url.startswith("http://") and "://" not in host:
            self.url = "https://" + self.url[len("http://"):]
        self.token = params.get("token")
        self.context = None
        if self.url.startswith("https://"):
            self.context = ssl.create_default_context(cafile=params.get("tls_ca_file") or None)

    def _headers(self, body):
        headers = {"Accept": "application/json", "User-Agent": "dataprotection.databases"}
        if body is not None:
            headers["Content-Type"] = "application/json"
        if self.token:
            headers["Authorization"] = "Bearer %s" % self.token
        return headers

    def call(self, method, path, body=None, timeout=HTTP_TIMEOUT):
        """One HTTP call; return (status, decoded JSON or None).  Wrong or missing API key and an unreachable server raise EngineError."""
        data = json.dumps(body).encode("utf-8") if body is not None else None
        request = urllib.request.Request(self.url + path, data=data, headers=self._headers(body), method=method)
        handlers = [urllib.request.ProxyHandler({})]
        if self.context is not None:
            handlers.append(urllib.request.HTTPSHandler(context=self.context))
        opener = urllib.request.build_opener(*handlers)
        try:
            with opener.open(request, timeout=timeout) as response:
                status, raw = response.status, response.read()
        except urllib.error.HTTPError as exc:
            try:
                raw = exc.read()
            except (IOError, OSError):
                raw = b""
            status = exc.code
        except (urllib.error.URLError, socket.timeout, OSError) as exc:
            raise EngineError(
                "cannot reach Weaviate at %s: %s" % (self.url, getattr(exc, "reason", exc)),
                hint="Check connection.host and connection.port (Weaviate's REST port, 8080 by default) and that Weaviate is running",
            )
        try:
            payload = json.loads(raw.decode("utf-8", "replace")) if raw else None
        except ValueError:
            payload = {"error": [{"message": raw.decode("utf-8", "replace").strip()[:200]}]}
        if status == 401:
            raise EngineError(
                "Weaviate at %s refused the request: %s (HTTP 401)" % (self.url, "the API key was not accepted" if self.token else "it needs an API key"),
                hint="Set connection.token to one of the keys of the server's AUTHENTICATION_APIKEY_ALLOWED_KEYS",
            )
        if status == 403:
            raise EngineError(
                "Weaviate at %s forbids %s %s to this API key (HTTP 403): %s" % (self.url, method, path, error_text(payload)),
                hint="Use an API key of a user allowed to manage backups and the schema (AUTHORIZATION_ADMINLIST_USERS or its RBAC roles)",
            )
        return status, payload

    def get(self, path):
        status, payload = self.call("GET", path)
        if status != 200 or not isinstance(payload, dict):
            raise EngineError("Weaviate at %s: GET %s failed (HTTP %d): %s" % (self.url, path, status, error_text(payload)),
                              hint="Check that connection.host and connection.port point at Weaviate's REST API")
        return payload


def error_text(payload):
    """The message of a Weaviate error reply (``{"error": [{"message": ...}]}``, or ``{"message": ...}``)."""
    if isinstance(payload, dict):
        errors = payload.get("error")
        if isinstance(errors, list):
            return "; ".join(str(e.get("message") if isinstance(e, dict) else e) for e in errors) or "no message"
        if isinstance(errors, str) and errors:
            return errors
        if payload.get("message"):
            return str(payload["message"])
    return "no message" if payload is None else json.dumps(payload)[:200]


def _backend(options):
    backend = (options or {}).get("backend") or DEFAULT_BACKEND
    if backend not in BACKENDS:
        raise ConfigError("backend %r is not a Weaviate backup backend this collection drives" % backend,
                          hint="Use backend: filesystem (backup-filesystem) or backend: s3 (backup-s3)")
    return backend


def inspect(conn, backend):
    """Version, the enabled backup module's settings, classes and nodes, read-only; a disabled module is refused."""
    meta = conn.get("/v1/meta")
    modules = meta.get("modules") or {}
    module = "backup-%s" % backend
    if module not in modules:
        enabled = sorted(m for m in modules if m.startswith("backup-"))
        raise EngineError(
            "Weaviate at %s does not have the backup module %s enabled (enabled backup modules: %s)"
            % (conn.url, module, ", ".join(enabled) or "none"),
            hint="Add %s to the server's ENABLE_MODULES setting, set %s, and restart Weaviate; or choose another backend"
            % (module, BACKEND_SETTINGS[backend]),
        )
    schema = conn.get("/v1/schema")
    classes = [c.get("class") for c in schema.get("classes") or [] if isinstance(c, dict) and c.get("class")]
    status, nodes = conn.call("GET", "/v1/nodes")
    names = [n.get("name") for n in (nodes or {}).get("nodes") or [] if isinstance(n, dict)] if status == 200 else []
    return {"version": meta.get("version"), "module": modules.get(module) or {}, "classes": classes, "nodes": names}


def choose_classes(server, wanted, url):
    if not wanted:
        if not server["classes"]:
            raise EngineError("Weaviate at %s has no classes (collections): there is nothing to back up" % url,
                              hint="Create a collection first, or check connection.host and connection.port")
        return list(server["classes"])
    unknown = [c for c in wanted if c not in server["classes"]]
    if unknown:
        raise ConfigError("Weaviate at %s has no class (collection) %s" % (url, ", ".join(unknown)),
                          hint="Its classes: %s (names are case-sensitive)" % (", ".join(server["classes"]) or "none"))
    return list(wanted)


def local_backups_path(server, backend):
    """The filesystem backend's backup path when it is a directory on this host, else None."""
    path = server["module"].get("backupsPath") if backend == "filesystem" else None
    return path if path and os.path.isabs(path) and os.path.isdir(path) else None


def plan_backup(request):
    """Check the server, its backup module and the classes, read-only."""
    conn = Connection(request.connection)
    backend = _backend(request.options)
    server = inspect(conn, backend)
    classes = choose_classes(server, request.options.get("collections"), conn.url)
    plan = {
        "server": conn.url,
        "server_version": server["version"],
        "backend": backend,
        "classes": classes,
        "nodes": server["nodes"],
        "objects": [],
    }
    local = local_backups_path(server, backend)
    if local:
        plan["tools"] = {"tar": {"path": tools.find_tool("tar", package="tar")}}
        plan["objects"] = [BACKUP_OBJECT]
        plan["data"] = "streamed from %s into the repository, then removed from the server's backup path" % local
    elif backend == "filesystem":
        plan["data"] = "stays on the server's disk (its backup path %s is not on this host)" % (server["module"].get("backupsPath") or "unknown")
    else:
        plan["data"] = "stays in Weaviate's S3 bucket %s" % (server["module"].get("bucketName") or "")
    # No "identity": Weaviate reports no stable id of its own (the host name in /v1/meta is its listen address).
    return plan


def _poll(conn, path, what, wid, timeout, failed_hint):
    """Poll a backup's or restore's status until SUCCESS; FAILED raises with the server's message, a timeout says it goes on."""
    deadline = time.monotonic() + max(int(timeout or 0), 1)
    delay = POLL_FIRST
    while True:
        status, payload = conn.call("GET", path)
        if status != 200 or not isinstance(payload, dict):
            raise EngineError("Weaviate at %s: the status of %s %s cannot be read (HTTP %d): %s" % (conn.url, what, wid, status, error_text(payload)))
        phase = payload.get("status")
        if phase == DONE:
            return payload
        if phase in FAILED:
            raise EngineError("Weaviate at %s reports %s %s as %s: %s" % (conn.url, what, wid, phase, payload.get("error") or "no message"),
                              hint=failed_hint)
        if time.monotonic() + delay > deadline:
            raise EngineError(
                "%s %s on Weaviate at %s did not finish within %s seconds (last status %s); it goes on on the server"
                % (what, wid, conn.url, timeout, phase),
                hint="Follow it with GET %s; raise operation_timeout for large data" % path,
            )
        time.sleep(delay)
        delay = min(delay * 2, POLL_MAX)


def _store_directory(ctx, directory):
    """Stream ``directory`` (a backup's home, ``<path>/<id>``) into the repository as one tar object."""
    tar = tools.find_tool("tar", package="tar")
    parent, name = os.path.split(directory.rstrip("/"))
    with tools.StreamingTool([tar, "-C", parent, "-cf", "-", name], what="tar") as proc:
        record = ctx.store(BACKUP_OBJECT, proc.stdout)
        proc.finish()
    return record


def run_backup(request, ctx):
    conn = Connection(request.connection)
    backend = _backend(request.options)
    server = inspect(conn, backend)
    classes = choose_classes(server, request.options.get("collections"), conn.url)
    wid = weaviate_id(ctx.backup_id)
    started = utcnow()
    status, created = conn.call("POST", "/v1/backups/%s" % backend, {"id": wid, "include": classes})
    if status == 422 and "already exists" in error_text(created).lower():
        raise EngineError("Weaviate at %s already has a backup %s on its %s backend: %s" % (conn.url, wid, backend, error_text(created)),
                          hint="Run the backup again (a new backup gets a new id), or remove that backup from the backend")
    if status != 200:
        raise EngineError("Weaviate at %s refused to create backup %s (HTTP %d): %s" % (conn.url, wid, status, error_text(created)))
    done = _poll(conn, "/v1/backups/%s/%s" % (backend, wid), "backup", wid, request.options.get("operation_timeout"),
                 "Read the server's log for the cause; nothing was recorded in the repository")
    ended = utcnow()
    info = {
        "backend": backend,
        "backup_id": wid,
        "classes": (created or {}).get("classes") or classes,
        "nodes": server["nodes"],
        "path": done.get("path") or (created or {}).get("path"),
        "bucket": done.get("bucket") or (created or {}).get("bucket") or server["module"].get("bucketName"),
        "stored": False,
    }
    if backend == "filesystem":
        home = _local_home(server, info, wid)
        if home:
            record = _store_directory(ctx, home)
            shutil.rmtree(home, ignore_errors=True)
            info.update({"stored": True, "location": "repository", "object": record["name"], "server_copy_removed": not os.path.exists(home)})
        else:
            info["location"] = "server disk: %s" % info["path"]
    else:
        info["location"] = "s3: bucket %s, path %s" % (info["bucket"], info["path"])
    return {
        "start_time": started,
        "end_time": ended,
        "engine_version": server["version"],
        # What backup_info lists of the backup (it shows positions, not the weaviate key).
        "positions": {"weaviate_backup_id": wid, "backend": backend, "classes": info["classes"], "stored": info["stored"]},
        "weaviate": info,
        "server": conn.url,
    }


def _local_home(server, info, wid):
    """The backup's directory on this host (the status's ``path``, else ``<backupsPath>/<id>``), or None."""
    candidates = [info.get("path")]
    base = local_backups_path(server, "filesystem")
    if base:
        candidates.append(os.path.join(base, wid))
    for path in candidates:
        if path and os.path.isabs(path) and os.path.basename(path.rstrip("/")) == wid and os.path.isdir(path):
            return path
    return None


# Restore ------------------------------------------------------------------


def restores_into_server(manifest):
    """A weaviate-backup restores through the server's API; volume snapshots are restored as snapshots."""
    return manifest.get("method") == "weaviate-backup"


def _info(manifest):
    info = manifest.get("weaviate")
    if not isinstance(info, dict) or not info.get("backup_id") or info.get("backend") not in BACKENDS:
        raise EngineError("backup %s has no Weaviate backup record in its manifest" % manifest["backup_id"])
    return info


def _object(manifest):
    records = [o for o in manifest["objects"] if o["name"].startswith(BACKUP_OBJECT)]
    if len(records) != 1:
        raise EngineError("backup %s has no %s object" % (manifest["backup_id"], BACKUP_OBJECT))
    return records[0]


def plan_restore(repository, manifest, request, logs=None):
    """What a restore would do; checks the server, its backup module, the classes and the backup path, changing nothing."""
    info = _info(manifest)
    backend = info["backend"]
    asked = request.options.get("backend")
    if asked and asked != backend:
        raise ConfigError("backup %s was taken with Weaviate's %s backend, not %s" % (manifest["backup_id"], backend, asked),
                          hint="Leave backend unset, or set it to %s" % backend)
    conn = Connection(request.connection)
    server = inspect(conn, backend)
    wanted = request.options.get("collections")
    classes = list(wanted) if wanted else list(info["classes"])
    unknown = [c for c in classes if c not in info["classes"]]
    if unknown:
        raise ConfigError("backup %s holds no class %s" % (manifest["backup_id"], ", ".join(unknown)),
                          hint="Its classes: %s" % ", ".join(info["classes"]))
    existing = [c for c in classes if c in server["classes"]]
    if existing and not request.force:
        raise ConfigError("Weaviate at %s already has the class(es) %s; Weaviate does not restore over an existing class" % (conn.url, ", ".join(existing)),
                          hint="Set force: true to delete them on the target first, or restore other collections")
    plan = {
        "server": conn.url,
        "server_version": server["version"],
        "backend": backend,
        "weaviate_backup_id": info["backup_id"],
        "classes": classes,
        "delete_classes": existing,
        "put_back": None,
        "data": info.get("location"),
    }
    if info.get("stored"):
        record = _object(manifest)
        base = local_backups_path(server, "filesystem")
        if not base:
            raise EngineError(
                "the backup is in the repository and goes back into the backup path of Weaviate at %s (%s), which is not a directory on this host"
                % (conn.url, server["module"].get("backupsPath") or "not reported"),
                hint="Run the restore on the Weaviate host (delegate_to it), with connection pointing at that server",
            )
        if not os.access(base, os.W_OK | os.X_OK):
            raise EngineError("the backup path %s of Weaviate at %s is not writable by this user" % (base, conn.url),
                              hint="Run the restore as root or as the user Weaviate runs as (become: true)")
        plan["put_back"] = os.path.join(base, info["backup_id"])
        plan["bytes"] = record["size"]
        plan["tools"] = {"tar": {"path": tools.find_tool("tar", package="tar")}}
    return plan


def restore(repository, manifest, request, logs=None):
    plan = plan_restore(repository, manifest, request, logs)
    conn = Connection(request.connection)
    info = _info(manifest)
    backend, wid = info["backend"], info["backup_id"]
    home = plan["put_back"]
    if home:
        shutil.rmtree(home, ignore_errors=True)
        tar = tools.find_tool("tar", package="tar")
        try:
            hostfiles.feed_object(repository, manifest, _object(manifest),
                                  [tar, "-x", "-f", "-", "-C", os.path.dirname(home), "--no-same-owner"], "tar")
        except BaseException:
            shutil.rmtree(home, ignore_errors=True)
            raise
        if not os.path.isdir(home):
            raise EngineError("the stored backup did not hold the directory %s" % os.path.basename(home))
    # The put-back directory is removed once the restore is over, but not while Weaviate may still be reading it.
    running = False
    try:
        for name in plan["delete_classes"]:
            status, payload = conn.call("DELETE", "/v1/schema/%s" % urllib.parse.quote(name, safe=""))
            if status not in (200, 204):
                raise EngineError("Weaviate at %s did not delete class %s (HTTP %d): %s" % (conn.url, name, status, error_text(payload)))
        path = "/v1/backups/%s/%s/restore" % (backend, wid)
        status, payload = conn.call("POST", path, {"include": plan["classes"]})
        if status == 404:
            raise EngineError("Weaviate at %s does not find backup %s on its %s backend: %s" % (conn.url, wid, backend, error_text(payload)),
                              hint="The backup's data is at %s; it must be reachable by the target server" % info.get("location"))
        if status != 200:
            raise EngineError("Weaviate at %s refused to restore backup %s (HTTP %d): %s" % (conn.url, wid, status, error_text(payload)))
        try:
            _poll(conn, path, "restore of backup", wid, request.options.get("operation_timeout"),
                  "Read the server's log for the cause; classes it restored in part may need deleting before a new attempt")
        except EngineError as exc:
            running = "goes on" in exc.message
            raise
    finally:
        if home and not running:
            shutil.rmtree(home, ignore_errors=True)
    return {
        "server": conn.url,
        "backend": backend,
        "weaviate_backup_id": wid,
        "classes": plan["classes"],
        "deleted_classes": plan["delete_classes"],
        "put_back": home,
    }
