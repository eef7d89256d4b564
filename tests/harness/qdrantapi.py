#!/usr/bin/env python
# -*- coding: utf-8 -*-
# Copyright: contributors to the dataprotection.databases collection
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""A fake Qdrant REST API for the ``qdrant-snapshot`` method's tests and the qdrant role's molecule scenario.

This is NOT Qdrant and runs no Qdrant code (no Qdrant server can run on the
test machines): it is a small stateful HTTP server on a loopback port (a
``ThreadingHTTPServer``), written from Qdrant's published OpenAPI description
(``docs/redoc/master/openapi.json`` of the qdrant/qdrant repository) and its
snapshot and distributed-deployment documentation.  It answers the calls the
engine makes with the reply shapes documented there:

- every JSON reply is ``{"result": ..., "status": "ok", "time": <seconds>}``;
  errors are ``{"status": {"error": "..."}, "time": ...}`` with 404 for a
  missing collection or snapshot, 400 for bad input and for a checksum
  mismatch (``Checksum mismatch: expected ..., actual ...``), 409 for a
  collection that already exists;
- the ``api-key`` header (or ``Authorization: Bearer``): without one 401
  ``Must provide an API key or an Authorization bearer token``, a wrong one
  401 ``Invalid API key or JWT`` (plain text, as Qdrant answers), a
  read-only key 403 on writes;
- ``GET /`` (title, version, commit), ``GET /cluster`` (``disabled``, or
  ``enabled`` with ``peer_id`` and ``peers`` holding p2p URIs),
  ``GET /collections``, ``GET|PUT|DELETE /collections/{name}``,
  ``PUT /collections/{name}/points`` (upsert) and
  ``POST /collections/{name}/points/scroll`` to put and read data;
