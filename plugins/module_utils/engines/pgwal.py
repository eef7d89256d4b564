# -*- coding: utf-8 -*-
# Copyright: contributors to the dataprotection.databases collection
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""PostgreSQL WAL archive: push (archive_command), index, windows, and fetch for PITR.

Layout under ``<cluster>/logs/wal/``::

    <TLI><LOG>/<SEGMENT>-<sha256>-<first>-<last><ext>     a WAL segment
    history/<TLI>.history-<sha256><ext>                   a timeline history file
    other/<NAME>-<sha256><ext>                            .backup / .partial files

``<sha256>`` is the hash of the plain segment; ``<first>``/``<last>`` are the
commit (or abort) timestamps of the first and last transaction the segment
holds, in microseconds since the Unix epoch, or ``n`` when it holds none.  The
names alone index the archive, so one listing gives every segment's time
range.  A segment name is pushed once: an identical re-push succeeds, a
different one is refused (it would mean two servers writing one history).
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os
import re
import struct

from ansible_collections.dataprotection.databases.plugins.module_utils import tools
from ansible_collections.dataprotection.databases.plugins.module_utils.engines import logarchive
from ansible_collections.dataprotection.databases.plugins.module_utils.errors import (
    ConfigError,
    EngineError,
    IntegrityError,
    ObjectExists,
)
from ansible_collections.dataprotection.databases.plugins.module_utils.manifest import check_cluster
from ansible_collections.dataprotection.databases.plugins.module_utils.timeutil import parse_time
from ansible_collections.dataprotection.databases.plugins.module_utils.transfer import object_name, store_stream

SEGMENT = re.compile(r"^[0-9A-F]{24}$")
HISTORY = re.compile(r"^[0-9A-F]{8}\.history$")
OTHER = re.compile(r"^[0-9A-F]{24}(\.[0-9A-F]{8}\.backup|\.partial)$")
STORED = re.compile(r"^(?P<name>[0-9A-F]{24})-(?P<sha>[0-9a-f]{64})-(?P<first>\d+|n)-(?P<last>\d+|n)(?P<ext>(\.zst|\.gz)?(\.enc)?)$")
STORED_OTHER = re.compile(r"^(?P<name>[0-9A-F.a-z]+?)-(?P<sha>[0-9a-f]{64})(?P<ext>(\.zst|\.gz)?(\.enc)?)$")
_WALDUMP_TIME = re.compile(r"desc: (?:COMMIT|ABORT|COMMIT_PREPARED|ABORT_PREPARED) (\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}(?:\.\d+)?) UTC")
XLP_LONG_HEADER_SYSID = 24
WAL_SEG_SIZE = 16 * 1024 * 1024


def wal_prefix(cluster):
    return "%s/logs/wal/" % check_cluster(cluster)


def segment_sysid(path):
    """The system identifier in a segment's long page header."""
    with open(path, "rb") as handle:
        header = handle.read(XLP_LONG_HEADER_SYSID + 8)
    if len(header) < XLP_LONG_HEADER_SYSID + 8:
        raise IntegrityError("%s is too short to be a WAL segment" % path)
    return str(struct.unpack("<Q", header[XLP_LONG_HEADER_SYSID:XLP_LONG_HEADER_SYSID + 8])[0])


def transaction_times(path, waldump):
    """First and last commit/abort time in a segment (aware datetimes), or (None, None)."""
    out, dummy = tools.run([waldump, "-r", "Transaction", path], env={"TZ": "UTC", "PGTZ": "UTC"}, timeout=120, check=False)
    found = _WALDUMP_TIME.findall(out)
    if not found:
        return None, None
    # pg_waldump prints fixed-width UTC times: string order is time order, so parse only the two ends.
    return parse_time(min(found).replace(" ", "T") + "Z"), parse_time(max(found).replace(" ", "T") + "Z")


def _directory(name):
    if SEGMENT.match(name):
        return name[:16]
    if HISTORY.match(name):
        return "history"
    return "other"


