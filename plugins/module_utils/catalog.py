# -*- coding: utf-8 -*-
# Copyright: contributors to the dataprotection.databases collection
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The catalog: what a repository holds, read from the repository alone.

Backups are found by one listing of ``<cluster>/backups/``; a backup exists
when its manifest does.  Recoverable windows come from each engine's log
archive (``engines.windows``).
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible_collections.dataprotection.databases.plugins.module_utils.errors import DataProtectionError
from ansible_collections.dataprotection.databases.plugins.module_utils.manifest import (
    MANIFEST_NAME,
    backups_prefix,
    object_key,
    parse_manifest,
    streamed_object,
)
from ansible_collections.dataprotection.databases.plugins.module_utils.timeutil import parse_time
from ansible_collections.dataprotection.databases.plugins.module_utils.transfer import verify_object


def list_clusters(repo):
    """Names of the clusters that have anything in the repository."""
    return [name for name in repo.list_dirs("") if repo.list_dirs(name)]


def scan_cluster(repo, cluster):
    """Return (manifests, incomplete) for one cluster.

    ``incomplete`` lists backup directories without a manifest: garbage of
    interrupted runs (or a backup running right now), with their size.
    """
    prefix = backups_prefix(cluster)
    groups = {}
    for info in repo.list(prefix):
        rest = info.key[len(prefix):]
        if "/" not in rest:
            continue
        backup_id, name = rest.split("/", 1)
        group = groups.setdefault(backup_id, {"manifest": None, "objects": 0, "bytes": 0, "last_modified": 0.0})
        if name == MANIFEST_NAME:
            group["manifest"] = info.key
        else:
            group["objects"] += 1
            group["bytes"] += info.size
            group["last_modified"] = max(group["last_modified"], info.mtime)
    manifests, incomplete = [], []
    for backup_id in sorted(groups):
        group = groups[backup_id]
        if group["manifest"] is None:
            incomplete.append({
                "backup_id": backup_id,
                "cluster": cluster,
                "objects": group["objects"],
                "bytes": group["bytes"],
                "last_modified_epoch": group["last_modified"],
            })
            continue
        try:
            manifests.append(parse_manifest(repo.get_bytes(group["manifest"]), group["manifest"]))
        except DataProtectionError as exc:
            incomplete.append({"backup_id": backup_id, "cluster": cluster, "objects": group["objects"], "bytes": group["bytes"], "error": str(exc)})
    return manifests, incomplete


def newest_first(manifests):
    return sorted(manifests, key=lambda m: (parse_time(m["end_time"]), m["backup_id"]), reverse=True)


def matches(manifest, engine=None, method=None, since=None, until=None, labels=None):
    if engine and manifest.get("engine") != engine:
        return False
    if method and manifest.get("method") != method:
        return False
    end = parse_time(manifest["end_time"])
    if since is not None and end < since:
        return False
    if until is not None and end > until:
        return False
    if labels:
        have = manifest.get("labels") or {}
        for key, value in labels.items():
            if str(have.get(key)) != str(value):
                return False
    return True


def verify_backup(repo, manifest, master_key=None):
    """Re-read every object of a backup; return (objects, bytes, problems)."""
    problems = []
    checked = 0
    size = 0
    for record in manifest["objects"]:
        key = object_key(manifest, record)
        problem = verify_object(repo, key, record, master_key)
        checked += 1
        size += record.get("size") or 0
        if problem:
            problems.append({"backup_id": manifest["backup_id"], "cluster": manifest["cluster"], "object": record["name"], "key": key, "problem": problem})
    return checked, size, problems


def summarize(manifest):
    """The fields of a manifest that listings return."""
    keys = (
        "backup_id", "cluster", "engine", "engine_version", "method", "type", "status", "start_time", "end_time",
        "size", "stored_size", "compression", "encryption", "labels", "host", "positions", "consistency",
    )
    summary = dict((k, manifest.get(k)) for k in keys if k in manifest)
    summary["objects"] = len(manifest.get("objects", []))
    if manifest.get("type") == "snapshot":
        summary["snapshots"] = [dict((k, r.get(k)) for k in ("provider", "id", "source", "created")) for r in manifest.get("snapshots") or []]
        summary["streamed"] = streamed_object(manifest) is not None
    return summary
