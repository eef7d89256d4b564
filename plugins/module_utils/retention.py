# -*- coding: utf-8 -*-
# Copyright: contributors to the dataprotection.databases collection
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Retention: what a policy no longer keeps in one cluster, and its deletion in an order that is safe to interrupt.

A backup is kept when any rule keeps it: younger than ``retention_period``,
among the newest ``keep_last``, the newest of all (``retain_latest``), or a
base that point-in-time restore needs to reach back ``min_window``.  Archived
log files go when no kept base needs them: they precede the oldest kept base.
Before anything is deleted, the windows of the kept bases are computed once
with and once without the log files that would go; they must be equal, or
nothing is deleted.

Deletion order: a backup's manifest first (durably: the backup is then no
longer a backup but garbage of an interrupted run; its volume snapshots are
listed under ``<cluster>/pending-deletions/`` before, and deleted through
their provider right after; so is what the engine keeps for it outside its
own prefix, such as Nebula BR's files), then its objects, then log
files oldest first, then interrupted runs and never-committed uploads older
than a grace period.  A run stopped anywhere leaves a repository whose every
manifest still names only objects that exist.  The cluster's writer lease is
held throughout, so a running backup is never touched.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import datetime
import json
import re
import time

from ansible_collections.dataprotection.databases.plugins.module_utils import catalog, engines, matrix, snapshots
from ansible_collections.dataprotection.databases.plugins.module_utils.engines import logarchive
from ansible_collections.dataprotection.databases.plugins.module_utils.errors import AccessDenied, ConfigError, IntegrityError
from ansible_collections.dataprotection.databases.plugins.module_utils.locking import Lease
from ansible_collections.dataprotection.databases.plugins.module_utils.manifest import backup_prefix, check_cluster, manifest_key
from ansible_collections.dataprotection.databases.plugins.module_utils.repoconfig import open_repository
from ansible_collections.dataprotection.databases.plugins.module_utils.timeutil import format_time, parse_time, utcnow

_PERIOD_PART = re.compile(r"(\d+)(y|mo|w|d|h|m)")
UNIT_SECONDS = {"y": 365 * 86400, "mo": 30 * 86400, "w": 7 * 86400, "d": 86400, "h": 3600, "m": 60}
PERIOD_HINT = ("Write it as KubeBlocks does: numbers with units y (365 days), mo (30 days), w, d, h, m, "
               "largest first, e.g. 7d, 30d12h, 6mo, 1y6mo")
DEFAULT_GRACE = "1d"
LEASE_TTL = 3600
RENEW_EVERY = 60.0
DELETE_BATCH = 1000


def parse_period(value, name="retention_period"):
    """A KubeBlocks retention period (``7d``, ``30d12h``, ``6mo``, ``2y``) as a timedelta."""
    text = str(value).strip().lower() if value is not None else ""
    total, position, seen = 0, 0, []
    for match in _PERIOD_PART.finditer(text):
        if match.start() != position:
            break
        unit = match.group(2)
        if unit in seen:
            raise ConfigError("%s %r names the unit %s twice" % (name, value, unit), hint=PERIOD_HINT)
        seen.append(unit)
        total += int(match.group(1)) * UNIT_SECONDS[unit]
        position = match.end()
    if not text or position != len(text) or not seen:
        raise ConfigError("%s %r is not a retention period" % (name, value), hint=PERIOD_HINT)
    if total <= 0:
        raise ConfigError("%s %r is zero: it would keep nothing" % (name, value), hint=PERIOD_HINT)
    return datetime.timedelta(seconds=total)