def push(repository, cluster, path, system_identifier=None, waldump=None, compression="zstd", level=None):
    """Archive one WAL file durably; return what was stored.  Safe to repeat."""
    name = os.path.basename(path)
    if not (SEGMENT.match(name) or HISTORY.match(name) or OTHER.match(name)):
        raise ConfigError("%s is not a WAL file name" % name, hint="archive_command must pass %p (the path of the WAL file)")
    if not os.path.isfile(path):
        raise ConfigError("WAL file %s does not exist" % path, hint="archive_command runs in the data directory; pass %p")
    if SEGMENT.match(name) and system_identifier is not None:
        found = segment_sysid(path)
        if found != str(system_identifier):
            raise EngineError(
                "WAL segment %s belongs to database system %s, but cluster %s belongs to %s" % (name, found, cluster, system_identifier),
                hint="Another server is archiving into this cluster name; give each database its own cluster",
            )
    sha = logarchive.sha256_file(path)
    directory = wal_prefix(cluster) + _directory(name) + "/"
    repo = repository.repo
    for info in repo.list(directory + name + "-"):
        stored = info.key[len(directory):]
        if stored.split("-")[1] == sha:
            return {"name": name, "key": info.key, "sha256": sha, "stored": False}
        if STORED.match(stored) or STORED_OTHER.match(stored):
            raise IntegrityError(
                "WAL file %s is already archived in cluster %s with different content" % (name, cluster),
                hint="Two servers may be archiving into one cluster, or the archive was restored over; "
                "inspect %s and the server before removing anything" % info.key,
            )
    if SEGMENT.match(name):
        first, last = transaction_times(path, waldump) if waldump else (None, None)
        base = "%s-%s-%s-%s" % (name, sha, logarchive.to_micros(first), logarchive.to_micros(last))
    else:
        base = "%s-%s" % (name, sha)
    key_name = object_name(base, compression, repository.encrypted)
    try:
        with open(path, "rb") as handle:
            record = store_stream(repo, directory + key_name, key_name, handle, compression, level, repository.master_key, threads=0)
    except ObjectExists:
        # A concurrent push of the same file won the race; identical by name (the name holds the hash).
        return {"name": name, "key": directory + key_name, "sha256": sha, "stored": False}
    if record["sha256"] != sha:
        repo.delete(directory + key_name)
        raise IntegrityError("WAL file %s changed while it was archived" % name, hint="PostgreSQL will retry the archive_command")
    return {"name": name, "key": directory + key_name, "sha256": sha, "stored": True, "size": record["size"], "stored_size": record["stored_size"]}


def segments(repo, cluster):
    """Index of archived segments: {timeline: {segno: entry}} from one listing."""
    prefix = wal_prefix(cluster)
    index = {}
    for info in repo.list(prefix):
        rest = info.key[len(prefix):]
        if "/" not in rest:
            continue
        stored = rest.split("/", 1)[1]
        match = STORED.match(stored)
        if not match:
            continue
        name = match.group("name")
        timeline, segno = int(name[:8], 16), _segno(name)
        index.setdefault(timeline, {})[segno] = logarchive.entry(info, match)
    return index


# What retention reads of every log archive: its kind, the index loader, windows and prunable.
KIND = "wal"
load = segments


def _segno(name):
    return int(name[8:16], 16) * (0x100000000 // WAL_SEG_SIZE) + int(name[16:24], 16)


def position(manifest):
    """Where a base's WAL chain starts: (timeline, segment number) of its stop segment, or None."""
    stop = (manifest.get("positions") or {}).get("stop_wal")
    return (int(stop[:8], 16), _segno(stop)) if stop else None


def chain_from(index, manifest):
    """Contiguous archived segments after a base backup, and the last transaction time they reach."""
    return logarchive.chain(index, position(manifest))


def _bases(manifests):
    return [m for m in manifests if m.get("engine") == "postgresql"]


def windows(repo, cluster, manifests, index=None):
    """Recoverable windows: from a base's consistent point to the last transaction its WAL chain reaches."""
    return logarchive.windows(_bases(manifests), segments(repo, cluster) if index is None else index, position)


def plan_pitr(repo, cluster, manifests, target):
    """Pick the newest base whose consistent point is <= target and whose chain reaches it; list the WAL to fetch."""
    return logarchive.choose_base(_bases(manifests), segments(repo, cluster), position, target, cluster, "WAL")


def prunable(repo, cluster, index, kept):
    """Archived WAL no kept base needs: segments (of any timeline) and .backup/.partial files before the oldest
    kept base's start segment.  Timeline history files are always kept.  Without a kept base nothing goes."""
    starts = []
    for manifest in _bases(kept):
        positions = manifest.get("positions") or {}
        first = positions.get("start_wal") or positions.get("stop_wal")
        if first:
            starts.append(_segno(first))
    if not starts:
        return []
    floor = min(starts)
    found = logarchive.below(index, dict((timeline, floor) for timeline in index))
    prefix = wal_prefix(cluster) + "other/"
    for info in repo.list(prefix):
        match = STORED_OTHER.match(info.key[len(prefix):])
        if match and _segno(match.group("name")[:24]) < floor:
            found.append({"name": match.group("name"), "key": info.key, "sha256": match.group("sha"), "first": None, "last": None,
                          "stored_size": info.size})
    return found


def fetch_segments(repository, entries, destination, owner_uid=None, owner_gid=None):
    """Write archived segments, decoded and checked, into ``destination`` (e.g. pg_wal)."""
    for entry in entries:
        logarchive.fetch_to(repository, entry["key"], entry["sha256"], os.path.join(destination, entry["name"]), owner_uid, owner_gid)
    return len(entries)


def fetch_one(repository, cluster, name, destination):
    """restore_command: fetch one WAL file by name into ``destination``; False when not archived."""
    directory = wal_prefix(cluster) + _directory(name) + "/"
    for info in repository.repo.list(directory + name + "-"):
        stored = info.key[len(directory):]
        match = STORED.match(stored) or STORED_OTHER.match(stored)
        if not match or match.group("name") != name:
            continue
        logarchive.fetch_to(repository, info.key, match.group("sha"), destination)
        return True
    return False


def is_archived(repo, cluster, name):
    directory = wal_prefix(cluster) + _directory(name) + "/"
    return any(True for dummy in repo.list(directory + name + "-"))
