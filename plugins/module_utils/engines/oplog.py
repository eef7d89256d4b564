# -*- coding: utf-8 -*-
# Copyright: contributors to the dataprotection.databases collection
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""MongoDB oplog archive: ship slices of a replica set's oplog, index them, windows, PITR plans, replay files.

EXPERIMENTAL.  This code has never run against a real MongoDB server: none
can run on the machines its tests run on.  The slicing, the chains, the
windows and the replay files are tested on real oplog-shaped BSON documents
(built with the ``bson`` package, shaped like the entries MongoDB 4.4 to 7.0
write); the shipping is tested against a fake ``mongodump`` that serves such
documents the way mongo-tools documents ``--query`` and ``--out -``.

Layout under ``<cluster>/logs/oplog/``::

    <chain>/<NNNNNNNN>.<t1>_<i1>.<t2>_<i2>-<sha256>-<first>-<last><ext>

A slice holds the oplog entries (top-level BSON documents, in oplog order)
from timestamp ``t1,i1`` to ``t2,i2`` inclusive; ``<first>``/``<last>`` are
the wall times of those two entries in microseconds since the Unix epoch, and
``<sha256>`` the hash of the plain BSON.  A chain is a run of slices with no
entry missing between them, named ``<t>_<i>`` after its first entry; slice
``N+1`` of a chain holds the entries right after the last entry of slice
``N``.  The shipper asks for the entries from the last shipped timestamp on
(``$gte``): when the first one returned is not that entry, the oplog rolled
over past it and the entries between are lost, so the next slice starts a new
chain, a break in the recoverable windows.  The names alone index the archive;
a slice is stored under its final name in one atomic write (a file renamed into
place, or a completed upload), so a crash never leaves a slice that looks
complete and is not.

Oplog BSON is read here without any driver: a document is an int32 length and
its elements; only ``ts`` (a Timestamp, type 0x11: increment in the low 32
bits, seconds in the high 32) and ``wall`` (a UTC datetime, type 0x09,
milliseconds) are decoded, every other element is skipped by its type's size.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import bisect
import datetime
import itertools
import json
import os
import re
import shutil
import struct
import tempfile

from ansible_collections.dataprotection.databases.plugins.module_utils import hostfiles, tools
from ansible_collections.dataprotection.databases.plugins.module_utils.engines import logarchive
from ansible_collections.dataprotection.databases.plugins.module_utils.errors import (
    ConfigError,
    EngineError,
    IntegrityError,
    ObjectExists,
    ToolError,
)
from ansible_collections.dataprotection.databases.plugins.module_utils.manifest import check_cluster
from ansible_collections.dataprotection.databases.plugins.module_utils.timeutil import format_time, utcnow
from ansible_collections.dataprotection.databases.plugins.module_utils.transfer import object_name, store_stream

ENGINE = "mongodb"
METHOD = "oplog-archive"
KIND = "oplog"
# retention passes the index to position(): where a base's chain starts is found among the slices.
POSITION_NEEDS_INDEX = True
# The backups a point-in-time restore starts from (restored through the server, then the oplog replayed): their windows
# are the cluster's, for backup_info, restore and retention alike.
BASE_METHODS = ("dump",)
TOOL_DIRS = ("/usr/local/mongodb-database-tools*/bin", "/opt/mongodb-database-tools*/bin")
TOOL_PACKAGE = "mongodb-database-tools"
DUMP_TIMEOUT = 3600
CHAIN = re.compile(r"^\d+_\d+$")
STORED = re.compile(r"^(?P<name>(?P<num>\d{8})\.(?P<ft>\d+)_(?P<fi>\d+)\.(?P<lt>\d+)_(?P<li>\d+))-(?P<sha>[0-9a-f]{64})"
                    r"-(?P<first>\d+|n)-(?P<last>\d+|n)(?P<ext>(\.zst|\.gz)?(\.enc)?)$")
_INT32 = struct.Struct("<i")
_UINT64 = struct.Struct("<Q")
_INT64 = struct.Struct("<q")
# Fixed sizes of BSON element values by type; None: sized by a leading int32 (strings, documents, binary ...).
_FIXED = {0x01: 8, 0x06: 0, 0x07: 12, 0x08: 1, 0x09: 8, 0x0A: 0, 0x10: 4, 0x11: 8, 0x12: 8, 0x13: 16, 0xFF: 0, 0x7F: 0}
_AUTH_FAILED = ("AuthenticationFailed", "Authentication failed", "auth error")
_UNREACHABLE = ("server selection error", "connection refused", "no reachable servers", "context deadline exceeded")
_UNAUTHORIZED = ("Unauthorized", "not authorized")


