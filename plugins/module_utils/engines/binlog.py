# -*- coding: utf-8 -*-
# Copyright: contributors to the dataprotection.databases collection
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""MySQL/MariaDB binary log archive: read binlog files, push closed ones, index, windows, fetch for PITR.

Layout under ``<cluster>/logs/binlog/``::

    <BASENAME>.<NNNNNN>-<sha256>-<first>-<last><ext>

``<sha256>`` is the hash of the plain file; ``<first>`` is the time of the
first commit (XID or query event) the file holds and ``<last>`` the time of
its last event (for a closed file the rotate event, that is when it was
closed), in microseconds since the Unix epoch, or ``n``.  Binlog event
timestamps have a resolution of one second.  The names alone index the
archive.  A file name is pushed once: an identical re-push succeeds, a
different file under an archived name is refused (a restored server that
starts its binlog numbering again, or two servers writing one cluster).

Binlog files are read here without any tool: a v4 binary log is a 4-byte
magic followed by events, each with a 19-byte common header (timestamp,
type, server id, event size, next position, flags).
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import datetime
import mmap
import os
import re
import struct

from ansible_collections.dataprotection.databases.plugins.module_utils.errors import (
    ConfigError,
    IntegrityError,
    ObjectExists,
)
from ansible_collections.dataprotection.databases.plugins.module_utils.engines import logarchive
from ansible_collections.dataprotection.databases.plugins.module_utils.manifest import check_cluster
from ansible_collections.dataprotection.databases.plugins.module_utils.timeutil import format_time, parse_time
from ansible_collections.dataprotection.databases.plugins.module_utils.transfer import object_name, store_stream

MAGIC = b"\xfebin"
HEADER = struct.Struct("<IBIIIH")
QUERY_EVENT = 2
ROTATE_EVENT = 4
FORMAT_DESCRIPTION_EVENT = 15
XID_EVENT = 16
LOG_EVENT_BINLOG_IN_USE_F = 0x1
COMMIT_EVENTS = (QUERY_EVENT, XID_EVENT)
FILE_NAME = re.compile(r"^(?P<base>[A-Za-z0-9_.-]+)\.(?P<seq>\d{6,})$")
STORED = re.compile(r"^(?P<name>[A-Za-z0-9_.-]+\.\d{6,})-(?P<sha>[0-9a-f]{64})-(?P<first>\d+|n)-(?P<last>\d+|n)(?P<ext>(\.zst|\.gz)?(\.enc)?)$")


def binlog_prefix(cluster):
    return "%s/logs/binlog/" % check_cluster(cluster)


def _time(seconds):
    return logarchive.EPOCH + datetime.timedelta(seconds=int(seconds))


def sequence(name):
    """(basename, number) of a binlog file name, or ConfigError."""
    match = FILE_NAME.match(name)
    if not match:
        raise ConfigError("%r is not a binary log file name (BASENAME.NNNNNN)" % name)
    return match.group("base"), int(match.group("seq"))


def read_events(path):
    """Summary of a binlog file: creation time, server id, closed or in use, first commit and last event times.

    Raises IntegrityError for a file that is not a v4 binary log.
    """
    with open(path, "rb") as handle:
        size = os.fstat(handle.fileno()).st_size
        if size < len(MAGIC) + HEADER.size:
            raise IntegrityError("%s is too short to be a binary log" % path)
        data = mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ)
        try:
            if data[:4] != MAGIC:
                raise IntegrityError("%s is not a binary log (no binlog magic number)" % path)
            summary = {"created": None, "server_id": None, "closed": None, "first": None, "last": None, "events": 0, "complete": True}
            offset = 4
            first = last = None
            while offset + HEADER.size <= size:
                timestamp, kind, server_id, length, dummy_next, flags = HEADER.unpack_from(data, offset)
                if length < HEADER.size or offset + length > size:
                    # A torn last event: the server is still writing it.
                    summary["complete"] = False
                    break
                if kind == FORMAT_DESCRIPTION_EVENT and summary["created"] is None:
                    summary["created"] = _time(timestamp) if timestamp else None
                    summary["server_id"] = server_id
                    summary["closed"] = not flags & LOG_EVENT_BINLOG_IN_USE_F
                if kind in COMMIT_EVENTS and timestamp and (first is None or timestamp < first):
                    first = timestamp
                if timestamp and (last is None or timestamp > last):
                    last = timestamp
                summary["events"] += 1
                offset += length
            if offset != size:
                summary["complete"] = False
        finally:
            data.close()
    summary["first"] = _time(first) if first else None
    summary["last"] = _time(last) if last else None
    return summary


