# -*- coding: utf-8 -*-
# Copyright: contributors to the dataprotection.databases collection
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Full backups, engine-neutral: plan, lease, payload objects, manifest last.

An engine's ``plan_backup(request)`` inspects the server and the tools without
changing anything (check mode stops there); its ``run_backup(request, ctx)``
streams the payload through ``ctx.store`` and returns the engine facts for the
manifest.  If anything fails, the objects already written are deleted and no
manifest exists, so no backup ever looks complete when it is not.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json
import socket
import time

from ansible_collections.dataprotection.databases.plugins.module_utils import engines, matrix
from ansible_collections.dataprotection.databases.plugins.module_utils.errors import ConfigError, DataProtectionError, EngineError, RepositoryError
from ansible_collections.dataprotection.databases.plugins.module_utils.locking import Lease
from ansible_collections.dataprotection.databases.plugins.module_utils.manifest import (
    backup_prefix,
    check_cluster,
    new_backup_id,
    write_manifest,
)
from ansible_collections.dataprotection.databases.plugins.module_utils.repoconfig import open_repository
from ansible_collections.dataprotection.databases.plugins.module_utils.timeutil import format_time, utcnow
from ansible_collections.dataprotection.databases.plugins.module_utils.transfer import check_compression, object_name, store_stream

IDENTITY_NAME = "cluster.json"


class BackupRequest(object):
    """What the caller asked for, validated."""

    def __init__(self, engine, method, cluster, connection=None, compression=None, compression_level=None, labels=None, options=None,
                 snapshot=None):
        self.engine = matrix.check_engine(engine)
        self.method = method
        self.declaration = matrix.check_method(engine, method, kind=("tool", "snapshot"))
        if self.declaration["kind"] == "snapshot":
            if not snapshot:
                raise ConfigError(
                    "method %s needs the option snapshot, naming the provider and what to snapshot" % method,
                    hint="For example snapshot: {provider: btrfs} for a data directory on btrfs, or {provider: aws_ebs, volume_ids: [...]}",
                )
        elif snapshot:
            raise ConfigError("the option snapshot belongs to method volume-snapshot, not %s" % method,
                              hint="Remove snapshot, or set method: volume-snapshot")
        self.snapshot = dict(snapshot or {})
        self.cluster = check_cluster(cluster)
        self.connection = dict(connection or {})
        # A snapshot backup's objects (a streamed copy, PostgreSQL's WAL) compress where the engine's row offers compression.
        compresses = "compression" in self.declaration["features"] or (
            self.declaration["kind"] == "snapshot" and matrix.features(engine)["compression"])
        if compression is None:
            compression = "zstd" if compresses else "none"
        if compression != "none" and not compresses:
            raise ConfigError(
                "method %s of engine %s does not offer compression in the support matrix" % (method, engine),
                hint="Set compression: none",
            )
        self.compression, self.compression_level = check_compression(compression, compression_level)
        self.labels = dict((str(k), str(v)) for k, v in (labels or {}).items())
        self.options = dict(options or {})
        # The open repository while the backup is planned and run (run_backup sets it): engines whose tool
        # writes into the repository itself check it in their plan.
        self.repository = None


class BackupContext(object):
    """Where an engine writes one backup's payload objects."""

    def __init__(self, repository, request, backup_id):
        self.repository = repository
        self.request = request
        self.backup_id = backup_id
        self.prefix = backup_prefix(request.cluster, backup_id)
        self.objects = []

    def store(self, base_name, source, compression=None):
        """Store a stream (file-like or iterable of bytes) as one object; return its record."""
        compression = compression or self.request.compression
        level = self.request.compression_level if compression == self.request.compression else None
        name = object_name(base_name, compression, self.repository.encrypted)
        record = store_stream(self.repository.repo, self.prefix + name, name, source, compression, level, self.repository.master_key)
        self.objects.append(record)
        return record

    def discard(self):
        """Delete whatever this backup wrote (no manifest was written)."""
        keys = [info.key for info in self.repository.repo.list(self.prefix)]
        self.repository.repo.delete_many(keys)


def identity_key(cluster):
    return "%s/%s" % (check_cluster(cluster), IDENTITY_NAME)


def check_identity(repo, cluster, engine, identity, write=True):
    """Make sure one cluster name never mixes two databases.

    ``identity`` is what identifies the database (PostgreSQL's system
    identifier, MySQL's server_uuid, ...).  The first writer records it.
    """
    key = identity_key(cluster)
    record = {"engine": engine, "identity": identity, "created_at": format_time(utcnow())}
    if repo.stat(key) is None:
        if not write:
            return None
        if repo.put_if_absent(key, json.dumps(record, sort_keys=True).encode("utf-8")):
            return record
    stored = json.loads(repo.get_bytes(key).decode("utf-8"))
    if stored.get("engine") != engine or str(stored.get("identity")) != str(identity):
        raise EngineError(
            "cluster %s in repository %s belongs to another database (%s %s), not this one (%s %s)"
            % (cluster, repo.location(), stored.get("engine"), stored.get("identity"), engine, identity),
            hint="Use another cluster name for this database; two databases must never share one backup and log history",
        )
    return stored