# BSON ----------------------------------------------------------------------


def _cstring_end(data, offset, end):
    stop = data.find(b"\x00", offset, end)
    if stop < 0:
        raise IntegrityError("a BSON element name is not terminated")
    return stop + 1


def _value_end(data, kind, offset, end):
    """Where the value of an element of type ``kind`` starting at ``offset`` ends."""
    if kind in _FIXED:
        return offset + _FIXED[kind]
    if kind in (0x02, 0x0D, 0x0E):  # string, JavaScript code, symbol: int32 length (with the NUL) + bytes
        return offset + 4 + _INT32.unpack_from(data, offset)[0]
    if kind in (0x03, 0x04, 0x0F):  # document, array, code with scope: int32 total length
        return offset + _INT32.unpack_from(data, offset)[0]
    if kind == 0x05:  # binary: int32 length, subtype byte, bytes
        return offset + 5 + _INT32.unpack_from(data, offset)[0]
    if kind == 0x0B:  # regular expression: two cstrings
        return _cstring_end(data, _cstring_end(data, offset, end), end)
    if kind == 0x0C:  # DBPointer: string + 12-byte ObjectId
        return offset + 4 + _INT32.unpack_from(data, offset)[0] + 12
    raise IntegrityError("unknown BSON element type 0x%02x" % kind)


def entry_fields(doc):
    """(ts as (t, i), wall as an aware datetime or None) of one oplog entry's raw BSON; IntegrityError without ts."""
    end = len(doc) - 1
    if len(doc) < 5 or _INT32.unpack_from(doc, 0)[0] != len(doc) or doc[end:] != b"\x00":
        raise IntegrityError("not a BSON document")
    offset = 4
    ts = wall = None
    while offset < end:
        kind = doc[offset]
        name_end = _cstring_end(doc, offset + 1, end)
        name = doc[offset + 1:name_end - 1]
        value_end = _value_end(doc, kind, name_end, end)
        if value_end > end or value_end < name_end:
            raise IntegrityError("a BSON element runs past the end of its document")
        if name == b"ts" and kind == 0x11:
            value = _UINT64.unpack_from(doc, name_end)[0]
            ts = (value >> 32, value & 0xFFFFFFFF)
        elif name == b"wall" and kind == 0x09:
            wall = logarchive.EPOCH + datetime.timedelta(milliseconds=_INT64.unpack_from(doc, name_end)[0])
        offset = value_end
    if ts is None:
        raise IntegrityError("an oplog entry without a ts Timestamp")
    return ts, wall


def read_entries(handle, what="the oplog stream"):
    """Yield (raw BSON, ts, wall) of each top-level document read from ``handle``; ts must increase strictly."""
    previous = None
    while True:
        head = _read_exactly(handle, 4)
        if not head:
            return
        if len(head) < 4:
            raise IntegrityError("%s ends inside a document's length" % what)
        length = _INT32.unpack(head)[0]
        if length < 5 or length > 48 * 1024 * 1024:
            raise IntegrityError("%s holds a document of impossible length %d" % (what, length))
        body = _read_exactly(handle, length - 4)
        if len(body) < length - 4:
            raise IntegrityError("%s ends inside a document (a torn write)" % what)
        doc = head + body
        ts, wall = entry_fields(doc)
        if previous is not None and ts <= previous:
            raise IntegrityError("%s is not in oplog order: %s after %s" % (what, _ts_text(ts), _ts_text(previous)))
        previous = ts
        yield doc, ts, wall


def _read_exactly(handle, size):
    parts = []
    while size > 0:
        data = handle.read(size)
        if not data:
            break
        parts.append(data)
        size -= len(data)
    return b"".join(parts)


def _ts_text(ts):
    return "%d,%d" % (ts[0], ts[1])


def ts_dict(ts):
    return {"t": int(ts[0]), "i": int(ts[1])}