class Policy(object):
    """A validated retention policy."""

    def __init__(self, retention_period=None, keep_last=None, retain_latest=True, min_window=None, incomplete_grace=None,
                 allow_empty=False, method=None, engine=None):
        if retention_period in (None, "") and keep_last is None:
            raise ConfigError(
                "a retention policy needs retention_period or keep_last: with neither, nothing would ever expire",
                hint="Set retention_period (e.g. 7d) and/or keep_last (e.g. 7); min_window and retain_latest only protect",
            )
        self.retention_text = str(retention_period) if retention_period not in (None, "") else None
        self.retention_period = parse_period(retention_period) if self.retention_text else None
        if keep_last is not None:
            try:
                keep_last = int(keep_last)
            except (TypeError, ValueError):
                raise ConfigError("keep_last %r is not a number" % (keep_last,))
            if keep_last < 1:
                raise ConfigError("keep_last must be at least 1, got %d" % keep_last,
                                  hint="To expire every backup use retention_period with retain_latest: false and allow_empty: true")
        self.keep_last = keep_last
        self.retain_latest = bool(retain_latest)
        self.min_window_text = str(min_window) if min_window not in (None, "") else None
        self.min_window = parse_period(min_window, "min_window") if self.min_window_text else None
        self.grace_text = str(incomplete_grace or DEFAULT_GRACE)
        self.grace = parse_period(self.grace_text, "incomplete_grace")
        self.allow_empty = bool(allow_empty)
        self.engine = matrix.check_engine(engine) if engine else None
        if method:
            if not self.engine:
                raise ConfigError("method %s needs engine: a method name means something only for one engine" % method)
            matrix.check_method(self.engine, method, implemented=False)
        self.method = method or None

    def describe(self):
        return {
            "retention_period": self.retention_text,
            "keep_last": self.keep_last,
            "retain_latest": self.retain_latest,
            "min_window": self.min_window_text,
            "incomplete_grace": self.grace_text,
            "allow_empty": self.allow_empty,
            "engine": self.engine,
            "method": self.method,
        }

    def in_scope(self, manifest):
        return (not self.engine or manifest.get("engine") == self.engine) and (not self.method or manifest.get("method") == self.method)


def _archives(repo, cluster, manifests):
    """{engine: (log archive module, index)} for the engines of ``manifests`` that archive logs, each listed once."""
    found = {}
    for engine in sorted(set(m.get("engine") for m in manifests)):
        module = engines.log_archive(engine)
        if module is not None:
            found[engine] = (module, module.load(repo, cluster))
    return found


def _windows(repo, cluster, archives, manifests, pruned=None):
    found = []
    for engine, (module, index) in sorted(archives.items()):
        if pruned is not None:
            index = logarchive.without(index, pruned.get(engine, []))
        found.extend(module.windows(repo, cluster, manifests, index))
    return found


def min_window_bases(repo, cluster, archives, manifests, cutoff, now):
    """The fewest bases whose log chains keep every time in [cutoff, now] that is recoverable today recoverable."""
    protected = set()
    reaches = dict((engine, dict((sequence, logarchive.reaches(files)) for sequence, files in index.items()))
                   for engine, (dummy, index) in archives.items())
    for engine, (module, index) in sorted(archives.items()):
        spans = []
        for manifest in manifests:
            if manifest.get("engine") != engine:
                continue
            start_at = module.position(manifest, index) if getattr(module, "POSITION_NEEDS_INDEX", False) else module.position(manifest)
            reach = reaches[engine].get(start_at[0], {}).get(start_at[1]) if start_at else None
            start = parse_time(manifest["end_time"])
            if reach is not None and reach > start:
                spans.append((start, reach, manifest["backup_id"]))
        point = cutoff
        while spans and point < now:
            covering = [s for s in spans if s[0] <= point < s[1]]
            if covering:
                best = max(covering, key=lambda s: (s[1], s[0]))
                protected.add(best[2])
                point = best[1]
                continue
            later = [s[0] for s in spans if s[0] > point]
            if not later:
                break
            point = min(later)
    return protected


