# -*- coding: utf-8 -*-
# Copyright: contributors to the dataprotection.databases collection
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""What every engine's log archive shares: hashing, the time fields of object names, windows, fetching."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import datetime
import hashlib
import os

from ansible_collections.dataprotection.databases.plugins.module_utils.errors import RecoveryWindowError
from ansible_collections.dataprotection.databases.plugins.module_utils.timeutil import UTC, format_time, parse_time
from ansible_collections.dataprotection.databases.plugins.module_utils.transfer import copy_object_to

EPOCH = datetime.datetime(1970, 1, 1, tzinfo=UTC)


def to_micros(value):
    """An aware time as the ``<first>``/``<last>`` field of a log object name (``n`` for none)."""
    return "n" if value is None else str(int((value - EPOCH).total_seconds() * 1000000))


def from_micros(field):
    return None if field == "n" else EPOCH + datetime.timedelta(microseconds=int(field))


def sha256_file(path):
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while True:
            chunk = handle.read(1024 * 1024)
            if not chunk:
                return digest.hexdigest()
            digest.update(chunk)


def record_for(key, sha):
    """The record transfer needs to read a stored log object (the size is checked through the hash)."""
    ext = key[key.index(sha) + 64:]
    compression = "zstd" if ".zst" in ext else ("gzip" if ".gz" in ext else "none")
    return {"name": key.rsplit("/", 1)[-1], "size": None, "sha256": sha, "compression": compression,
            "encryption": "aes-256-gcm" if ext.endswith(".enc") else "none"}


def fetch_to(repository, key, sha, final, owner_uid=None, owner_gid=None):
    """Write one stored log object, decoded and checked, to ``final`` (mode 0600) through a temporary name."""
    tmp = final + ".dp-tmp"
    try:
        with open(tmp, "wb") as handle:
            copy_object_to(repository.repo, key, record_for(key, sha), handle.write, repository.master_key)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, 0o600)
        if owner_uid is not None:
            os.chown(tmp, owner_uid, owner_gid)
        os.rename(tmp, final)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return final


def entry(info, match):
    """An archive index entry from a listed object and the match of its name (groups name, sha, first, last)."""
    return {
        "name": match.group("name"),
        "key": info.key,
        "sha256": match.group("sha"),
        "first": from_micros(match.group("first")),
        "last": from_micros(match.group("last")),
        "stored_size": info.size,
    }


def follow(files, number):
    """The files numbered ``number``, ``number + 1``, ... present in ``files`` ({number: entry}) without a gap,
    and the last time they reach."""
    chain = []
    reach = None
    while number in files:
        found = files[number]
        chain.append(found)
        if found["last"] is not None and (reach is None or found["last"] > reach):
            reach = found["last"]
        number += 1
    return chain, reach


def chain(index, position):
    """``follow`` in an index {sequence: {number: entry}} from a position (sequence, number); ([], None) without one."""
    if position is None:
        return [], None
    return follow(index.get(position[0], {}), position[1])


def reaches(files):
    """{number: the last time reached by following ``files`` from ``number`` on without a gap}, in one pass.

    What ``follow`` gives for one start, for every start at once: windows of a
    thousand bases over a hundred thousand files stay linear.
    """
    found = {}
    after = None
    for number in sorted(files, reverse=True):
        if number + 1 not in files:
            after = None
        last = files[number]["last"]
        reach = last if after is None else (after if last is None else max(last, after))
        found[number] = reach
        after = reach
    return found


def merge_windows(spans):
    """Windows from (start, end, backup_id) spans: overlapping spans merge into one."""
    merged = []
    for start, end, backup_id in sorted(spans):
        if merged and start <= merged[-1]["_end"]:
            merged[-1]["_end"] = max(merged[-1]["_end"], end)
            merged[-1]["base_backups"].append(backup_id)
        else:
            merged.append({"_start": start, "_end": end, "base_backups": [backup_id]})
    return [{"start": format_time(w["_start"]), "end": format_time(w["_end"]), "base_backups": sorted(w["base_backups"], reverse=True)}
            for w in merged]


