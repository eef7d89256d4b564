# -*- coding: utf-8 -*-
# Copyright: contributors to the dataprotection.databases collection
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Generated clusters: manifests and archived log files in the repository format, spanning months.

What a repository holds after months of scheduled backups and continuous
archiving, written in seconds: PostgreSQL bases with WAL segments (names carry
the first and last transaction times, as wal-push writes them) and MySQL full
backups with binary logs.  Each backup has one real stored object (through
the same store_stream the engines use), so ``backup_info verify`` checks it;
with ``fast=True`` (the benchmark, a local repository only) objects and log
files are written as plain files without fsync and the objects are not real.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import datetime
import hashlib
import json
import os

from ansible_collections.dataprotection.databases.plugins.module_utils.engines import logarchive
from ansible_collections.dataprotection.databases.plugins.module_utils.manifest import backup_prefix, manifest_key, new_backup_id, write_manifest
from ansible_collections.dataprotection.databases.plugins.module_utils.timeutil import format_time, parse_time
from ansible_collections.dataprotection.databases.plugins.module_utils.transfer import store_stream

SEGMENTS_PER_LOG = 256


def wal_name(timeline, segno):
    return "%08X%08X%08X" % (timeline, segno // SEGMENTS_PER_LOG, segno % SEGMENTS_PER_LOG)


class Generator(object):
    """Writes one cluster's history into ``repo``; times are aware datetimes or ISO strings."""

    def __init__(self, repo, cluster, fast=False):
        self.repo = repo
        self.cluster = cluster
        self.fast = fast
        # Log files' content is never read back by retention: on a local repository write them as plain files.
        self.plain_logs = fast or hasattr(repo, "path_of")
        self.manifests = []
        self.log_keys = []

    def _put(self, key, data, plain=False):
        if self.fast or plain:
            path = self.repo.path_of(key)
            directory = os.path.dirname(path)
            if not os.path.isdir(directory):
                os.makedirs(directory)
            with open(path, "wb") as handle:
                handle.write(data)
        else:
            self.repo.put_bytes(key, data)

    def backup(self, engine, method, end, positions, snapshots=None, labels=None):
        end = parse_time(end)
        start = end - datetime.timedelta(seconds=30)
        backup_id = new_backup_id(self.cluster, method, start)
        payload = ("%s payload %s" % (backup_id, "x" * 200)).encode("utf-8")
        if self.fast:
            record = {"name": "base.tar", "size": len(payload), "stored_size": len(payload), "sha256": hashlib.sha256(payload).hexdigest(),
                      "compression": "none", "encryption": "none"}
            self._put(backup_prefix(self.cluster, backup_id) + "base.tar", payload)
        else:
            record = store_stream(self.repo, backup_prefix(self.cluster, backup_id) + "base.tar.zst", "base.tar.zst", [payload], "zstd", None, None)
        manifest = {
            "backup_id": backup_id, "cluster": self.cluster, "engine": engine, "method": method, "type": "snapshot" if snapshots else "full",
            "status": "completed", "start_time": format_time(start), "end_time": format_time(end), "objects": [record],
            "labels": labels or {}, "snapshots": snapshots or [], "positions": positions,
        }
        if self.fast:
            manifest["size"] = manifest["stored_size"] = len(payload)
            self._put(manifest_key(self.cluster, backup_id), json.dumps(manifest).encode("utf-8"))
        else:
            write_manifest(self.repo, manifest)
        self.manifests.append(manifest)
        return manifest

    def _log(self, key):
        self._put(key, b"log " + key.encode("utf-8"), plain=self.plain_logs)
        self.log_keys.append(key)

    def _history(self, start, days, every_minutes, backup_every_hours, gaps):
        """(number, begin, takes a backup, archived) for each log file of a history."""
        start = parse_time(start)
        step = datetime.timedelta(minutes=every_minutes)
        gaps = [(parse_time(a), parse_time(b)) for a, b in gaps]
        every = int(backup_every_hours * 60 // every_minutes)
        for i in range(int(days * 24 * 60 // every_minutes)):
            begin = start + step * i
            yield i, begin, i % every == 0, not any(a <= begin < b for a, b in gaps)

    def _log_name(self, directory, name, begin, minutes):
        first = logarchive.to_micros(begin + datetime.timedelta(seconds=1))
        last = logarchive.to_micros(begin + datetime.timedelta(minutes=minutes) - datetime.timedelta(seconds=1))
        sha = hashlib.sha256(name.encode("ascii")).hexdigest()
        self._log("%s/logs/%s/%s-%s-%s-%s.zst" % (self.cluster, directory, name, sha, first, last))

    def postgresql(self, start, days, backup_every_hours=24, segment_minutes=10, gaps=(), timeline=1, first_segno=1):
        """Segments every ``segment_minutes`` from ``start`` for ``days`` (none inside ``gaps``, a list of (from, to)),
        and a base every ``backup_every_hours``, its start and stop segment the one being written at its time."""
        for i, begin, base, archived in self._history(start, days, segment_minutes, backup_every_hours, gaps):
            name = wal_name(timeline, first_segno + i)
            if base:
                self.backup("postgresql", "pg-basebackup", begin + datetime.timedelta(seconds=40),
                            {"start_wal": name, "stop_wal": name, "timeline": timeline})
            if archived:
                self._log_name("wal/" + name[:16], name, begin, segment_minutes)
        self._log("%s/logs/wal/history/%08X.history-%s.zst" % (self.cluster, timeline + 1, "0" * 64))
        return self

    def mysql(self, start, days, backup_every_hours=24, binlog_minutes=60, gaps=(), basename="mysql-bin", first_number=1):
        """Binary logs every ``binlog_minutes`` and a full backup every ``backup_every_hours``."""
        for i, begin, base, archived in self._history(start, days, binlog_minutes, backup_every_hours, gaps):
            name = "%s.%06d" % (basename, first_number + i)
            if base:
                self.backup("mysql", "xtrabackup", begin + datetime.timedelta(seconds=40), {"binlog_file": name, "binlog_position": 4})
            if archived:
                self._log_name("binlog", name, begin, binlog_minutes)
        return self