def plan(repo, cluster, policy, now=None):
    """What the policy deletes in ``cluster`` and why, without changing anything."""
    check_cluster(cluster)
    now = now or utcnow()
    manifests, incomplete = catalog.scan_cluster(repo, cluster)
    scope = catalog.newest_first([m for m in manifests if policy.in_scope(m)])
    archives = _archives(repo, cluster, manifests)
    reasons = {}
    for rank, manifest in enumerate(scope):
        keep = reasons.setdefault(manifest["backup_id"], [])
        if policy.retention_period is not None and parse_time(manifest["end_time"]) >= now - policy.retention_period:
            keep.append("younger than retention_period %s" % policy.retention_text)
        if policy.keep_last is not None and rank < policy.keep_last:
            keep.append("one of the newest %d (keep_last)" % policy.keep_last)
        if policy.retain_latest and rank == 0:
            keep.append("the newest backup (retain_latest)")
    notes = []
    if policy.min_window is not None:
        cutoff = now - policy.min_window
        if not archives:
            notes.append("min_window has no effect: cluster %s archives no logs, so it has no point-in-time windows" % cluster)
        for backup_id in min_window_bases(repo, cluster, archives, scope, cutoff, now):
            reasons[backup_id].append("needed to restore to any time since %s (min_window %s)" % (format_time(cutoff), policy.min_window_text))
    expired, kept, blocked = [], [], []
    for manifest in reversed(scope):
        backup_id = manifest["backup_id"]
        row = {"backup_id": backup_id, "engine": manifest.get("engine"), "method": manifest.get("method"),
               "end_time": manifest["end_time"], "stored_size": manifest.get("stored_size") or 0}
        if reasons[backup_id]:
            kept.append(dict(row, reasons=reasons[backup_id]))
        elif not all(snapshots.can_delete(record) for record in manifest.get("snapshots") or ()):
            providers = sorted(set(str(s.get("provider")) for s in manifest["snapshots"] if not snapshots.can_delete(s)))
            blocked.append(dict(row, reason="its volume snapshots (%s) cannot be deleted by this version of the collection" % ", ".join(providers)))
            kept.append(dict(row, reasons=["holds volume snapshots no provider here can delete; delete them, then remove the backup"]))
        else:
            owned = []
            for prefix in owned_prefixes(manifest):
                infos = list(repo.list(prefix))
                owned.append({"prefix": prefix, "objects": len(infos), "bytes": sum(info.size or 0 for info in infos)})
            expired.append(dict(row, reason=_expiry_reason(manifest, policy), snapshots=list(manifest.get("snapshots") or []), owned=owned))
    if scope and len(expired) == len(scope) and not policy.allow_empty:
        raise ConfigError(
            "this policy would delete every backup of cluster %s (%d of %d in scope) and leave nothing to restore from"
            % (cluster, len(expired), len(scope)),
            hint="Check retention_period and keep_last; keep retain_latest: true, or set allow_empty: true if you mean it",
            expired=[row["backup_id"] for row in expired],
        )
    going = set(row["backup_id"] for row in expired)
    remaining = [m for m in manifests if m["backup_id"] not in going]
    pruned, logs = {}, []
    for engine, (module, index) in sorted(archives.items()):
        entries = module.prunable(repo, cluster, index, remaining)
        pruned[engine] = entries
        if entries:
            logs.append({"engine": engine, "kind": module.KIND, "count": len(entries), "bytes": sum(e["stored_size"] or 0 for e in entries),
                         "first": min(e["name"] for e in entries), "last": max(e["name"] for e in entries)})
    windows_kept = _windows(repo, cluster, archives, remaining)
    windows_after = _windows(repo, cluster, archives, remaining, pruned)
    if windows_kept != windows_after:
        raise IntegrityError(
            "retention of cluster %s would shorten a window of a backup it keeps; nothing was deleted" % cluster,
            hint="This is a defect in the collection; report it with the repository's listing",
            windows=windows_kept, windows_after=windows_after,
        )
    grace_cutoff = now.timestamp() - policy.grace.total_seconds()
    stale, left = [], []
    for item in incomplete:
        if "error" in item:
            left.append(dict(item, reason="its manifest cannot be read; left alone for a person to look at"))
        elif (item.get("last_modified_epoch") or 0) < grace_cutoff:
            stale.append(item)
        else:
            left.append(dict(item, reason="younger than incomplete_grace %s (it may be a run in progress)" % policy.grace_text))
    try:
        partial = [p for p in repo.list_partial(cluster + "/") if p.get("started_epoch") is not None and p["started_epoch"] < grace_cutoff]
    except AccessDenied as exc:
        partial = []
        notes.append("uploads never committed were not looked for: %s (grant s3:ListBucketMultipartUploads and s3:AbortMultipartUpload)" % exc)
    freed = (sum(row["stored_size"] + sum(o["bytes"] for o in row["owned"]) for row in expired)
             + sum(row["bytes"] for row in logs) + sum(item["bytes"] for item in stale)
             + sum(p.get("size") or 0 for p in partial))
    return {
        "cluster": cluster,
        "policy": policy.describe(),
        "now": format_time(now),
        "expired": expired,
        "kept": list(reversed(kept)),
        "blocked": blocked,
        "logs": logs,
        "incomplete": stale,
        "incomplete_left": left,
        "partial_uploads": [dict(p, started=format_time(datetime.datetime.fromtimestamp(p["started_epoch"], now.tzinfo))) for p in partial],
        "bytes_freed": freed,
        "windows_before": _windows(repo, cluster, archives, manifests),
        "windows_after": windows_kept,
        "notes": notes,
        "_pruned": pruned,
    }


def _expiry_reason(manifest, policy):
    parts = ["ended %s" % manifest["end_time"]]
    if policy.retention_period is not None:
        parts.append("older than retention_period %s" % policy.retention_text)
    if policy.keep_last is not None:
        parts.append("not among the newest %d" % policy.keep_last)
    return ", ".join(parts)