def ts_tuple(value):
    """(t, i) of {t, i} (a base's positions.oplog_ts), of a (t, i) pair, or None."""
    if isinstance(value, dict) and value.get("t") is not None:
        return int(value["t"]), int(value.get("i") or 0)
    if isinstance(value, (list, tuple)) and len(value) == 2:
        return int(value[0]), int(value[1])
    return None


def _wall_of(ts, wall):
    """An entry's wall time; the ts seconds when the entry has no wall field (before MongoDB 4.2)."""
    return wall if wall is not None else logarchive.EPOCH + datetime.timedelta(seconds=ts[0])


# The archive: names, index, windows ------------------------------------------


def oplog_prefix(cluster):
    return "%s/logs/oplog/" % check_cluster(cluster)


def chain_name(ts):
    return "%d_%d" % ts


def slice_name(number, first_ts, last_ts):
    return "%08d.%d_%d.%d_%d" % (number, first_ts[0], first_ts[1], last_ts[0], last_ts[1])


def load(repo, cluster):
    """Index of archived slices: {chain: {number: entry}} from one listing.

    An entry has, besides the common fields, ``chain``, ``number``, ``first_ts`` and ``last_ts`` ((t, i)).  Two
    slices under one number (two shipping passes that raced) both continue the slice before; the longer one is used.
    """
    prefix = oplog_prefix(cluster)
    index = {}
    for info in repo.list(prefix):
        rest = info.key[len(prefix):]
        if rest.count("/") != 1:
            continue
        chain, stored = rest.split("/")
        match = STORED.match(stored)
        if not CHAIN.match(chain) or not match:
            continue
        found = logarchive.entry(info, match)
        found.update({"chain": chain, "number": int(match.group("num")),
                      "first_ts": (int(match.group("ft")), int(match.group("fi"))),
                      "last_ts": (int(match.group("lt")), int(match.group("li")))})
        files = index.setdefault(chain, {})
        other = files.get(found["number"])
        if other is None or other["last_ts"] < found["last_ts"]:
            files[found["number"]] = found
    return index


def _bases(manifests):
    return [m for m in manifests if m.get("engine") == ENGINE and m.get("method") in BASE_METHODS
            and ts_tuple((m.get("positions") or {}).get("oplog_ts"))]


# The sorted slices of the last index ``position`` searched: windows and retention ask once per base.
_SORTED = {"index": None, "count": None, "firsts": [], "slices": []}


def _sorted_slices(index):
    count = sum(len(files) for files in index.values())
    if _SORTED["index"] is not index or _SORTED["count"] != count:
        slices = sorted((found for files in index.values() for found in files.values()), key=lambda e: e["first_ts"])
        _SORTED.update(index=index, count=count, firsts=[e["first_ts"] for e in slices], slices=slices)
    return _SORTED["firsts"], _SORTED["slices"]


def position(manifest, index):
    """Where a base's chain starts: (chain, number) of the slice holding its ``positions.oplog_ts``, or None."""
    ts = ts_tuple((manifest.get("positions") or {}).get("oplog_ts"))
    if ts is None:
        return None
    firsts, slices = _sorted_slices(index)
    # Slices never overlap (a chain continues after its last entry, a new chain starts after a rollover): the one
    # starting last at or before ts is the only candidate.
    at = bisect.bisect_right(firsts, ts) - 1
    if at >= 0 and ts <= slices[at]["last_ts"]:
        return slices[at]["chain"], slices[at]["number"]
    return None


def windows(repo, cluster, manifests, index=None):
    """Recoverable windows: from a base's end to the last wall time its oplog chain reaches."""
    index = load(repo, cluster) if index is None else index
    return logarchive.windows(_bases(manifests), index, lambda m: position(m, index))


def plan_pitr(repo, cluster, manifests, target, index=None):
    """(base manifest, slices) for a restore to ``target``: the newest base that ended at or before it and whose chain
    reaches it, and its chain's slices up to the first one holding an entry after ``target``.  RecoveryWindowError
    naming the windows when none does."""
    index = load(repo, cluster) if index is None else index
    return logarchive.choose_base(_bases(manifests), index, lambda m: position(m, index), target, cluster, "oplog")


