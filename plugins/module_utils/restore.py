# -*- coding: utf-8 -*-
# Copyright: contributors to the dataprotection.databases collection
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Restores, engine-neutral: choose the base (by id or by time), plan, then lay down.

Everything that can refuse a restore (unknown backup, a time outside every
recoverable window, a non-empty target, a wrong key, a missing tool) is
checked before the target is touched.  Check mode returns the plan.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible_collections.dataprotection.databases.plugins.module_utils import catalog, engines, matrix
from ansible_collections.dataprotection.databases.plugins.module_utils.errors import ConfigError, ObjectNotFound, RepositoryError
from ansible_collections.dataprotection.databases.plugins.module_utils.manifest import check_cluster, read_manifest
from ansible_collections.dataprotection.databases.plugins.module_utils.repoconfig import open_repository
from ansible_collections.dataprotection.databases.plugins.module_utils.timeutil import format_time, parse_time, utcnow


class RestoreRequest(object):
    def __init__(self, engine, cluster, target, backup_id=None, restore_time=None, force=False, options=None, connection=None):
        self.engine = matrix.check_engine(engine)
        self.cluster = check_cluster(cluster)
        if bool(backup_id) == bool(restore_time):
            raise ConfigError("give exactly one of backup_id (restore a backup set) or restore_time (point-in-time restore)")
        self.backup_id = backup_id
        self.restore_time = None
        if restore_time:
            matrix.check_feature(engine, "pitr")
            self.restore_time = parse_time(restore_time, "restore_time")
            if self.restore_time > utcnow():
                raise ConfigError(
                    "restore_time %s is in the future" % format_time(self.restore_time),
                    hint="Give a time in the past, within a recoverable window (backup_info lists them)",
                )
        self.target = target
        self.force = force
        self.connection = dict(connection or {})
        self.options = dict(options or {})


def find_backup(repo, cluster, backup_id, engine):
    try:
        manifest = read_manifest(repo, cluster, backup_id)
    except ObjectNotFound:
        manifests, dummy = catalog.scan_cluster(repo, cluster)
        known = [m["backup_id"] for m in catalog.newest_first(manifests)][:10]
        raise RepositoryError(
            "backup %s of cluster %s is not in repository %s" % (backup_id, cluster, repo.location()),
            hint="Backups of %s: %s" % (cluster, ", ".join(known) or "none"),
        )
    if manifest["engine"] != engine:
        raise ConfigError("backup %s is a %s backup, not %s" % (backup_id, manifest["engine"], engine))
    return manifest


def run_restore(spec, request, check_mode=False):
    engine = engines.require(request.engine)
    with open_repository(spec) as repository:
        repo = repository.repo
        if request.backup_id:
            manifest = find_backup(repo, request.cluster, request.backup_id, request.engine)
            logs = None
        else:
            manifests, dummy = catalog.scan_cluster(repo, request.cluster)
            manifest, logs = engine.plan_pitr(repo, request.cluster, manifests, request.restore_time)
        result = _restore(engine, repository, manifest, request, logs, check_mode)
    result["plan"].setdefault("backup_id", manifest["backup_id"])
    if "restored" in result:
        result["restored"].setdefault("backup_id", manifest["backup_id"])
    if request.restore_time is not None:
        for part in ("plan", "restored"):
            if part in result:
                result[part]["restore_time"] = format_time(request.restore_time)
    return result


def _restore(engine, repository, manifest, request, logs, check_mode):
    """The plan, and unless in check mode the restore, of one base backup."""
    if manifest.get("type") == "snapshot":
        from ansible_collections.dataprotection.databases.plugins.module_utils import snapshot_backup  # pylint: disable=import-outside-toplevel

        return snapshot_backup.run_restore(repository, manifest, request, logs, check_mode=check_mode)
    # A backup restored through the server's own API (a dump, a vector database's snapshot) goes to O(connection), not a directory.
    into_server = getattr(engine, "restores_into_server", lambda manifest: False)(manifest)
    if not request.target and not into_server:
        raise ConfigError("data_dir is required to restore backup %s" % manifest["backup_id"], hint="Set data_dir to the directory to restore into")
    plan = engine.plan_restore(repository, manifest, request, logs)
    if check_mode:
        return {"changed": True, "plan": plan}
    return {"changed": True, "plan": plan, "restored": engine.restore(repository, manifest, request, logs)}
