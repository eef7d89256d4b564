# -*- coding: utf-8 -*-
# Copyright: contributors to the dataprotection.databases collection
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Qdrant: per-collection snapshots through the REST API (``qdrant-snapshot``), and volume snapshots.

``qdrant-snapshot`` (B(experimental): written against Qdrant's published
OpenAPI description and snapshot documentation, tested against a stand-in of
that API, never run against a real Qdrant server).  For every requested
collection on every node it

- reads the collection's point count and vectors configuration
  (``GET /collections/{name}``),
- asks for a snapshot (``POST /collections/{name}/snapshots?wait=true``),
- streams the download (``GET /collections/{name}/snapshots/{snapshot}``)
  straight into the repository, hashing the bytes on the way, and compares
  them with the sha256 and size the snapshot's description reports,
- deletes the snapshot on the server (``DELETE``), on success and on every
  failure path.

A collection snapshot holds only the shards of the node it is taken on, so a
distributed deployment is snapshotted on every node: ``nodes`` lists the base
URLs of every peer's REST API.  ``GET /cluster`` only names the peers'
internal (p2p, port 6335) addresses, not their REST URLs, so a cluster of more
than one peer without ``nodes`` is refused rather than guessed at.

A restore uploads each node's snapshot to the matching node
(``POST /collections/{name}/snapshots/upload?priority=snapshot&checksum=...``,
multipart, streamed from the repository with an exact ``Content-Length``),
then checks the restored collection's point count against the manifest.  A
collection that already exists on the target is refused unless ``force``.

``connection.token`` is sent as the ``api-key`` header, never elsewhere.
``connection.host`` is a host name (port ``connection.port``, default 6333)
or an ``http(s)://`` URL.  Qdrant has no identity that survives a rebuild
(peer ids are per node and per storage; a single node reports none), so no
identity is recorded; the peer ids go into the manifest for information.

Volume snapshots (``volume-snapshot``) are crash-consistent copies of the
storage directory, shared with the other storage-directory engines in
``volume``.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import hashlib
import http.client
import json
import re
import socket
import ssl
import urllib.error
import urllib.parse
import urllib.request
import uuid

from ansible_collections.dataprotection.databases.plugins.module_utils import tools
from ansible_collections.dataprotection.databases.plugins.module_utils.engines import volume
from ansible_collections.dataprotection.databases.plugins.module_utils.errors import ConfigError, DataProtectionError, EngineError, IntegrityError
from ansible_collections.dataprotection.databases.plugins.module_utils.manifest import object_key
from ansible_collections.dataprotection.databases.plugins.module_utils.timeutil import utcnow
from ansible_collections.dataprotection.databases.plugins.module_utils.transfer import ObjectSource

METHODS = ("qdrant-snapshot", "volume-snapshot")
ENGINE = "qdrant"
SNAPSHOT_METHOD = "qdrant-snapshot"
DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 6333
HTTP_TIMEOUT = 60
CHUNK = 1024 * 1024
NODES_HINT = ("Set nodes to the base URLs of every peer's REST API (for example http://qdrant-0:6333, http://qdrant-1:6333): "
              "GET /cluster names the peers' internal p2p addresses only, and a collection snapshot holds only the shards of "
              "the node it is taken on")

# Volume snapshots: the storage directory as it is on disk, crash-consistent.
plan_snapshot = volume.plan_snapshot
quiesce = volume.quiesce
snapshot_facts = volume.snapshot_facts
plan_snapshot_restore = volume.plan_snapshot_restore
finish_snapshot_restore = volume.finish_snapshot_restore
remote_restore_next = volume.remote_restore_next


def node_url(value, port=DEFAULT_PORT):
    """A node's base URL from a host name, ``host:port`` or an http(s) URL."""
    value = str(value or "").strip()
    if not value:
        raise ConfigError("an empty Qdrant node address was given", hint="Give host names or http(s):// URLs of the nodes' REST API")
    if "://" in value:
        return tools.http_base_url(value, port, DEFAULT_HOST)
    match = re.match(r"^(\[[^\]]+\]|[^:/\[\]]+):(\d+)$", value)
    if match:
        return "http://%s:%d" % (match.group(1), int(match.group(2)))
    return tools.http_base_url(value, port, DEFAULT_HOST)