def prunable(repo, cluster, index, kept):
    """Slices no kept base needs: in a chain a kept base starts in, those before its slice; in other chains, those
    whose last entry precedes the oldest kept base.  Without a kept base nothing goes."""
    bases = _bases(kept)
    if not bases:
        return []
    from ansible_collections.dataprotection.databases.plugins.module_utils.timeutil import parse_time  # pylint: disable=import-outside-toplevel

    floors = {}
    for manifest in bases:
        chain, number = position(manifest, index) or (None, None)
        if chain is not None:
            floors[chain] = min(number, floors.get(chain, number))
    found = logarchive.below(index, floors)
    oldest = min(parse_time(m["start_time"]) for m in bases)
    for chain, files in index.items():
        if chain not in floors:
            found.extend(files[n] for n in sorted(files) if files[n]["last"] is not None and files[n]["last"] < oldest)
    return found


def head(index):
    """The newest slice of the archive (the one with the highest last timestamp), or None."""
    newest = None
    for files in index.values():
        for found in files.values():
            if newest is None or found["last_ts"] > newest["last_ts"]:
                newest = found
    return newest


def store_slice(repository, cluster, chain, number, path, first, last, compression="zstd", level=None):
    """Store one slice file under its final name in one atomic write; the record of what was stored."""
    sha = logarchive.sha256_file(path)
    name = slice_name(number, first[0], last[0])
    base = "%s-%s-%s-%s" % (name, sha, logarchive.to_micros(_wall_of(*first)), logarchive.to_micros(_wall_of(*last)))
    key_name = object_name(base, compression, repository.encrypted)
    key = "%s%s/%s" % (oplog_prefix(cluster), chain, key_name)
    try:
        with open(path, "rb") as handle:
            record = store_stream(repository.repo, key, key_name, handle, compression, level, repository.master_key, threads=0)
    except ObjectExists:
        return {"name": name, "chain": chain, "key": key, "sha256": sha, "stored": False}
    if record["sha256"] != sha:
        repository.repo.delete(key)
        raise IntegrityError("oplog slice %s changed while it was stored" % name, hint="The next oplog-ship pass ships it again")
    return {"name": name, "chain": chain, "key": key, "sha256": sha, "stored": True, "size": record["size"],
            "stored_size": record["stored_size"], "first_ts": ts_dict(first[0]), "last_ts": ts_dict(last[0]),
            "first": format_time(_wall_of(*first)), "last": format_time(_wall_of(*last))}


def cut_slices(docs, directory, size_mb=256):
    """Write ``docs`` (an iterable of (raw, ts, wall), in order) into slice files of at most ``size_mb`` MiB in
    ``directory``; [{path, first, last, count}] with first/last as (ts, wall)."""
    limit = max(1, int(size_mb)) * 1024 * 1024
    cut = []
    handle, size = None, 0
    try:
        for raw, ts, wall in docs:
            if handle is None:
                path = os.path.join(directory, "slice-%06d.bson" % len(cut))
                handle, size = open(path, "wb"), 0
                cut.append({"path": path, "first": (ts, wall), "last": None, "count": 0})
            handle.write(raw)
            size += len(raw)
            cut[-1]["last"] = (ts, wall)
            cut[-1]["count"] += 1
            if size >= limit:
                handle.close()
                handle = None
    finally:
        if handle is not None:
            handle.close()
    return cut


def write_slices(repository, cluster, docs, chain, number, size_mb=256, compression="zstd", level=None, spool_dir=None, due=None):
    """Cut ``docs`` (an iterable of (raw, ts, wall), in order) into slices of at most ``size_mb`` MiB numbered from ``number``
    in ``chain`` and store them.  The last, partial slice is stored only when ``due(first)`` says so (always without
    ``due``).  Returns (records stored, entries left unshipped)."""
    work = tempfile.mkdtemp(prefix="dp-oplog-", dir=spool_dir)
    try:
        return store_slices(repository, cluster, cut_slices(docs, work, size_mb), chain, number, size_mb, compression, level, due)
    finally:
        shutil.rmtree(work, True)


def store_slices(repository, cluster, cut, chain, number, size_mb=256, compression="zstd", level=None, due=None):
    """Store the slice files ``cut_slices`` wrote, in order; the last one only when full or ``due``."""
    limit = max(1, int(size_mb)) * 1024 * 1024
    stored, left = [], 0
    for position_in_cut, piece in enumerate(cut):
        last_piece = position_in_cut == len(cut) - 1
        if last_piece and due is not None and os.path.getsize(piece["path"]) < limit and not due(piece["first"]):
            left = piece["count"]
            break
        stored.append(store_slice(repository, cluster, chain, number, piece["path"], piece["first"], piece["last"], compression, level))
        number += 1
    return stored, left