class _Renewer(object):
    """Renews the lease while a long deletion runs."""

    def __init__(self, lease):
        self.lease = lease
        self.last = time.monotonic()

    def tick(self):
        if self.lease is not None and time.monotonic() - self.last > RENEW_EVERY:
            self.lease.renew()
            self.last = time.monotonic()


def pending_key(cluster, backup_id):
    """Where the snapshots of a backup being deleted are listed until their provider has deleted them."""
    return "%s/pending-deletions/%s.json" % (cluster, backup_id)


def owned_prefixes(manifest):
    """The repository prefixes outside a backup's own that hold its data (Nebula BR's files), from its engine."""
    try:
        module = engines.engine_module(manifest.get("engine"))
    except ConfigError:
        return []
    hook = getattr(module, "owned_prefixes", None)
    return list(hook(manifest)) if hook else []


def _leftovers(row):
    """What goes with a backup besides its objects, in the pending list's form: its snapshots, then its owned prefixes."""
    return list(row["snapshots"]) + [{"repository_prefix": p["prefix"]} for p in row.get("owned") or ()]


def _delete_leftover(repo, record, found):
    if "repository_prefix" in record:
        repo.delete_many([info.key for info in repo.list(record["repository_prefix"])])
        found["owned_deleted"].append(record["repository_prefix"])
    else:
        snapshots.delete_record(record)
        found["snapshots_deleted"].append(record)


def delete_pending(repo, cluster, found):
    """Delete the snapshots and owned data that earlier runs un-committed but could not delete."""
    prefix = "%s/pending-deletions/" % cluster
    for info in list(repo.list(prefix)):
        records = json.loads(repo.get_bytes(info.key).decode("utf-8"))
        for record in records:
            _delete_leftover(repo, record, found)
        repo.delete(info.key)


def execute(repo, cluster, found, lease=None):
    """Delete what ``plan`` found, in the order the module docstring gives."""
    renewer = _Renewer(lease)
    found["snapshots_deleted"], found["owned_deleted"] = [], []
    delete_pending(repo, cluster, found)
    for row in found["expired"]:
        leftovers = _leftovers(row)
        if leftovers:
            # Listed first, so a deletion that fails (or is interrupted) after the un-commit is retried by the next run.
            repo.put_bytes(pending_key(cluster, row["backup_id"]), json.dumps(leftovers, sort_keys=True).encode("utf-8"))
        repo.delete_durably(manifest_key(cluster, row["backup_id"]))
        for record in leftovers:
            _delete_leftover(repo, record, found)
            renewer.tick()
        if leftovers:
            repo.delete(pending_key(cluster, row["backup_id"]))
        repo.delete_many([info.key for info in repo.list(backup_prefix(cluster, row["backup_id"]))])
        renewer.tick()
    for engine in sorted(found["_pruned"]):
        entries = sorted(found["_pruned"][engine], key=lambda e: e["key"])
        for start in range(0, len(entries), DELETE_BATCH):
            repo.delete_many([e["key"] for e in entries[start:start + DELETE_BATCH]])
            renewer.tick()
    for item in found["incomplete"]:
        repo.delete_many([info.key for info in repo.list(backup_prefix(cluster, item["backup_id"]))])
        renewer.tick()
    for partial in found["partial_uploads"]:
        repo.discard_partial(partial)


def run_retention(spec, cluster, policy, check_mode=False, now=None):
    """Apply ``policy`` to ``cluster``: the plan in check mode, else what was deleted."""
    with open_repository(spec) as repository:
        repo = repository.repo
        if check_mode:
            found = plan(repo, cluster, policy, now)
            holder = Lease(repo, cluster, "retention").current()
            if holder:
                found["notes"].append("cluster %s is busy now (%s by host %s): a real run would wait for it or fail"
                                      % (cluster, holder.get("purpose"), holder.get("host")))
        else:
            with Lease(repo, cluster, "retention", ttl=LEASE_TTL) as lease:
                found = plan(repo, cluster, policy, now)
                execute(repo, cluster, found, lease)
    found.pop("_pruned", None)
    found.setdefault("snapshots_deleted", [])
    found.setdefault("owned_deleted", [])
    found["changed"] = bool(found["expired"] or found["logs"] or found["incomplete"] or found["partial_uploads"] or found["snapshots_deleted"]
                            or found["owned_deleted"])
    return found