def outside_windows(target, cluster, found, logs):
    """The refusal of a restore_time that no window contains."""
    return RecoveryWindowError(
        "restore_time %s is outside every recoverable window of cluster %s" % (format_time(target), cluster),
        hint="Recoverable windows: %s" % ("; ".join("%s .. %s" % (w["start"], w["end"]) for w in found) or
                                          "none (no full backup is followed by archived %s; enable log_backup and take a full backup)" % logs),
        windows=found,
    )


def windows(bases, index, position):
    """Recoverable windows: from each base's ``end_time`` to the last time its log chain reaches.

    ``index`` is {sequence: {number: entry}} (timelines of WAL segments, basenames of binlogs) and
    ``position(manifest)`` the (sequence, number) a base's chain starts at, or None.
    """
    reach = dict((sequence, reaches(files)) for sequence, files in index.items())
    spans = []
    for manifest in bases:
        start_at = position(manifest)
        end = reach.get(start_at[0], {}).get(start_at[1]) if start_at else None
        start = parse_time(manifest["end_time"])
        if end is not None and end > start:
            spans.append((start, end, manifest["backup_id"]))
    return merge_windows(spans)


def choose_base(bases, index, position, target, cluster, logs):
    """The newest base that ended at or before ``target`` and whose chain reaches it, with the log files up to the
    first one holding something after ``target``; or the refusal naming the windows."""
    candidates = sorted((m for m in bases if parse_time(m["end_time"]) <= target), key=lambda m: parse_time(m["end_time"]), reverse=True)
    for manifest in candidates:
        entries, reach = chain(index, position(manifest))
        if reach is None or reach < target:
            continue
        needed = []
        for entry in entries:
            needed.append(entry)
            if entry["last"] is not None and entry["last"] > target:
                break
        return manifest, needed
    raise outside_windows(target, cluster, windows(bases, index, position), logs)


def below(index, floors):
    """Entries of ``index`` numbered below their sequence's floor ({sequence: number}), oldest first;
    sequences without a floor keep everything."""
    found = []
    for sequence, files in index.items():
        floor = floors.get(sequence)
        if floor is not None:
            found.extend(files[number] for number in sorted(files) if number < floor)
    return found


def without(index, entries):
    """A copy of ``index`` without ``entries`` (to see the windows a pruning would leave)."""
    gone = set(entry["key"] for entry in entries)
    return dict((sequence, dict((n, e) for n, e in files.items() if e["key"] not in gone)) for sequence, files in index.items())


class Shipping(object):
    """How an engine's log shipping runs under a scheduler: the host command's subcommand and the words of its files."""

    def __init__(self, name, subcommand, description, after, comment):
        self.name = name                # in file names: dataprotection-<name>-<cluster>
        self.subcommand = subcommand    # the host command's subcommand, e.g. binlog-ship
        self.description = description  # the unit's Description, with %s for the cluster
        self.after = after              # the units it starts after
        self.comment = comment          # the cron file's comment line, with %s for the cluster

    def command(self, agent, config_path, follow=False):
        return "%s --config %s %s%s" % (agent, config_path, self.subcommand, " --follow" if follow else "")

    def files(self, scheduler, cluster, owner, agent, config_path, options):
        """The files that run the shipping: {path: content}; none for the scheduler none."""
        if scheduler == "systemd":
            unit_dir = options.get("scheduler_dir") or "/etc/systemd/system"
            return {os.path.join(unit_dir, "dataprotection-%s-%s.service" % (self.name, cluster)): (
                "[Unit]\n"
                "Description=%s\n"
                "After=network-online.target %s\n\n"
                "[Service]\n"
                "User=%s\n"
                "ExecStart=%s\n"
                "Restart=always\n"
                "RestartSec=10\n\n"
                "[Install]\n"
                "WantedBy=multi-user.target\n" % (self.description % cluster, self.after, owner, self.command(agent, config_path, follow=True)))}
        if scheduler == "cron":
            cron_dir = options.get("scheduler_dir") or "/etc/cron.d"
            # cron reads only files named with letters, digits, '_' and '-'; cluster names may hold '.'.
            return {os.path.join(cron_dir, "dataprotection-%s-%s" % (self.name, cluster.replace(".", "_"))): (
                "%s\n* * * * * %s %s >/dev/null 2>&1\n" % (self.comment % cluster, owner, self.command(agent, config_path)))}
        return {}
