# -*- coding: utf-8 -*-
# Copyright: contributors to the dataprotection.databases collection
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Backup records: ids, keys and the manifest that commits a backup.

A backup lives under ``<cluster>/backups/<backup_id>/``.  Its payload objects
are written first; ``manifest.json`` is written last, with a no-clobber write,
and its presence is what makes the backup exist.  Objects under a backup
directory without a manifest are the remains of an interrupted run.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json
import re

from ansible_collections.dataprotection.databases.plugins.module_utils.errors import (
    ConfigError,
    IntegrityError,
    ObjectExists,
    RepositoryError,
)
from ansible_collections.dataprotection.databases.plugins.module_utils.timeutil import compact, parse_time

MANIFEST_NAME = "manifest.json"
MANIFEST_VERSION = 1
BACKUP_TYPES = ("full", "snapshot")
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$")
_BACKUP_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
# The object of a volume-snapshot backup that holds a copy of the snapshot's files (snapshot.stream: true).
FILES_OBJECT = "files.tar"
REQUIRED = ("backup_id", "cluster", "engine", "method", "type", "start_time", "end_time", "objects")


def check_cluster(name):
    if not isinstance(name, str) or not _NAME.match(name):
        raise ConfigError(
            "cluster %r is not a valid cluster name" % (name,),
            hint="Use 1 to 63 letters, digits, '.', '_' or '-', starting with a letter or digit",
        )
    return name


def new_backup_id(cluster, method, when):
    """``<cluster>-<method>-<UTC yyyymmddHHMMSS>``: sorts by time within a cluster."""
    return "%s-%s-%s" % (check_cluster(cluster), method, compact(when))


def backups_prefix(cluster):
    return "%s/backups/" % check_cluster(cluster)


def backup_prefix(cluster, backup_id):
    if not isinstance(backup_id, str) or not _BACKUP_ID.match(backup_id):
        raise ConfigError("backup id %r is not valid" % (backup_id,), hint="List the backups with dataprotection.databases.backup_info")
    return "%s%s/" % (backups_prefix(cluster), backup_id)


def manifest_key(cluster, backup_id):
    return backup_prefix(cluster, backup_id) + MANIFEST_NAME


def object_key(manifest, record):
    return backup_prefix(manifest["cluster"], manifest["backup_id"]) + record["name"]


def validate(manifest, where="manifest"):
    """Check the fields every reader relies on; return the manifest."""
    if not isinstance(manifest, dict):
        raise IntegrityError("%s is not a JSON object" % where)
    missing = [name for name in REQUIRED if name not in manifest]
    if missing:
        raise IntegrityError("%s lacks %s" % (where, ", ".join(missing)))
    if manifest.get("manifest_version", 1) > MANIFEST_VERSION:
        raise IntegrityError(
            "%s has manifest version %s, newer than this collection reads" % (where, manifest.get("manifest_version")),
        )
    for record in manifest["objects"]:
        for field in ("name", "size", "sha256", "compression", "encryption"):
            if field not in record:
                raise IntegrityError("%s: object %r lacks %s" % (where, record.get("name"), field))
    parse_time(manifest["start_time"], "start_time")
    parse_time(manifest["end_time"], "end_time")
    return manifest


def totals(objects):
    return sum(o.get("size") or 0 for o in objects), sum(o.get("stored_size") or 0 for o in objects)


def write_manifest(repo, manifest):
    """Commit a backup by writing its manifest (never replacing one)."""
    validate(manifest)
    manifest.setdefault("manifest_version", MANIFEST_VERSION)
    manifest["size"], manifest["stored_size"] = totals(manifest["objects"])
    for field in ("compression", "encryption"):
        values = set(o.get(field) for o in manifest["objects"])
        if len(values) == 1:
            manifest.setdefault(field, values.pop())
    data = json.dumps(manifest, indent=2, sort_keys=True).encode("utf-8") + b"\n"
    key = manifest_key(manifest["cluster"], manifest["backup_id"])
    try:
        repo.put_bytes(key, data, overwrite=False)
    except ObjectExists:
        raise RepositoryError(
            "backup %s already exists in %s" % (manifest["backup_id"], repo.location()),
            hint="Backup ids are per second; wait a second and run the backup again",
        )
    return key


def read_manifest(repo, cluster, backup_id):
    key = manifest_key(cluster, backup_id)
    return parse_manifest(repo.get_bytes(key), key)


def parse_manifest(raw, where):
    try:
        manifest = json.loads(raw.decode("utf-8"))
    except ValueError:
        raise IntegrityError("%s is not valid JSON" % where)
    return validate(manifest, where)


def streamed_object(manifest):
    """The record of a snapshot backup's copy of its files in the repository, or None when it was not streamed."""
    found = [o for o in manifest.get("objects") or () if o["name"].startswith(FILES_OBJECT)]
    return found[0] if found else None