def push(repository, cluster, path, compression="zstd", level=None):
    """Archive one closed binlog file durably; return what was stored.  Safe to repeat."""
    name = os.path.basename(path)
    sequence(name)
    if not os.path.isfile(path):
        raise ConfigError("binary log %s does not exist" % path)
    summary = read_events(path)
    if not summary["closed"] or not summary["complete"]:
        raise ConfigError("binary log %s is still in use by the server; only closed binary logs are archived" % name,
                          hint="Rotate it first (FLUSH BINARY LOGS); the host command's binlog-ship does that")
    sha = logarchive.sha256_file(path)
    prefix = binlog_prefix(cluster)
    repo = repository.repo
    for info in repo.list(prefix + name + "-"):
        stored = info.key[len(prefix):]
        match = STORED.match(stored)
        if not match or match.group("name") != name:
            continue
        if match.group("sha") == sha:
            return {"name": name, "key": info.key, "sha256": sha, "stored": False}
        raise IntegrityError(
            "binary log %s is already archived in cluster %s with different content" % (name, cluster),
            hint="A restored server numbers its binary logs from the start again, or two servers write into one cluster. "
            "Give this server its own cluster name, or continue the numbering after the archive's with RESET MASTER TO <n>; "
            "inspect %s before removing anything" % info.key,
        )
    first, last = summary["first"], summary["last"]
    base = "%s-%s-%s-%s" % (name, sha, logarchive.to_micros(first), logarchive.to_micros(last))
    key_name = object_name(base, compression, repository.encrypted)
    try:
        with open(path, "rb") as handle:
            record = store_stream(repo, prefix + key_name, key_name, handle, compression, level, repository.master_key)
    except ObjectExists:
        return {"name": name, "key": prefix + key_name, "sha256": sha, "stored": False}
    if record["sha256"] != sha:
        repo.delete(prefix + key_name)
        raise IntegrityError("binary log %s changed while it was archived" % name, hint="The next binlog-ship run retries it")
    return {"name": name, "key": prefix + key_name, "sha256": sha, "stored": True, "size": record["size"],
            "stored_size": record["stored_size"], "first": format_time(first), "last": format_time(last)}


def archived(repo, cluster):
    """Index of archived binlogs: {basename: {number: entry}} from one listing."""
    prefix = binlog_prefix(cluster)
    index = {}
    for info in repo.list(prefix):
        stored = info.key[len(prefix):]
        match = STORED.match(stored)
        if not match:
            continue
        base, number = sequence(match.group("name"))
        index.setdefault(base, {})[number] = logarchive.entry(info, match)
    return index


# What retention reads of every log archive: its kind, the index loader, windows and prunable.
KIND = "binlog"
load = archived


def position(manifest):
    """Where a full backup's binlog chain starts: (basename, number) of its binlog file, or None."""
    start = (manifest.get("positions") or {}).get("binlog_file")
    return sequence(start) if start and FILE_NAME.match(start) else None


def chain_from(index, manifest):
    """Contiguous archived binlogs from a full backup's binlog file on, and the last event time they reach."""
    return logarchive.chain(index, position(manifest))


def _mysql_manifests(manifests):
    return [m for m in manifests if m.get("engine") == "mysql" and (m.get("positions") or {}).get("binlog_file")]


def windows(repo, cluster, manifests, index=None):
    """Recoverable windows: from a full backup's end to the last event its binlog chain reaches."""
    return logarchive.windows(_mysql_manifests(manifests), archived(repo, cluster) if index is None else index, position)


def plan_pitr(repo, cluster, manifests, target):
    """The newest full backup that ended at or before ``target`` and whose binlog chain reaches it, and the binlogs to replay."""
    return logarchive.choose_base(_mysql_manifests(manifests), archived(repo, cluster), position, target, cluster, "binary logs")


def prunable(repo, cluster, index, kept):
    """Archived binlogs no kept full backup needs: those numbered before the oldest kept backup's binlog file of
    the same basename, and, of a basename no kept backup uses, those whose last event precedes the oldest kept
    backup.  Without a kept backup nothing goes."""
    bases = _mysql_manifests(kept)
    if not bases:
        return []
    floors = {}
    for manifest in bases:
        name, number = position(manifest) or (None, None)
        if name is not None:
            floors[name] = min(number, floors.get(name, number))
    found = logarchive.below(index, floors)
    oldest = min(parse_time(m["start_time"]) for m in bases)
    for name, files in index.items():
        if name not in floors:
            found.extend(files[n] for n in sorted(files) if files[n]["last"] is not None and files[n]["last"] < oldest)
    return found


def fetch(repository, entries, destination, owner_uid=None, owner_gid=None):
    """Write archived binlogs, decoded and checked, into ``destination``; return their paths in order."""
    return [logarchive.fetch_to(repository, entry["key"], entry["sha256"], os.path.join(destination, entry["name"]), owner_uid, owner_gid)
            for entry in entries]


def read_index(index_path):
    """Binlog file paths listed in the server's index file, oldest first."""
    directory = os.path.dirname(index_path)
    paths = []
    with open(index_path) as handle:
        for line in handle:
            line = line.strip()
            if line:
                paths.append(line if os.path.isabs(line) else os.path.normpath(os.path.join(directory, line)))
    return paths