def allocate_backup_id(repo, cluster, method, wait=5.0):
    """``(backup_id, started)``: an id under which the repository holds nothing yet, and the time it names.

    Ids name the second a backup starts.  A second backup of one cluster and
    method within that second (the cluster's lease makes them one after the
    other) waits for the next second instead of writing into the first one's
    objects; so does one that finds leftovers of an interrupted backup under
    the id.  Call it while holding the cluster's lease.
    """
    deadline = time.monotonic() + wait
    while True:
        started = utcnow()
        backup_id = new_backup_id(cluster, method, started)
        if not any(True for dummy in repo.list(backup_prefix(cluster, backup_id))):
            return backup_id, started
        if time.monotonic() > deadline:
            raise RepositoryError(
                "backup id %s is taken in %s, and so was every id of the last %g seconds" % (backup_id, repo.location(), wait),
                hint="Check that this host's clock is not running behind the one that wrote those backups",
            )
        time.sleep(1.0 - started.microsecond / 1e6 + 0.01)


def summary(manifest, duration):
    """What the backup module returns of a committed backup."""
    return {
        "backup_id": manifest["backup_id"],
        "engine": manifest["engine"],
        "method": manifest["method"],
        "type": manifest["type"],
        "status": "completed",
        "start_time": manifest["start_time"],
        "end_time": manifest["end_time"],
        "size": manifest["size"],
        "stored_size": manifest["stored_size"],
        "duration_seconds": round(duration, 3),
        "throughput_mb_s": round(manifest["size"] / duration / 1e6, 2),
        "objects": [o["name"] for o in manifest["objects"]],
        "positions": manifest.get("positions", {}),
        "engine_version": manifest.get("engine_version"),
    }


def run_backup(spec, request, check_mode=False, lease_ttl=None):
    """Take one full backup.  Returns a result dict with ``backup`` (or ``plan`` in check mode)."""
    if request.declaration["kind"] == "snapshot":
        from ansible_collections.dataprotection.databases.plugins.module_utils import snapshot_backup  # pylint: disable=import-outside-toplevel

        return snapshot_backup.run_backup(spec, request, check_mode=check_mode, lease_ttl=lease_ttl)
    engine = engines.engine_module(request.engine)
    with open_repository(spec) as repository:
        request.repository = repository
        plan = engine.plan_backup(request)
        identity = plan.pop("identity", None)
        if identity is not None:
            check_identity(repository.repo, request.cluster, request.engine, identity, write=not check_mode)
        plan.update({
            "cluster": request.cluster,
            "engine": request.engine,
            "method": request.method,
            "compression": request.compression,
            "compression_level": request.compression_level,
            "encryption": "aes-256-gcm" if repository.encrypted else "none",
            "repository": repository.repo.location(),
        })
        if check_mode:
            plan["backup_id"] = new_backup_id(request.cluster, request.method, utcnow())
            return {"changed": True, "plan": plan}
        lease = Lease(repository.repo, request.cluster, "backup", ttl=lease_ttl or 6 * 3600)
        with lease:
            backup_id, started = allocate_backup_id(repository.repo, request.cluster, request.method)
            lease.purpose = "backup %s" % backup_id
            lease.renew()
            ctx = BackupContext(repository, request, backup_id)
            clock = time.monotonic()
            try:
                facts = engine.run_backup(request, ctx)
                ended = facts.pop("end_time", None) or utcnow()
                manifest = {
                    "backup_id": backup_id,
                    "cluster": request.cluster,
                    "engine": request.engine,
                    "method": request.method,
                    "type": request.declaration["type"],
                    "status": "completed",
                    "start_time": format_time(facts.pop("start_time", None) or started),
                    "end_time": format_time(ended),
                    "objects": ctx.objects,
                    "compression": request.compression,
                    "encryption": "aes-256-gcm" if repository.encrypted else "none",
                    "host": socket.gethostname(),
                    "labels": request.labels,
                    "snapshots": [],
                    "consistency": "application",
                    "identity": identity,
                }
                manifest.update(facts)
                write_manifest(repository.repo, manifest)
            except BaseException:
                try:
                    ctx.discard()
                except DataProtectionError:
                    pass
                raise
            duration = max(time.monotonic() - clock, 0.001)
        return {"changed": True, "backup": summary(manifest, duration), "manifest": manifest}