def fetch(repository, entries, destination):
    """Write archived slices, decoded and checked, into ``destination``; their paths in order."""
    return [logarchive.fetch_to(repository, found["key"], found["sha256"], os.path.join(destination, "%s.%s.bson" % (found["chain"], found["name"])))
            for found in entries]


def write_replay(repository, entries, after, target, path):
    """Write to ``path`` one BSON file of the archived entries with ts > ``after`` ({t, i}) and a wall time before
    ``target`` (an aware datetime), in order, for ``mongorestore --oplogReplay``; {count, first, last} (timestamps as
    {t, i}, None when empty).  The slices must be one chain's, in order (what ``plan_pitr`` returns)."""
    after = ts_tuple(after)
    work = tempfile.mkdtemp(prefix="dp-oplog-", dir=os.path.dirname(os.path.abspath(path)))
    count, first, last, previous, previous_name = 0, None, None, None, None
    try:
        fd = os.open(path + ".dp-tmp", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as out:
            for found in entries:
                if previous is not None and found["first_ts"] <= previous:
                    raise IntegrityError("oplog slices %s and %s overlap or are out of order" % (previous_name, found["name"]))
                previous, previous_name = found["last_ts"], found["name"]
                if after is not None and found["last_ts"] <= after:
                    continue
                local = logarchive.fetch_to(repository, found["key"], found["sha256"], os.path.join(work, "slice.bson"))
                done = False
                with open(local, "rb") as handle:
                    for raw, ts, wall in read_entries(handle, "oplog slice %s" % found["name"]):
                        if after is not None and ts <= after:
                            continue
                        if _wall_of(ts, wall) >= target:
                            done = True
                            break
                        out.write(raw)
                        count += 1
                        first = first or ts
                        last = ts
                os.unlink(local)
                if done:
                    break
            out.flush()
            os.fsync(out.fileno())
        os.rename(path + ".dp-tmp", path)
    except BaseException:
        if os.path.exists(path + ".dp-tmp"):
            os.unlink(path + ".dp-tmp")
        raise
    finally:
        shutil.rmtree(work, True)
    return {"count": count, "first": ts_dict(first) if first else None, "last": ts_dict(last) if last else None}


# The server: inspection, mongodump ---------------------------------------------


def _connection(params):
    from ansible_collections.dataprotection.databases.plugins.module_utils.engines import mongodb  # pylint: disable=import-outside-toplevel

    return mongodb.Connection(params)


def inspect(conn):
    """The replica set of the mongod in ``conn`` (through mongosh's hello); EngineError for a standalone, a mongos,
    a shard or config server, or an arbiter: none of them has an oplog this archive can use."""
    replies = conn.run("plan")
    hello = conn.reply(replies, "hello")
    status = replies.get("serverStatus") if isinstance(replies.get("serverStatus"), dict) else {}
    if hello.get("msg") == "isdbgrid" or status.get("process") == "mongos":
        raise EngineError("%s is a mongos: oplog archiving of sharded clusters is not supported" % conn.target(),
                          hint="Archive the oplog of a replica set; a sharded cluster needs a consistent point across shards, which this version cannot take")
    role = ((replies.get("getCmdLineOpts") or {}).get("parsed") or {}).get("sharding", {}).get("clusterRole")
    if role:
        raise EngineError("%s is a member of a sharded cluster (sharding.clusterRole %s): oplog archiving of sharded clusters is not supported"
                          % (conn.target(), role), hint="The oplog of one shard is not a point-in-time history of the cluster")
    set_name = hello.get("setName")
    if not set_name:
        raise EngineError("%s is a standalone mongod: it has no oplog to archive" % conn.target(),
                          hint="Point-in-time restore needs a replica set (a single-member one will do: start mongod with --replSet and run "
                          "rs.initiate()); nothing was written")
    if hello.get("arbiterOnly"):
        raise EngineError("%s is an arbiter: it holds no data and no oplog" % conn.target(),
                          hint="Point connection at a data-bearing member of replica set %s" % set_name)
    return {"replica_set": set_name, "identity": "replset:%s" % set_name, "member": hello.get("me"),
            "server_version": status.get("version")}


def find_dump(bin_dir=None):
    """mongodump's path; MissingDependency naming its package when it is not installed."""
    if bin_dir:
        candidate = os.path.join(bin_dir, "mongodump")
        if os.path.isfile(candidate) and os.access(candidate, os.X_OK):
            return candidate
    return tools.find_tool("mongodump", TOOL_DIRS, package=TOOL_PACKAGE)


def dump_uri(conn):
    """mongodump's connection string: the credentials, the authentication database as authSource, and no database
    path (mongo-tools read a database there as --db and refuse one that differs from --db=local)."""
    from urllib.parse import quote  # pylint: disable=import-outside-toplevel

    base, query = conn.uri().split("?", 1)
    where = base[len("mongodb://"):].split("/", 1)[0]
    credentials = ""
    if conn.user:
        credentials = quote(conn.user, safe="") + (":" + quote(conn.password, safe="") if conn.password else "") + "@"
        query += "&authSource=%s" % quote(conn.database, safe="")
    return "mongodb://%s%s/?%s" % (credentials, where, query)


def dump_config(conn, directory):
    """A mongodump ``--config`` file (YAML, mode 0600) holding the connection string with the credentials."""
    uri = dump_uri(conn)
    path = os.path.join(directory, "mongodump.yaml")
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        # A JSON string is a YAML double-quoted scalar.
        handle.write("uri: %s\n" % json.dumps(uri))
    return path


def dump_argv(tool, config_path, since=None):
    """mongodump of local.oplog.rs to stdout as BSON, from ``since`` ((t, i)) on when given; no secret in it."""
    argv = [tool, "--config=%s" % config_path, "--db=local", "--collection=oplog.rs", "--out=-", "--quiet"]
    if since is not None:
        argv.append("--query=%s" % json.dumps({"ts": {"$gte": {"$timestamp": {"t": since[0], "i": since[1]}}}}, sort_keys=True))
    return argv


def _dump_error(conn, exc):
    text = str(exc)
    if any(word in text for word in _AUTH_FAILED):
        return EngineError("MongoDB at %s refused user %s: wrong user name or password (authentication database %s)"
                           % (conn.target(), conn.user, conn.database), hint="Check connection.user, connection.password and connection.database")
    if any(word in text.lower() for word in _UNREACHABLE):
        return EngineError("mongodump cannot reach MongoDB at %s: %s" % (conn.target(), text.strip().splitlines()[-1]),
                           hint="Check connection.host / connection.port and that mongod is running")
    if any(word in text for word in _UNAUTHORIZED):
        return EngineError("MongoDB user %s may not read local.oplog.rs on %s" % (conn.user, conn.target()),
                           hint="Grant it the built-in role backup (it reads the oplog) on the admin database")
    return EngineError("mongodump of the oplog failed against %s: %s" % (conn.target(), text.strip().splitlines()[-1] if text.strip() else text))


# Shipping ------------------------------------------------------------------------


class ShippingLock(object):
    """One shipping pass at a time per cluster on this host (a cron pass overlapping the previous one, a second
    ``--follow``, ``state: synced`` while the service runs): an exclusive flock on ``<config>.lock``."""

    def __init__(self, config_path):
        self.path = config_path + ".lock"
        self.handle = None

    def __enter__(self):
        import fcntl  # pylint: disable=import-outside-toplevel

        directory = os.path.dirname(self.path)
        if directory:
            hostfiles.make_dirs(directory)
        self.handle = open(self.path, "a")
        fcntl.flock(self.handle, fcntl.LOCK_EX)
        return self

    def __exit__(self, exc_type, exc, tb):
        self.handle.close()
        return False


def ship(repository, cluster, conn, interval=300, size_mb=256, force=False, compression="zstd", level=None, identity=None,
         bin_dir=None, spool_dir=None, now=None):
    """One pass: dump the oplog from the last shipped entry on, check nothing was lost, store full slices, and the rest
    when its oldest entry is ``interval`` seconds old (or ``force``).  A rollover past the last shipped entry starts a new
    chain and is reported under ``gap``."""
    from ansible_collections.dataprotection.databases.plugins.module_utils.backup import check_identity  # pylint: disable=import-outside-toplevel

    server = inspect(conn)
    if identity is not None and identity != server["identity"]:
        raise EngineError("the server at %s is replica set %s, not %s this cluster's configuration names" % (conn.target(), server["replica_set"], identity),
                          hint="Run log_backup with state enabled again for this server, or give it its own cluster")
    check_identity(repository.repo, cluster, ENGINE, server["identity"])
    tool = find_dump(bin_dir or conn.bin_dir)
    now = now or utcnow()
    newest = head(load(repository.repo, cluster))
    since = newest["last_ts"] if newest else None
    result = {"shipped": [], "gap": None, "chain": newest["chain"] if newest else None, "last_ts": ts_dict(since) if since else None,
              "pending": 0, "time": format_time(now), "replica_set": server["replica_set"]}
    work = tempfile.mkdtemp(prefix="dp-oplog-", dir=spool_dir)
    try:
        config_path = dump_config(conn, work)
        try:
            with tools.StreamingTool(dump_argv(tool, config_path, since), what="mongodump") as proc:
                entries = read_entries(proc.stdout, "mongodump's output")
                try:
                    first = next(entries, None)
                except IntegrityError:
                    _failed_first(proc)
                    raise
                if first is None:
                    proc.finish(DUMP_TIMEOUT)
                    if since is not None:
                        result["gap"] = {"after": ts_dict(since), "next": None,
                                         "message": "the oplog no longer holds the last shipped entry %s and returned nothing newer" % _ts_text(since)}
                    return result
                if since is not None and first[1] == since:
                    chain, number, docs = newest["chain"], newest["number"] + 1, entries
                else:
                    if since is not None:
                        result["gap"] = {
                            "after": ts_dict(since), "after_wall": format_time(newest["last"]) if newest["last"] else None,
                            "next": ts_dict(first[1]), "next_wall": format_time(_wall_of(first[1], first[2])),
                            "message": "the oplog rolled over past the last shipped entry %s (or the server's history is not the archive's): "
                                       "entries up to %s are lost, a new chain starts" % (_ts_text(since), _ts_text(first[1])),
                        }
                    chain, number, docs = chain_name(first[1]), 0, itertools.chain([first], entries)

                def due(start):
                    return force or (now - _wall_of(*start)).total_seconds() >= interval

                # Everything is read and mongodump has succeeded before anything is stored.
                try:
                    cut = cut_slices(docs, work, size_mb)
                except IntegrityError:
                    _failed_first(proc)
                    raise
                proc.finish(DUMP_TIMEOUT)
            stored, left = store_slices(repository, cluster, cut, chain, number, size_mb, compression, level, due)
        except ToolError as exc:
            raise _dump_error(conn, exc)
    finally:
        shutil.rmtree(work, True)
    result["shipped"] = [r["name"] for r in stored if r["stored"]]
    result["slices"] = stored
    result["chain"] = chain
    result["pending"] = left
    if stored:
        result["last_ts"] = stored[-1].get("last_ts") or result["last_ts"]
    return result


def _failed_first(proc):
    """After unreadable output: mongodump's own error when it failed (a torn last document of a dump that broke off)."""
    import subprocess  # pylint: disable=import-outside-toplevel

    try:
        proc.proc.wait(5)
    except subprocess.TimeoutExpired:
        return
    proc.finish(0)


# log_backup ----------------------------------------------------------------------

SCHEDULERS = ("auto", "systemd", "cron", "none")


SHIPPING = logarchive.Shipping(
    "oplog", "oplog-ship",
    "Archive the MongoDB oplog of %s into the backup repository (dataprotection.databases)",
    "mongod.service",
    "# MongoDB oplog archiving of %s (dataprotection.databases log_backup); a shipping pass every minute.",
)


def ship_command(agent, config_path, follow=False):
    return SHIPPING.command(agent, config_path, follow)


def scheduler_files(scheduler, cluster, owner, agent, config_path, options):
    """The files that run the shipping: {path: content}."""
    return SHIPPING.files(scheduler, cluster, owner, agent, config_path, options)


def log_backup(repository, request, state, check_mode=False):
    """Enable, disable or sync oplog archiving of the replica set member in ``request.connection``."""
    from ansible_collections.dataprotection.databases.plugins.module_utils.backup import check_identity  # pylint: disable=import-outside-toplevel
    import pwd  # pylint: disable=import-outside-toplevel

    options = request.options
    config_path = os.path.join(options.get("config_dir") or "/etc/dataprotection", "%s.json" % request.cluster)
    agent = options.get("agent_command") or "/usr/local/bin/dataprotection"
    result = {"changed": False, "restart_required": False, "config_path": config_path}

    if state == "disabled":
        existing = [p for p in list(scheduler_files("systemd", request.cluster, "-", agent, config_path, options))
                    + list(scheduler_files("cron", request.cluster, "-", agent, config_path, options)) + [config_path, config_path + ".lock"]
                    if os.path.exists(p)]
        result["changed"] = bool(existing)
        result["plan"] = {"remove": existing}
        if check_mode or not existing:
            return result
        for path in existing:
            if path.endswith(".service"):
                try:
                    hostfiles.systemctl("disable", "--now", os.path.basename(path))
                except ToolError:
                    pass
            os.unlink(path)
        return result

    conn = _connection(request.connection)
    server = inspect(conn)
    find_dump(conn.bin_dir)
    interval = int(options.get("rotate_interval") or 300)
    size_mb = int(options.get("rotate_size_mb") or 256)
    if interval < 1 or size_mb < 1:
        raise ConfigError("rotate_interval and rotate_size_mb must be positive")
    if state == "synced":
        if check_mode:
            result["plan"] = {"ship": "every oplog entry not yet archived, now", "replica_set": server["replica_set"]}
            return result
        check_identity(repository.repo, request.cluster, ENGINE, server["identity"])
        with ShippingLock(config_path):
            shipped = ship(repository, request.cluster, conn, interval=interval, size_mb=size_mb, force=True,
                           compression=options.get("compression") or "zstd", level=options.get("compression_level"), identity=server["identity"])
        result.update({"changed": bool(shipped["shipped"]), "shipped": shipped["shipped"], "synced_oplog_ts": shipped["last_ts"],
                       "gap": shipped["gap"]})
        gap = shipped.get("gap") or {}
        if gap:
            result["warnings"] = ["oplog archive of %s has a break: %s" % (request.cluster, gap.get("message"))]
        return result

    # enabled
    hostfiles.check_agent(agent, "nothing")
    check_identity(repository.repo, request.cluster, ENGINE, server["identity"], write=not check_mode)
    owner_uid, owner_gid = os.geteuid(), os.getegid()
    owner = pwd.getpwuid(owner_uid).pw_name
    scheduler = hostfiles.pick_scheduler(options.get("scheduler") or "auto", "the oplog shipping",
                                         "Set scheduler: none and keep `dataprotection oplog-ship --follow` running under your own supervisor")
    config = {
        "repo": request.repo_spec,
        "cluster": request.cluster,
        "engine": ENGINE,
        "method": METHOD,
        "identity": server["identity"],
        "rotate_interval": interval,
        "rotate_size_mb": size_mb,
        "compression": options.get("compression") or "zstd",
        "compression_level": options.get("compression_level"),
        "connection": dict((k, v) for k, v in request.connection.items() if v is not None),
    }
    files = scheduler_files(scheduler, request.cluster, owner, agent, config_path, options)
    config_changed = hostfiles.config_differs(config_path, config)
    to_write = sorted(path for path, content in files.items() if hostfiles.read_text(path) != content)
    result.update({"changed": config_changed or bool(to_write), "scheduler": scheduler, "replica_set": server["replica_set"],
                   "ship_command": ship_command(agent, config_path, follow=scheduler in ("systemd", "none"))})
    if check_mode:
        result["plan"] = {"write_config": config_changed, "write": to_write, "scheduler": scheduler}
        return result
    if config_changed:
        hostfiles.write_config(config_path, config, owner_uid, owner_gid)
    for path in to_write:
        hostfiles.write_text(path, files[path])
    if scheduler == "systemd" and (to_write or config_changed) and not hostfiles.systemd_running():
        result["notes"] = ["systemd is not running on this host: the service was written but not started"]
    elif scheduler == "systemd" and (to_write or config_changed):
        hostfiles.systemctl("daemon-reload")
        hostfiles.systemctl("enable", "--now", os.path.basename(list(files)[0]))
        if not to_write:
            hostfiles.systemctl("restart", os.path.basename(list(files)[0]))
    return result