- snapshots: ``POST /collections/{name}/snapshots`` makes a tar of the
  collection's JSON named ``{collection}-{peer_id}-{YYYY-MM-DD-HH-MM-SS}.snapshot``
  and answers its SnapshotDescription (name, creation_time, size, sha256
  checksum); ``GET`` lists them, ``GET .../{snapshot}`` downloads one,
  ``DELETE`` removes it; ``POST .../snapshots/upload`` (multipart field
  ``snapshot``; ``priority``, ``checksum``) checks the checksum, then
  replaces or creates the collection from the tar; ``PUT .../snapshots/recover``
  takes a ``location`` naming one of this server's snapshots
  (``file:///qdrant/snapshots/{collection}/{snapshot}``).

In a cluster, ``members`` lists the fakes of every peer (each holding its local
shard of a collection): the collection info's ``points_count`` counts them
all, as Qdrant's does (it sums the info of every shard, remote ones too).

Faults for the tests (``fault``): ``corrupt_download`` (the bytes served are
not the ones the checksum describes), ``truncate_download`` (the connection
drops halfway), ``no_checksum`` (descriptions without a checksum, as older
servers give), ``lose_points_on_upload`` (a recovery that drops a point).  ``calls`` records ``(method, path, query)`` of every request.

Run on its own (``qdrantapi.py --port 6333 [--api-key KEY]``) it serves until killed.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import argparse
import copy
import datetime
import hashlib
import http.server
import io
import json
import re
import ssl
import tarfile
import threading
import time
import urllib.parse

VERSION = "1.12.4"


class FakeQdrant(object):
    """One Qdrant node.  ``cluster`` is None (standalone) or the dict of peers ``{peer_id: p2p uri}`` this node sees."""

    def __init__(self, port=0, api_key=None, read_only_key=None, peer_id=None, cluster=None, host="127.0.0.1", tls=None):
        self.api_key = api_key
        self.read_only_key = read_only_key
        self.peer_id = peer_id if peer_id is not None else 3766212330831337
        self.cluster = cluster
        self.collections = {}
        self.snapshots = {}
        self.calls = []
        self.fault = None
        self.members = [self]
        self.lock = threading.Lock()
        fake = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):  # pylint: disable=arguments-differ
                pass

            def _dispatch(self):
                fake.handle(self)

            do_GET = do_POST = do_PUT = do_DELETE = _dispatch

        self.server = http.server.ThreadingHTTPServer((host, port), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self.url = "%s://%s:%d" % ("https" if tls else "http", host, self.port)
        if tls:
            # tls: (certificate file, key file), as Qdrant's service.enable_tls with tls.cert and tls.key serves.
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            context.load_cert_chain(*tls)
            self.server.socket = context.wrap_socket(self.server.socket, server_side=True)
        self.thread = None

    # Life cycle -----------------------------------------------------------

    def start(self):
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()
        return self

    def stop(self):
        self.server.shutdown()
        self.server.server_close()

    # State helpers for the tests -----------------------------------------

    def create_collection(self, name, size=4, distance="Cosine", points=None):
        self.collections[name] = {"config": {"params": {"vectors": {"size": size, "distance": distance}, "shard_number": 1,
                                                        "replication_factor": 1}},
                                  "points": {}}
        for point in points or []:
            self.collections[name]["points"][str(point["id"])] = copy.deepcopy(point)

    def points(self, name):
        return sorted((copy.deepcopy(p) for p in self.collections[name]["points"].values()), key=lambda p: str(p["id"]))

    def points_count(self, name):
        """What the collection info reports: the points of every shard of the cluster (each member holds its local shard)."""
        return sum(len(m.collections[name]["points"]) for m in self.members if name in m.collections)

    def snapshot_names(self, name=None):
        return sorted((c, s) for c, snaps in self.snapshots.items() for s in snaps if name is None or c == name)

    # HTTP ----------------------------------------------------------------

    @staticmethod
    def _send(handler, status, body, content_type="application/json"):
        if not isinstance(body, bytes):
            body = json.dumps(body).encode("utf-8")
        handler.send_response(status)
        handler.send_header("Content-Type", content_type)
        handler.send_header("Content-Length", str(len(body)))
        handler.end_headers()
        handler.wfile.write(body)

    def _ok(self, handler, result, started):
        self._send(handler, 200, {"result": result, "status": "ok", "time": round(time.monotonic() - started, 6)})

    def _error(self, handler, status, message, started):
        self._send(handler, status, {"status": {"error": message}, "time": round(time.monotonic() - started, 6)})

    def _authorized(self, handler, write):
        if not self.api_key:
            return True
        key = handler.headers.get("api-key")
        bearer = handler.headers.get("Authorization") or ""
        if key is None and bearer.startswith("Bearer "):
            key = bearer[len("Bearer "):]
        if key is None:
            self._send(handler, 401, b"Must provide an API key or an Authorization bearer token", "text/plain")
            return False
        if key == self.api_key:
            return True
        if key == self.read_only_key:
            if write:
                self._send(handler, 403, {"status": {"error": "Forbidden: Write access is required for this operation"}, "time": 0.0})
                return False
            return True
        self._send(handler, 401, b"Invalid API key or JWT", "text/plain")
        return False

    def _body(self, handler):
        length = int(handler.headers.get("Content-Length") or 0)
        return handler.rfile.read(length) if length else b""

    def handle(self, handler):
        started = time.monotonic()
        parts = urllib.parse.urlsplit(handler.path)
        path = parts.path
        query = dict(urllib.parse.parse_qsl(parts.query, keep_blank_values=True))
        method = handler.command
        body = self._body(handler)
        with self.lock:
            self.calls.append((method, path, query))
        if not self._authorized(handler, write=method != "GET" and not path.endswith("/points/scroll")):
            return
        segments = [urllib.parse.unquote(s) for s in path.strip("/").split("/")] if path.strip("/") else []
        try:
            self._route(handler, method, segments, query, body, started)
        except BrokenPipeError:
            pass

    def _route(self, handler, method, segs, query, body, started):  # pylint: disable=too-many-return-statements,too-many-branches
        if method == "GET" and not segs:
            return self._send(handler, 200, {"title": "qdrant - vector search engine", "version": VERSION, "commit": "0" * 40})
        if segs == ["cluster"] and method == "GET":
            if self.cluster is None:
                return self._ok(handler, {"status": "disabled"}, started)
            return self._ok(handler, {
                "status": "enabled", "peer_id": self.peer_id,
                "peers": dict((str(k), {"uri": v}) for k, v in self.cluster.items()),
                "raft_info": {"term": 2, "commit": 10, "pending_operations": 0, "leader": min(self.cluster), "role": "Follower",
                              "is_voter": True},
                "consensus_thread_status": {"consensus_thread_status": "working", "last_update": "2026-01-01T00:00:00Z"},
                "message_send_failures": {},
            }, started)
        if segs == ["collections"] and method == "GET":
            return self._ok(handler, {"collections": [{"name": n} for n in sorted(self.collections)]}, started)
        if len(segs) < 2 or segs[0] != "collections":
            return self._error(handler, 404, "Not found: %s" % handler.path, started)
        name = segs[1]
        rest = segs[2:]
        if rest == ["snapshots", "upload"] and method == "POST":
            return self._upload(handler, name, query, body, started)
        if rest == ["snapshots", "recover"] and method == "PUT":
            return self._recover(handler, name, body, started)
        if not rest and method == "PUT":
            if name in self.collections:
                return self._error(handler, 409, "Wrong input: Collection `%s` already exists!" % name, started)
            spec = json.loads(body or b"{}")
            vectors = spec.get("vectors") or {"size": 4, "distance": "Cosine"}
            self.create_collection(name, vectors.get("size", 4), vectors.get("distance", "Cosine"))
            return self._ok(handler, True, started)
        if name not in self.collections:
            return self._error(handler, 404, "Not found: Collection `%s` doesn't exist!" % name, started)
        collection = self.collections[name]
        if not rest and method == "GET":
            return self._ok(handler, {
                "status": "green", "optimizer_status": "ok", "segments_count": 2, "indexed_vectors_count": 0,
                "points_count": self.points_count(name), "config": copy.deepcopy(collection["config"]), "payload_schema": {},
            }, started)
        if not rest and method == "DELETE":
            del self.collections[name]
            return self._ok(handler, True, started)
        if rest == ["points"] and method == "PUT":
            for point in json.loads(body)["points"]:
                collection["points"][str(point["id"])] = point
            return self._ok(handler, {"operation_id": 1, "status": "completed"}, started)
        if rest == ["points", "scroll"] and method == "POST":
            return self._ok(handler, {"points": self.points(name), "next_page_offset": None}, started)
        if rest == ["snapshots"] and method == "POST":
            return self._ok(handler, self._create_snapshot(name), started)
        if rest == ["snapshots"] and method == "GET":
            return self._ok(handler, [self._describe(name, s) for s in sorted(self.snapshots.get(name, {}))], started)
        if len(rest) == 2 and rest[0] == "snapshots":
            snapshot = self.snapshots.get(name, {}).get(rest[1])
            if snapshot is None:
                return self._error(handler, 404, "Not found: Snapshot %s not found" % rest[1], started)
            if method == "DELETE":
                del self.snapshots[name][rest[1]]
                return self._ok(handler, True, started)
            if method == "GET":
                return self._download(handler, snapshot)
        return self._error(handler, 404, "Not found: %s %s" % (method, handler.path), started)

    # Snapshots ------------------------------------------------------------

    def _create_snapshot(self, name):
        data = snapshot_bytes(name, self.collections[name])
        now = datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0, tzinfo=None)
        snapshot = "%s-%s-%s.snapshot" % (name, self.peer_id, now.strftime("%Y-%m-%d-%H-%M-%S"))
        self.snapshots.setdefault(name, {})[snapshot] = {"data": data, "created": now.isoformat(), "checksum": hashlib.sha256(data).hexdigest()}
        return self._describe(name, snapshot)

    def _describe(self, name, snapshot):
        entry = self.snapshots[name][snapshot]
        description = {"name": snapshot, "creation_time": entry["created"], "size": len(entry["data"]), "checksum": entry["checksum"]}
        if self.fault == "no_checksum":
            description["checksum"] = None
        return description

    def _download(self, handler, snapshot):
        data = snapshot["data"]
        if self.fault == "corrupt_download":
            data = data[:-1] + bytes([data[-1] ^ 0xFF])
        handler.send_response(200)
        handler.send_header("Content-Type", "application/octet-stream")
        handler.send_header("Content-Length", str(len(snapshot["data"])))
        handler.end_headers()
        if self.fault == "truncate_download":
            handler.wfile.write(data[:len(data) // 2])
            handler.wfile.flush()
            handler.close_connection = True
            return None
        handler.wfile.write(data)
        return None

    def _load(self, name, data):
        self.collections[name] = load_snapshot(data)
        if self.fault == "lose_points_on_upload" and self.collections[name]["points"]:
            self.collections[name]["points"].pop(sorted(self.collections[name]["points"])[0])

    def _upload(self, handler, name, query, body, started):
        if query.get("priority") not in (None, "no_sync", "snapshot", "replica"):
            return self._error(handler, 400, "Bad request: unknown variant `%s`, expected one of `no_sync`, `snapshot`, `replica`"
                               % query.get("priority"), started)
        data = multipart_file(handler.headers.get("Content-Type") or "", body, "snapshot")
        if data is None:
            return self._error(handler, 400, "Bad request: multipart form without a snapshot field", started)
        actual = hashlib.sha256(data).hexdigest()
        expected = query.get("checksum")
        if expected and expected.lower() != actual:
            return self._error(handler, 400, "Checksum mismatch: expected %s, actual %s" % (actual, expected), started)
        try:
            self._load(name, data)
        except (tarfile.TarError, ValueError, KeyError) as exc:
            return self._error(handler, 400, "Bad input: the uploaded file is not a snapshot: %s" % exc, started)
        return self._ok(handler, True, started)

    def _recover(self, handler, name, body, started):
        spec = json.loads(body or b"{}")
        match = re.match(r"^file:///qdrant/snapshots/([^/]+)/([^/]+)$", spec.get("location") or "")
        entry = self.snapshots.get(match.group(1), {}).get(match.group(2)) if match else None
        if entry is None:
            return self._error(handler, 404, "Not found: Snapshot file %s does not exist" % spec.get("location"), started)
        if spec.get("checksum") and spec["checksum"].lower() != entry["checksum"]:
            return self._error(handler, 400, "Checksum mismatch: expected %s, actual %s" % (entry["checksum"], spec["checksum"]), started)
        self._load(name, entry["data"])
        return self._ok(handler, True, started)


def snapshot_bytes(name, collection):
    """A tar holding the collection's configuration and points as JSON (opaque to the engine)."""
    content = json.dumps({"name": name, "config": collection["config"], "points": collection["points"]}, sort_keys=True).encode("utf-8")
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w") as tar:
        info = tarfile.TarInfo("collection.json")
        info.size = len(content)
        info.mtime = 0
        tar.addfile(info, io.BytesIO(content))
    return out.getvalue()


def load_snapshot(data):
    with tarfile.open(fileobj=io.BytesIO(data), mode="r") as tar:
        handle = tar.extractfile("collection.json")
        content = json.loads(handle.read().decode("utf-8"))
    return {"config": content["config"], "points": content["points"]}


def multipart_file(content_type, body, field):
    """The bytes of one file field of a multipart/form-data body, or None."""
    match = re.search(r'boundary="?([^";]+)"?', content_type)
    if not content_type.startswith("multipart/form-data") or not match:
        return None
    delimiter = b"--" + match.group(1).encode("ascii")
    for part in body.split(delimiter)[1:]:
        if part.startswith(b"--"):
            break
        head, sep, content = part.partition(b"\r\n\r\n")
        if not sep:
            continue
        if ('name="%s"' % field).encode("ascii") in head:
            return content[:-2] if content.endswith(b"\r\n") else content
    return None


def main():
    parser = argparse.ArgumentParser(description="A fake Qdrant REST API on a loopback port, serving until killed.")
    parser.add_argument("--port", type=int, default=6333)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--api-key", dest="api_key")
    parser.add_argument("--peer-id", dest="peer_id", type=int)
    args = parser.parse_args()
    fake = FakeQdrant(port=args.port, api_key=args.api_key, peer_id=args.peer_id, host=args.host)
    print("fake Qdrant listening on %s" % fake.url, flush=True)
    try:
        fake.server.serve_forever()
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