def _public_url(url):
    """A URL without user information (kept in plans, messages and the manifest)."""
    parts = urllib.parse.urlsplit(url)
    netloc = parts.netloc.rsplit("@", 1)[-1]
    return urllib.parse.urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))


def _quote(name):
    return urllib.parse.quote(str(name), safe="")


class Node(object):
    """One Qdrant node's REST API: base URL, API key (the ``api-key`` header), TLS settings."""

    def __init__(self, url, connection=None, timeout=HTTP_TIMEOUT):
        connection = dict(connection or {})
        self.url = url.rstrip("/")
        self.name = _public_url(self.url)
        self.token = connection.get("token")
        self.timeout = timeout
        handlers = [urllib.request.ProxyHandler({})]
        if self.url.startswith("https://"):
            context = ssl.create_default_context(cafile=connection.get("tls_ca_file") or None)
            handlers.append(urllib.request.HTTPSHandler(context=context))
        self.opener = urllib.request.build_opener(*handlers)

    def _headers(self, extra=None):
        headers = {"Accept": "application/json", "User-Agent": "dataprotection.databases"}
        if self.token:
            headers["api-key"] = self.token
        headers.update(extra or {})
        return headers

    def open(self, method, path, query=None, data=None, headers=None, timeout=None):
        """Send one request; return the open response (status 2xx) or raise EngineError/ConfigError for the others."""
        url = self.url + path
        if query:
            url += "?" + urllib.parse.urlencode(query)
        request = urllib.request.Request(url, data=data, headers=self._headers(headers), method=method)
        try:
            return self.opener.open(request, timeout=timeout or self.timeout)
        except urllib.error.HTTPError as exc:
            try:
                body = exc.read().decode("utf-8", "replace")
            except (IOError, OSError):
                body = ""
            self._raise(exc.code, body, method, path)
        except (urllib.error.URLError, socket.timeout, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            if isinstance(reason, ssl.SSLCertVerificationError):
                raise EngineError("the TLS certificate of Qdrant at %s cannot be verified: %s" % (self.name, reason),
                                  hint="Set connection.tls_ca_file to the certificate authority that signed the server's certificate")
            raise EngineError("cannot reach Qdrant at %s: %s" % (self.name, reason),
                              hint="Check connection.host, connection.port (default 6333) or nodes, and that Qdrant is running")
        return None

    def _raise(self, status, body, method, path):
        try:
            payload = json.loads(body)
        except ValueError:
            payload = None
        error = None
        if isinstance(payload, dict) and isinstance(payload.get("status"), dict):
            error = payload["status"].get("error")
        text = (error or body or "").strip()[:300]
        if status == 401:
            if self.token:
                raise EngineError("Qdrant at %s refused the API key (HTTP 401): %s" % (self.name, text),
                                  hint="Check connection.token against the server's service.api_key")
            raise EngineError("Qdrant at %s requires an API key (HTTP 401): %s" % (self.name, text),
                              hint="Set connection.token to the server's service.api_key")
        if status == 403:
            raise EngineError("Qdrant at %s forbids %s %s with this API key (HTTP 403): %s" % (self.name, method, path, text),
                              hint="Use the read-write key (service.api_key), not the read-only one, or a JWT that grants manage access")
        raise EngineError("Qdrant at %s: %s %s failed (HTTP %d): %s" % (self.name, method, path, status, text), status=status)

    def api(self, method, path, query=None, body=None, timeout=None):
        """Call a JSON endpoint; return its ``result``."""
        data = None
        headers = None
        if body is not None:
            data = json.dumps(body).encode("utf-8")
            headers = {"Content-Type": "application/json"}
        elif method in ("POST", "PUT"):
            data = b""
        with self.open(method, path, query, data, headers, timeout) as response:
            text = response.read().decode("utf-8", "replace")
            status = response.status
        try:
            payload = json.loads(text)
        except ValueError:
            payload = None
        if not isinstance(payload, dict) or "status" not in payload:
            raise EngineError("%s%s did not answer like the Qdrant REST API (HTTP %d): %s" % (self.name, path, status, text.strip()[:200]),
                              hint="Check that connection.host/port or nodes point at Qdrant's REST port (6333), not its gRPC (6334) or p2p port")
        if status == 202 or payload.get("status") != "ok":
            raise EngineError("Qdrant at %s did not finish %s %s (HTTP %d, status %r)" % (self.name, method, path, status, payload.get("status")))
        return payload.get("result")

    def version(self):
        with self.open("GET", "/") as response:
            text = response.read().decode("utf-8", "replace")
        try:
            info = json.loads(text)
        except ValueError:
            info = None
        if not isinstance(info, dict) or "version" not in info:
            raise EngineError("%s did not answer like Qdrant (GET / gave no version): %s" % (self.name, text.strip()[:200]),
                              hint="Check that connection.host/port or nodes point at Qdrant's REST port (6333)")
        return info["version"]

    def cluster(self):
        return self.api("GET", "/cluster") or {}

    def collections(self):
        result = self.api("GET", "/collections") or {}
        return sorted(c["name"] for c in result.get("collections") or [])

    def collection(self, name):
        info = self.api("GET", "/collections/%s" % _quote(name)) or {}
        params = (info.get("config") or {}).get("params") or {}
        return {"points_count": info.get("points_count"), "vectors": params.get("vectors"), "sparse_vectors": params.get("sparse_vectors"),
                "shard_number": params.get("shard_number"), "replication_factor": params.get("replication_factor")}


def _timeout(request):
    return int(request.options.get("operation_timeout") or 3600)


def target_nodes(connection, options, timeout=HTTP_TIMEOUT):
    """The nodes to work on: ``nodes`` when given, else the connection's server, refused when it is one peer of several."""
    port = int(connection.get("port") or DEFAULT_PORT)
    given = options.get("nodes") or []
    if given:
        urls = [node_url(n, port) for n in given]
        if len(set(urls)) != len(urls):
            raise ConfigError("nodes names a node twice: %s" % ", ".join(_public_url(u) for u in urls))
        return [Node(u, connection, timeout) for u in urls], True
    node = Node(tools.http_base_url(connection.get("host"), port, DEFAULT_HOST), connection, timeout)
    return [node], False


def describe_nodes(nodes, given):
    """Version and cluster view of each node; refuses a multi-peer cluster without ``nodes`` and a ``nodes`` list that misses peers."""
    described = []
    for node in nodes:
        version = node.version()
        cluster = node.cluster()
        peers = sorted(str(p) for p in (cluster.get("peers") or {})) if cluster.get("status") == "enabled" else []
        peer_id = cluster.get("peer_id") if cluster.get("status") == "enabled" else None
        described.append({"url": node.name, "version": version, "peer_id": peer_id, "peers": peers})
    first = described[0]
    if len(first["peers"]) > 1 and not given:
        raise ConfigError("Qdrant at %s is one peer of a cluster of %d (peers %s): snapshotting it alone would miss the other peers' shards"
                          % (first["url"], len(first["peers"]), ", ".join(first["peers"])), hint=NODES_HINT)
    if given and first["peers"]:
        seen = set(str(d["peer_id"]) for d in described)
        missing = sorted(set(first["peers"]) - seen)
        if missing:
            raise ConfigError("nodes lacks the peers %s of the cluster (it names peers %s)" % (", ".join(missing), ", ".join(sorted(seen))),
                              hint=NODES_HINT)
        if len(seen) != len(described):
            raise ConfigError("two of the given nodes are the same Qdrant peer", hint=NODES_HINT)
    return described


def _object_base(index, node_index, collection):
    safe = re.sub(r"[^A-Za-z0-9._-]", "_", collection)[:80]
    return "qdrant-%03d-node%d-%s.snapshot" % (index, node_index, safe)


def _wanted(requested, available, where):
    if not requested:
        return list(available)
    requested = list(dict.fromkeys(requested))
    missing = [c for c in requested if c not in available]
    if missing:
        several = len(missing) > 1
        raise ConfigError("the Qdrant collection%s %s do%s not exist %s" % ("s" if several else "", ", ".join(missing), "" if several else "es", where),
                          hint="Collections there: %s" % (", ".join(available) or "none"))
    return requested


def _plan_snapshot_backup(request):
    nodes, given = target_nodes(request.connection, request.options)
    described = describe_nodes(nodes, given)
    per_node = []
    collections = None
    for node, info in zip(nodes, described):
        available = node.collections()
        wanted = _wanted(request.options.get("collections"), available, "on Qdrant at %s" % node.name)
        per_node.append(wanted)
        collections = wanted if collections is None else collections
        if set(wanted) != set(collections):
            raise ConfigError("the Qdrant nodes hold different collections: %s has %s, %s has %s"
                              % (described[0]["url"], ", ".join(collections), info["url"], ", ".join(wanted)),
                              hint="Give every node of one cluster in nodes, or name the collections to back up")
    if not collections:
        raise ConfigError("Qdrant at %s has no collections to back up" % described[0]["url"], hint="Create a collection first")
    plan = {
        "server": described[0]["url"],
        "server_version": described[0]["version"],
        "nodes": described,
        "collections": collections,
        "snapshots": [{"collection": c, "node": d["url"]} for d in described for c in collections],
        "experimental": True,
    }
    return plan, nodes


def plan_backup(request):
    """Check the nodes, the API key and the collections, read-only."""
    if request.method != SNAPSHOT_METHOD:
        raise ConfigError("engine qdrant runs method %s as a volume snapshot, not through plan_backup" % request.method)
    plan, dummy = _plan_snapshot_backup(request)
    return plan


class _Hashing(object):
    """A file-like reader over a download that hashes and counts what passes through."""

    def __init__(self, response, what):
        self.response = response
        self.what = what
        self.hash = hashlib.sha256()
        self.size = 0
        length = response.headers.get("Content-Length")
        self.length = int(length) if length and length.isdigit() else None

    def read(self, size=CHUNK):
        try:
            data = self.response.read(size if size and size > 0 else CHUNK)
        except (http.client.HTTPException, OSError) as exc:
            raise EngineError("the download of %s broke off after %d bytes: %s" % (self.what, self.size, exc or type(exc).__name__),
                              hint="Nothing was kept; run the backup again once the node is reachable")
        if data:
            self.hash.update(data)
            self.size += len(data)
        elif self.length is not None and self.size < self.length:
            raise EngineError("the download of %s broke off after %d of %d bytes" % (self.what, self.size, self.length),
                              hint="Nothing was kept; run the backup again once the node is reachable")
        return data


def _delete_snapshot(node, collection, name):
    try:
        node.api("DELETE", "/collections/%s/snapshots/%s" % (_quote(collection), _quote(name)), {"wait": "true"})
    except EngineError:
        return False
    return True


def _snapshot_one(ctx, node, node_index, collection, index, timeout, left):
    """Snapshot one collection on one node, stream it into the repository, check it, delete it on the server."""
    info = node.collection(collection)
    description = node.api("POST", "/collections/%s/snapshots" % _quote(collection), {"wait": "true"}, timeout=timeout)
    name = (description or {}).get("name") if isinstance(description, dict) else None
    if not name or "/" in name:
        raise EngineError("Qdrant at %s answered the snapshot request for %s without a snapshot name: %r" % (node.name, collection, description))
    expected = description.get("checksum")
    try:
        path = "/collections/%s/snapshots/%s" % (_quote(collection), _quote(name))
        with node.open("GET", path, headers={"Accept": "application/octet-stream"}, timeout=timeout) as response:
            reader = _Hashing(response, "snapshot %s of collection %s from %s" % (name, collection, node.name))
            record = ctx.store(_object_base(index, node_index, collection), reader)
        digest = reader.hash.hexdigest()
        if expected and expected.lower() != digest:
            raise IntegrityError("the snapshot %s of collection %s downloaded from %s has sha256 %s, the server reports %s"
                                 % (name, collection, node.name, digest, expected),
                                 hint="Nothing was kept; run the backup again, and check the network path and the node's disk")
        if description.get("size") is not None and int(description["size"]) != reader.size:
            raise IntegrityError("the snapshot %s of collection %s downloaded from %s has %d bytes, the server reports %d"
                                 % (name, collection, node.name, reader.size, int(description["size"])),
                                 hint="Nothing was kept; run the backup again")
        # The object's own record names what it holds too (backup_info lists objects with their records).
        record["qdrant"] = {"collection": collection, "node": node.name, "snapshot": name, "checksum": digest}
        return {
            "collection": collection,
            "node": node.name,
            "node_index": node_index,
            "snapshot": name,
            "checksum": digest,
            "checksum_reported": bool(expected),
            "size": reader.size,
            "creation_time": description.get("creation_time"),
            "points_count": info["points_count"],
            "vectors": info["vectors"],
            "sparse_vectors": info["sparse_vectors"],
            "object": record["name"],
        }
    finally:
        if not _delete_snapshot(node, collection, name):
            left.append({"node": node.name, "collection": collection, "snapshot": name})


def run_backup(request, ctx):
    plan, nodes = _plan_snapshot_backup(request)
    timeout = _timeout(request)
    started = utcnow()
    taken = []
    left = []
    for node_index, node in enumerate(nodes):
        for collection in plan["collections"]:
            taken.append(_snapshot_one(ctx, node, node_index, collection, len(taken), timeout, left))
    facts = {
        "start_time": started,
        "end_time": utcnow(),
        "engine_version": plan["server_version"],
        "consistency": "application",
        "qdrant": {"nodes": plan["nodes"], "collections": plan["collections"], "snapshots": taken},
        "positions": {
            "collections": len(plan["collections"]),
            "nodes": len(nodes),
            # The collection info counts the points of every shard, remote ones included: the first node's count is the collection's.
            "points": dict((t["collection"], t["points_count"]) for t in taken if t["node_index"] == 0),
        },
    }
    if left:
        facts["qdrant"]["snapshots_left"] = left
    return facts


# Restore ------------------------------------------------------------------


def restores_into_server(manifest):
    return manifest.get("method") == SNAPSHOT_METHOD


def _backup_snapshots(manifest):
    info = manifest.get("qdrant") or {}
    snapshots = info.get("snapshots") or []
    if not snapshots:
        raise EngineError("backup %s records no Qdrant snapshots" % manifest["backup_id"])
    return info, snapshots


def _record(manifest, name):
    for record in manifest.get("objects") or []:
        if record["name"] == name:
            return record
    raise EngineError("backup %s lacks the object %s its Qdrant snapshot list names" % (manifest["backup_id"], name),
                      hint="Verify the backup with backup_info verify: true")


def _plan(manifest, request):
    if manifest.get("method") != SNAPSHOT_METHOD:
        raise ConfigError("backup %s was taken with method %s, which restores from its volume snapshot" % (manifest["backup_id"], manifest.get("method")))
    info, snapshots = _backup_snapshots(manifest)
    backed_up = list(info.get("collections") or sorted(set(s["collection"] for s in snapshots)))
    collections = _wanted(request.options.get("collections"), backed_up, "in backup %s" % manifest["backup_id"])
    source_nodes = sorted(set(s["node_index"] for s in snapshots))
    nodes, given = target_nodes(request.connection, request.options, _timeout(request))
    described = describe_nodes(nodes, given)
    if len(nodes) != len(source_nodes):
        raise ConfigError("backup %s holds the snapshots of %d Qdrant node(s), the target has %d"
                          % (manifest["backup_id"], len(source_nodes), len(nodes)),
                          hint="Give nodes: the REST URLs of as many target nodes as the backup has, in the same order as the backup's nodes (%s)"
                          % ", ".join(n.get("url", "?") for n in info.get("nodes") or []))
    existing = []
    for node in nodes:
        present = set(node.collections())
        existing.extend({"node": node.name, "collection": c} for c in collections if c in present)
    if existing and not request.force:
        raise ConfigError("the target already has the collection(s) %s" % ", ".join(sorted(set(e["collection"] for e in existing))),
                          hint="Drop them first, restore other collections, or set force: true to overwrite them with the backup's data")
    uploads = []
    for snap in snapshots:
        if snap["collection"] not in collections:
            continue
        record = _record(manifest, snap["object"])
        uploads.append({"collection": snap["collection"], "node": nodes[source_nodes.index(snap["node_index"])].name,
                        "node_index": source_nodes.index(snap["node_index"]), "snapshot": snap["snapshot"], "object": record["name"],
                        "bytes": record["size"], "points_count": snap.get("points_count")})
    plan = {
        "nodes": described,
        "collections": collections,
        "uploads": uploads,
        "replaces": existing,
        "force": bool(request.force),
        "experimental": True,
    }
    return plan, nodes


def plan_restore(repository, manifest, request, logs=None):
    if logs is not None:
        raise ConfigError("Qdrant backups have no log chain: point-in-time restores are not offered")
    plan, dummy = _plan(manifest, request)
    return plan


def _multipart(source, size, filename):
    """A multipart/form-data body with one file field ``snapshot``: (content type, length, iterable of bytes)."""
    boundary = "dp-%s" % uuid.uuid4().hex
    head = ('--%s\r\nContent-Disposition: form-data; name="snapshot"; filename="%s"\r\nContent-Type: application/octet-stream\r\n\r\n'
            % (boundary, filename.replace('"', "_"))).encode("utf-8")
    tail = ("\r\n--%s--\r\n" % boundary).encode("ascii")

    def chunks():
        yield head
        sent = 0
        while True:
            data = source.read(CHUNK)
            if not data:
                break
            sent += len(data)
            yield data
        if sent != size:
            raise IntegrityError("the stored snapshot %s has %d bytes, its record says %d" % (filename, sent, size))
        yield tail

    return "multipart/form-data; boundary=%s" % boundary, len(head) + size + len(tail), chunks()


def upload(repository, manifest, node, upload_plan, timeout):
    """Stream one stored snapshot to a node's upload endpoint, with its sha256 for the server to check."""
    record = _record(manifest, upload_plan["object"])
    query = {"wait": "true", "priority": "snapshot", "checksum": record["sha256"]}
    with ObjectSource(repository.repo, object_key(manifest, record), record, repository.master_key) as source:
        content_type, length, body = _multipart(source, record["size"], upload_plan["snapshot"])
        headers = {"Content-Type": content_type, "Content-Length": str(length)}
        with node.open("POST", "/collections/%s/snapshots/upload" % _quote(upload_plan["collection"]), query, body, headers, timeout) as response:
            text = response.read().decode("utf-8", "replace")
            status = response.status
    try:
        payload = json.loads(text)
    except ValueError:
        payload = None
    if status != 200 or not isinstance(payload, dict) or payload.get("status") != "ok" or payload.get("result") is not True:
        raise EngineError("Qdrant at %s did not confirm the recovery of %s from the uploaded snapshot (HTTP %d): %s"
                          % (node.name, upload_plan["collection"], status, text.strip()[:200]))
    return record["size"]


def restore(repository, manifest, request, logs=None):
    """Upload every chosen snapshot to its node, then compare the restored point counts with the backup's."""
    plan, nodes = _plan(manifest, request)
    timeout = _timeout(request)
    done = []
    for item in plan["uploads"]:
        node = nodes[item["node_index"]]
        try:
            size = upload(repository, manifest, node, item, timeout)
        except DataProtectionError as exc:
            if done:
                restored = ", ".join("%s on %s" % (d["collection"], d["node"]) for d in done)
                exc.hint = ("%s Already restored before the failure: %s." % (exc.hint or "", restored)).strip()
            raise
        done.append({"collection": item["collection"], "node": node.name, "snapshot": item["snapshot"], "bytes": size})
    mismatched = []
    points = {}
    for item in plan["uploads"]:
        node = nodes[item["node_index"]]
        count = node.collection(item["collection"])["points_count"]
        points.setdefault(item["collection"], {})[node.name] = count
        if item.get("points_count") is not None and count != item["points_count"]:
            mismatched.append("%s on %s: %s points, the backup recorded %s" % (item["collection"], node.name, count, item["points_count"]))
    if mismatched:
        raise EngineError("the restored Qdrant collections do not hold the backup's points: %s" % "; ".join(mismatched),
                          hint="Check the node's log; restore again with force: true once the cause is fixed")
    return {
        "nodes": [n.name for n in nodes],
        "collections": plan["collections"],
        "uploaded": done,
        "bytes": sum(d["bytes"] for d in done),
        "points": points,
        "replaced": plan["replaces"],
    }
