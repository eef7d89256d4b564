#!/usr/bin/env python
# -*- coding: utf-8 -*-
# Copyright: contributors to the dataprotection.databases collection
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""A stand-in for Weaviate's REST API on loopback, for tests and the weaviate role's molecule scenario.

No Weaviate server runs on the test machines, so this fake answers the
endpoints the collection uses the way Weaviate's published REST API describes
them (the OpenAPI document ``openapi-specs/schema.json`` of weaviate/weaviate,
and Weaviate's backup documentation, REST ``/v1/backups``):

- ``GET /v1/meta``: ``version``, ``hostname`` and ``modules``, an object keyed by
  the enabled module names; ``backup-filesystem`` reports ``backupsPath``
  (the server's ``BACKUP_FILESYSTEM_PATH``), ``backup-s3`` its ``bucketName``.
- ``GET/POST /v1/schema``, ``GET/DELETE /v1/schema/{className}``, ``POST``
  and ``GET /v1/objects`` (``?class=``), ``GET /v1/nodes``.
- ``POST /v1/backups/{backend}`` with ``{"id", "include"|"exclude"}``: the
  id must be lowercase ``[a-z0-9_-]``; an unknown backend (module not enabled),
  an unknown class or an id that exists already answer 422 with Weaviate's
  error envelope ``{"error": [{"message": ...}]}``.  The reply and the status
  (``GET /v1/backups/{backend}/{id}``) carry ``id``, ``backend``, ``path``,
  ``status``; the status moves STARTED -> TRANSFERRING -> SUCCESS, one phase
  per poll.  The filesystem backend writes real files where Weaviate does:
  ``<backupsPath>/<id>/backup_config.json`` and one directory per node
  (``<id>/<node>/backup.json`` and the class data), ``path`` being
  ``<backupsPath>/<id>``.  The s3 backend keeps the backup in memory as its
  "bucket" (``path`` ``s3://<bucket>/<id>``).
- ``POST /v1/backups/{backend}/{id}/restore`` with ``{"include"}``: 404 when
  the backup is not on the backend (the filesystem backend reads
  ``backup_config.json`` from disk), 422 for a class that exists already
  (Weaviate restores no class over an existing one).  Its status
  (``GET .../restore``) moves the same way; at SUCCESS the classes and objects
  are read back from the backup's files.
- API keys: with ``tokens`` set, a request without ``Authorization: Bearer``
  of an allowed key gets 401; a ``readonly`` key gets 403 for any change.

``fail_backup`` (a message) makes the next backup end FAILED, ``stall`` keeps
backups and restores in TRANSFERRING; ``reported_path`` plays a server on another
host (the backup path it reports is not where the files are written).  ``requests`` records every call
(method, path, JSON body).  Run as a program it serves until killed
(``--port``, ``--backups-path``, ``--modules``, ``--token``, ``--pid-file``, ``--port-file``).
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import argparse
import http.server
import json
import os
import re
import threading
import urllib.parse
import uuid

VERSION = "1.25.4"
NODE = "node1"
_ID = re.compile(r"^[a-z0-9_-]+$")
PHASES = ("STARTED", "TRANSFERRING", "SUCCESS")


class FakeWeaviate(object):
    """One Weaviate node: classes and objects in memory, backups on disk (filesystem) or in memory (s3)."""

    def __init__(self, backups_path=None, modules=("backup-filesystem",), tokens=None, readonly=None, host="127.0.0.1", port=0,
                 bucket="weaviate-backups", reported_path=None):
        self.backups_path = backups_path
        # A server on another host: the path it reports (meta, statuses) is not where this process writes.
        self.reported_path = reported_path or backups_path
        self.modules = list(modules)
        self.tokens = list(tokens or [])
        self.readonly = list(readonly or [])
        self.bucket_name = bucket
        self.classes = {}
        self.objects = {}
        self.backups = {}
        self.restores = {}
        self.bucket = {}
        self.fail_backup = None
        self.stall = False
        self.requests = []
        self.lock = threading.Lock()
        fake = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *args):  # pylint: disable=arguments-differ
                pass

            def _handle(self, method):
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length) if length else b""
                try:
                    body = json.loads(raw.decode("utf-8")) if raw else None
                except ValueError:
                    body = None
                with fake.lock:
                    fake.requests.append((method, self.path, body))
                    status, payload = fake.dispatch(method, self.path, body, self.headers.get("Authorization"))
                data = json.dumps(payload).encode("utf-8") if payload is not None else b""
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self):  # pylint: disable=invalid-name
                self._handle("GET")

            def do_POST(self):  # pylint: disable=invalid-name
                self._handle("POST")

            def do_DELETE(self):  # pylint: disable=invalid-name
                self._handle("DELETE")

        self.server = http.server.ThreadingHTTPServer((host, port), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self.url = "http://%s:%d" % (host, self.port)
        self.thread = None

    # Life cycle ----------------------------------------------------------

    def start(self):
        self.thread = threading.Thread(target=self.server.serve_forever)
        self.thread.daemon = True
        self.thread.start()
        return self

    def stop(self):
        self.server.shutdown()
        self.server.server_close()

    def calls(self, method=None, prefix="/v1/backups"):
        """The recorded (method, path, body) calls under ``prefix``."""
        return [r for r in self.requests if r[1].startswith(prefix) and (method is None or r[0] == method)]

    # Helpers for tests -------------------------------------------------

    def add_class(self, name, properties=("title",)):
        self.classes[name] = {"class": name, "properties": [{"name": p, "dataType": ["text"]} for p in properties]}
        self.objects.setdefault(name, [])

    def add_object(self, name, properties, object_id=None):
        record = {"class": name, "id": object_id or str(uuid.uuid4()), "properties": dict(properties)}
        self.objects[name].append(record)
        return record

    # The API ----------------------------------------------------------------

    @staticmethod
    def error(status, message):
        return status, {"error": [{"message": message}]}

    def _auth(self, method, header):
        if not self.tokens and not self.readonly:
            return None
        key = header[len("Bearer "):] if header and header.startswith("Bearer ") else None
        if key in self.tokens:
            return None
        if key in self.readonly:
            return None if method == "GET" else (403, {"error": [{"message": "forbidden: this API key may only read"}]})
        return 401, {"code": 401, "message": "unauthorized: invalid api key"}

    def dispatch(self, method, raw_path, body, auth):
        denied = self._auth(method, auth)
        if denied:
            return denied
        parsed = urllib.parse.urlsplit(raw_path)
        query = urllib.parse.parse_qs(parsed.query)
        parts = [urllib.parse.unquote(p) for p in parsed.path.split("/") if p]
        if parts[:1] != ["v1"]:
            return self.error(404, "not found")
        parts = parts[1:]
        if parts == ["meta"] and method == "GET":
            return 200, self.meta()
        if parts == [".well-known", "ready"]:
            return 200, None
        if parts == ["nodes"] and method == "GET":
            return 200, {"nodes": [{"name": NODE, "status": "HEALTHY", "version": VERSION}]}
        if parts[:1] == ["schema"]:
            return self.schema(method, parts[1:], body)
        if parts == ["objects"]:
            return self.objects_api(method, query, body)
        if parts[:1] == ["backups"] and len(parts) >= 2:
            return self.backups_api(method, parts[1:], body)
        return self.error(404, "no route for %s %s" % (method, parsed.path))

    def meta(self):
        modules = {}
        for name in self.modules:
            if name == "backup-filesystem":
                modules[name] = {"backupsPath": self.reported_path}
            elif name == "backup-s3":
                modules[name] = {"bucketName": self.bucket_name, "rootName": ""}
            else:
                modules[name] = {}
        return {"hostname": "http://[::]:8080", "version": VERSION, "modules": modules}

    def schema(self, method, rest, body):
        if not rest and method == "GET":
            return 200, {"classes": [dict(c) for c in self.classes.values()]}
        if not rest and method == "POST":
            name = (body or {}).get("class")
            if not name:
                return self.error(422, "class name is required")
            if name in self.classes:
                return self.error(422, "class name \"%s\" already exists" % name)
            self.add_class(name, [p.get("name") for p in (body or {}).get("properties") or []])
            return 200, self.classes[name]
        if len(rest) == 1:
            name = rest[0]
            if method == "GET":
                return (200, self.classes[name]) if name in self.classes else (404, None)
            if method == "DELETE":
                self.classes.pop(name, None)
                self.objects.pop(name, None)
                return 200, None
        return self.error(405, "method not allowed")

    def objects_api(self, method, query, body):
        if method == "POST":
            name = (body or {}).get("class")
            if name not in self.classes:
                return self.error(422, "invalid object: class \"%s\" not found in schema" % name)
            return 200, self.add_object(name, (body or {}).get("properties") or {}, (body or {}).get("id"))
        if method == "GET":
            names = query.get("class") or sorted(self.objects)
            found = [o for n in names for o in self.objects.get(n, [])]
            return 200, {"objects": found, "totalResults": len(found)}
        return self.error(405, "method not allowed")

    # Backups -----------------------------------------------------------------

    def _home(self, backend, backup_id):
        """Where the backup is written (the filesystem backend's directory on this machine)."""
        if backend == "filesystem":
            return os.path.join(self.backups_path, backup_id)
        return "s3://%s/%s" % (self.bucket_name, backup_id)

    def _reported(self, backend, backup_id):
        """The ``path`` replies carry: ``<backupsPath>/<id>`` as the server reports it, or the s3 URL."""
        if backend == "filesystem":
            return os.path.join(self.reported_path, backup_id)
        return self._home(backend, backup_id)

    def _stored(self, backend, backup_id):
        """The backup's descriptor and class data as the backend holds them, or None."""
        if backend == "s3":
            return self.bucket.get(backup_id)
        home = self._home(backend, backup_id)
        try:
            with open(os.path.join(home, "backup_config.json")) as handle:
                config = json.load(handle)
            with open(os.path.join(home, NODE, "classes.json")) as handle:
                config["data"] = json.load(handle)
        except (IOError, OSError, ValueError):
            return None
        return config

    def backups_api(self, method, rest, body):
        backend = rest[0]
        if "backup-%s" % backend not in self.modules:
            return self.error(422, "no backup backend \"backup-%s\": did you enable the right module?" % backend)
        if len(rest) == 1 and method == "POST":
            return self.create_backup(backend, body or {})
        if len(rest) == 2 and method == "GET":
            job = self.backups.get((backend, rest[1]))
            if job is None:
                return self.error(404, "backup \"%s\" not found" % rest[1])
            self._advance(job, self._write_backup)
            return 200, self._status(job)
        if len(rest) == 3 and rest[2] == "restore" and method == "POST":
            return self.create_restore(backend, rest[1], body or {})
        if len(rest) == 3 and rest[2] == "restore" and method == "GET":
            job = self.restores.get((backend, rest[1]))
            if job is None:
                return self.error(404, "restore of backup \"%s\" not found" % rest[1])
            self._advance(job, self._finish_restore)
            return 200, self._status(job)
        return self.error(405, "method not allowed")

    @staticmethod
    def _status(job):
        reply = {"id": job["id"], "backend": job["backend"], "path": job["path"], "status": job["status"]}
        if job.get("error"):
            reply["error"] = job["error"]
        return reply

    def _advance(self, job, on_success):
        if job["status"] not in PHASES or job["status"] == "SUCCESS":
            return
        if self.stall and job["status"] == "TRANSFERRING":
            return
        phase = PHASES[PHASES.index(job["status"]) + 1]
        if phase == "SUCCESS" and job.get("fail"):
            job["status"], job["error"] = "FAILED", job["fail"]
            return
        if phase == "SUCCESS":
            error = on_success(job)
            if error:
                job["status"], job["error"] = "FAILED", error
                return
        job["status"] = phase

    def create_backup(self, backend, body):
        backup_id = body.get("id") or ""
        if not _ID.match(backup_id):
            return self.error(422, "invalid backup id \"%s\": only lowercase letters, digits, '_' and '-'" % backup_id)
        include, exclude = body.get("include") or [], body.get("exclude") or []
        if include and exclude:
            return self.error(422, "malformed request: 'include' and 'exclude' cannot both contain values")
        unknown = [c for c in include if c not in self.classes]
        if unknown:
            return self.error(422, "class %s doesn't exist" % ", ".join(unknown))
        if (backend, backup_id) in self.backups or self._stored(backend, backup_id) or (
                backend == "filesystem" and os.path.exists(self._home(backend, backup_id))):
            return self.error(422, "backup \"%s\" already exists at \"%s\"" % (backup_id, self._reported(backend, backup_id)))
        classes = [c for c in (include or sorted(self.classes)) if c not in exclude]
        if not classes:
            return self.error(422, "no class to back up")
        job = {
            "id": backup_id, "backend": backend, "path": self._reported(backend, backup_id), "status": "STARTED", "classes": classes,
            # The data as of the request: Weaviate backs up what the classes hold when the backup starts.
            "data": dict((c, {"schema": dict(self.classes[c]), "objects": [dict(o) for o in self.objects.get(c, [])]}) for c in classes),
            "fail": self.fail_backup,
        }
        self.fail_backup = None
        self.backups[(backend, backup_id)] = job
        return 200, {"id": backup_id, "backend": backend, "path": job["path"], "classes": classes, "status": "STARTED"}

    def _write_backup(self, job):
        config = {"id": job["id"], "version": "2.1", "serverVersion": VERSION, "status": "SUCCESS",
                  "nodes": {NODE: {"classes": job["classes"]}}}
        if job["backend"] == "s3":
            self.bucket[job["id"]] = dict(config, data=job["data"])
            return None
        home = self._home(job["backend"], job["id"])
        node_dir = os.path.join(home, NODE)
        os.makedirs(node_dir)
        with open(os.path.join(node_dir, "backup.json"), "w") as handle:
            json.dump({"id": job["id"], "node": NODE, "classes": [{"name": c} for c in job["classes"]]}, handle)
        with open(os.path.join(node_dir, "classes.json"), "w") as handle:
            json.dump(job["data"], handle)
        with open(os.path.join(home, "backup_config.json"), "w") as handle:
            json.dump(config, handle)
        return None

    def create_restore(self, backend, backup_id, body):
        stored = self._stored(backend, backup_id)
        if stored is None:
            return self.error(404, "backup id \"%s\" does not exist: %s" % (backup_id, self._reported(backend, backup_id)))
        include = body.get("include") or stored["nodes"][NODE]["classes"]
        unknown = [c for c in include if c not in stored["nodes"][NODE]["classes"]]
        if unknown:
            return self.error(422, "class %s is not in backup \"%s\"" % (", ".join(unknown), backup_id))
        existing = [c for c in include if c in self.classes]
        if existing:
            return self.error(422, "restore class %s: already exists" % ", ".join(existing))
        job = {"id": backup_id, "backend": backend, "path": self._reported(backend, backup_id), "status": "STARTED", "classes": include}
        self.restores[(backend, backup_id)] = job
        return 200, {"id": backup_id, "backend": backend, "path": job["path"], "classes": include, "status": "STARTED"}

    def _finish_restore(self, job):
        stored = self._stored(job["backend"], job["id"])
        if stored is None:
            return "backup %s disappeared from the backend during the restore" % job["id"]
        for name in job["classes"]:
            self.classes[name] = dict(stored["data"][name]["schema"])
            self.objects[name] = [dict(o) for o in stored["data"][name]["objects"]]
        return None


def main(argv=None):
    parser = argparse.ArgumentParser(description="A fake Weaviate REST API (backups, schema, objects) on loopback")
    parser.add_argument("--port", type=int, default=8080)
    parser.add_argument("--backups-path", required=True)
    parser.add_argument("--modules", default="backup-filesystem", help="comma-separated enabled modules")
    parser.add_argument("--token", action="append", default=[], help="an allowed API key (repeatable)")
    parser.add_argument("--pid-file")
    parser.add_argument("--port-file", help="write the port listened on here (with --port 0, a free one)")
    args = parser.parse_args(argv)
    fake = FakeWeaviate(args.backups_path, [m for m in args.modules.split(",") if m], tokens=args.token, port=args.port)
    if args.pid_file:
        with open(args.pid_file, "w") as handle:
            handle.write("%d\n" % os.getpid())
    if args.port_file:
        with open(args.port_file + ".tmp", "w") as handle:
            handle.write("%d\n" % fake.port)
        os.rename(args.port_file + ".tmp", args.port_file)
    try:
        fake.server.serve_forever()
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
