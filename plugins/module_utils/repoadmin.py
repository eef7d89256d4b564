# -*- coding: utf-8 -*-
# Copyright: contributors to the dataprotection.databases collection
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Create, check, describe and remove repositories (the core of backup_repo and backup_info)."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import uuid

from ansible_collections.dataprotection.databases.plugins.module_utils import catalog, crypto, engines, matrix
from ansible_collections.dataprotection.databases.plugins.module_utils.errors import (
    BucketMissing,
    ConfigError,
    DataProtectionError,
    KeyRequired,
    NotARepository,
)
from ansible_collections.dataprotection.databases.plugins.module_utils.manifest import MANIFEST_NAME, check_cluster
from ansible_collections.dataprotection.databases.plugins.module_utils.repoconfig import (
    CONFIG_KEY,
    Repository,
    new_config,
    open_repository,
    public_config,
    read_config,
    write_config,
)
from ansible_collections.dataprotection.databases.plugins.module_utils.repository import open_repo, timed

PROBE_PREFIX = ".probe-"


def _check(name, fn):
    try:
        dummy, latency = timed(fn)
    except DataProtectionError as exc:
        return {"name": name, "ok": False, "latency_ms": None, "msg": str(exc), "error": exc}
    return {"name": name, "ok": True, "latency_ms": latency, "msg": "ok"}


def precheck(repo, write=True):
    """Probe the repository like KubeBlocks' BackupRepo pre-check.

    With ``write`` the probe writes, reads back, lists and deletes an object;
    without it only reads (check mode).  Returns the list of checks; a check
    after a failed one is reported as skipped.
    """
    key = PROBE_PREFIX + uuid.uuid4().hex
    payload = ("dataprotection.databases probe " + key).encode("ascii")

    def read_back():
        if repo.get_bytes(key) != payload:
            raise NotARepository("the probe object read back from %s differs from what was written" % repo.location(),
                                 hint="The storage returns other bytes than it stored; check the endpoint or proxy in between")

    def listed():
        if key not in [info.key for info in repo.list(PROBE_PREFIX)]:
            raise NotARepository("the probe object written to %s does not appear in a listing" % repo.location(),
                                 hint="The storage does not list what it stores (eventual consistency or a listing permission); check s3:ListBucket")

    def deleted():
        repo.delete(key)
        if repo.stat(key) is not None:
            raise NotARepository("the probe object in %s is still there after a delete" % repo.location(),
                                 hint="Grant the delete permission (s3:DeleteObject) for the repository prefix")

    if write:
        steps = [("write", lambda: repo.put_bytes(key, payload)), ("read", read_back), ("list", listed), ("delete", deleted)]
    else:
        steps = [("list", lambda: list(repo.list(CONFIG_KEY)))]
    checks = []
    failed = False
    for name, fn in steps:
        if failed:
            checks.append({"name": name, "ok": False, "latency_ms": None, "msg": "skipped: an earlier check failed"})
            continue
        result = _check(name, fn)
        checks.append(result)
        failed = not result["ok"]
    if failed and write:
        try:
            repo.delete(key)
        except DataProtectionError:
            pass
    return checks


def first_failure(checks):
    for check in checks:
        if not check["ok"] and "error" in check:
            return check["error"]
    return None


def public_checks(checks):
    return [dict((k, v) for k, v in c.items() if k != "error") for c in checks]


def _ownership(repo, owner, group):
    """(uid, gid) wanted for a local repository's root, or None when not asked."""
    if not owner and not group:
        return None
    if repo.type != "local":
        raise ConfigError("owner and group apply to local repositories only", hint="Remove owner/group for repo.type %s" % repo.type)
    import grp  # pylint: disable=import-outside-toplevel
    import pwd  # pylint: disable=import-outside-toplevel

    try:
        entry = pwd.getpwnam(owner) if owner else None
        gid = grp.getgrnam(group).gr_gid if group else (entry.pw_gid if entry else -1)
    except KeyError as exc:
        raise ConfigError("unknown user or group %s" % exc, hint="Create it first, or name an existing one")
    return (entry.pw_uid if entry else -1, gid)


def _owner_differs(repo, wanted):
    import os  # pylint: disable=import-outside-toplevel

    st = os.stat(repo.root)
    return (wanted[0] != -1 and st.st_uid != wanted[0]) or (wanted[1] != -1 and st.st_gid != wanted[1])


def _chown_repository(repo, wanted):
    """Give the whole local repository to its owner (what the database server's processes need)."""
    import os  # pylint: disable=import-outside-toplevel

    for dirpath, dirnames, filenames in os.walk(repo.root):
        for name in [dirpath] + [os.path.join(dirpath, n) for n in dirnames + filenames]:
            os.lchown(name, wanted[0], wanted[1])


def ensure_present(spec, create_bucket=False, run_checks=True, check_mode=False, force=False, owner=None, group=None):
    """Create the repository if needed and check it.  Returns a result dict.

    Raises DataProtectionError (with ``checks`` in its details) when the
    repository cannot be used; a new repository is then not written.
    """
    repo = open_repo(spec)
    plan = []
    result = {"changed": False, "created": False, "repo": repo.describe(), "location": repo.location(), "plan": plan, "checks": []}
    try:
        wanted = _ownership(repo, owner, group)
        exists = repo.location_exists()
        created_location = False
        if not exists:
            if repo.type == "s3" and not create_bucket:
                raise BucketMissing(
                    "bucket %s does not exist" % spec.get("bucket"),
                    hint="Create the bucket, or set create_bucket: true to let the module create it",
                )
            plan.append("create bucket %s" % spec.get("bucket") if repo.type == "s3" else "create directory %s" % repo.location())
            if not check_mode:
                repo.create_location()
                created_location = True
                if wanted is not None:
                    _chown_repository(repo, wanted)
        config = read_config(repo) if (exists or created_location) else None
        if config is not None:
            crypto.unlock(config.get("encryption"), spec.get("encryption_key"), repo.location())
            result["format"] = public_config(config)
            if wanted is not None and _owner_differs(repo, wanted):
                plan.append("change the owner of %s" % repo.location())
                result["changed"] = True
                if not check_mode:
                    _chown_repository(repo, wanted)
            if run_checks:
                result["checks"] = precheck(repo, write=not check_mode)
            _raise_on_failure(result)
            return result
        if exists and wanted is not None and _owner_differs(repo, wanted):
            plan.append("change the owner of %s" % repo.location())
            if not check_mode:
                _chown_repository(repo, wanted)
        if exists and not force:
            foreign = next(iter(repo.list("")), None)
            if foreign is not None:
                raise NotARepository(
                    "%s is not empty (it holds %s) and is not a repository" % (repo.location(), foreign.key),
                    hint="Choose an empty repo.path or repo.prefix, or set force: true to create the repository beside what is there",
                )
        plan.append("write %s (format version 1%s)" % (CONFIG_KEY, ", encrypted" if spec.get("encryption_key") else ""))
        result["changed"] = True
        if check_mode:
            result["checks"] = precheck(repo, write=False) if (run_checks and exists) else []
            _raise_on_failure(result)
            return result
        if run_checks:
            result["checks"] = precheck(repo, write=True)
            if first_failure(result["checks"]) is not None and created_location and repo.type == "local":
                repo.remove_root_if_empty()
            _raise_on_failure(result)
        config, dummy = new_config(spec.get("encryption_key"))
        write_config(repo, config)
        result["created"] = True
        result["format"] = public_config(config)
        return result
    finally:
        repo.close()


def _raise_on_failure(result):
    error = first_failure(result["checks"])
    if error is not None:
        error.details["checks"] = public_checks(result["checks"])
        raise error
    result["checks"] = public_checks(result["checks"])


def ensure_absent(spec, force=False, check_mode=False):
    """Remove the repository.  Refuses while it holds backups unless ``force``."""
    repo = open_repo(spec)
    result = {"changed": False, "repo": repo.describe(), "location": repo.location(), "plan": []}
    try:
        if not repo.location_exists():
            return result
        config = read_config(repo)
        if config is None:
            result["msg"] = "no repository at %s; nothing removed" % repo.location()
            return result
        objects = list(repo.list(""))
        manifests = [o for o in objects if o.key.endswith("/" + MANIFEST_NAME) and "/backups/" in o.key]
        result["removed"] = {"objects": len(objects), "bytes": sum(o.size for o in objects), "backups": len(manifests)}
        if manifests and not force:
            clusters = sorted(set(o.key.split("/", 1)[0] for o in manifests))
            raise ConfigError(
                "repository %s still holds %d backups (clusters: %s)" % (repo.location(), len(manifests), ", ".join(clusters)),
                hint="Set force: true to delete the repository with every backup in it; nothing was removed",
            )
        result["plan"] = ["delete %d objects (%d bytes, %d backups) and %s" % (len(objects) - 1, result["removed"]["bytes"], len(manifests), CONFIG_KEY)]
        result["changed"] = True
        if check_mode:
            return result
        # Manifests first: no backup may look complete while its payload goes.
        # dataprotection.json last: an interrupted removal can be run again.
        manifest_keys = set(o.key for o in manifests)
        repo.delete_many(sorted(manifest_keys))
        repo.delete_many([o.key for o in objects if o.key != CONFIG_KEY and o.key not in manifest_keys])
        repo.delete(CONFIG_KEY)
        if repo.type == "local":
            repo.remove_root_if_empty()
        return result
    finally:
        repo.close()


def repository_info(spec, cluster=None, filters=None, verify=False):
    """List backups, clusters with their windows and, with ``verify``, check every stored byte."""
    filters = filters or {}
    if cluster is not None:
        check_cluster(cluster)
    repo = open_repo(spec)
    try:
        config = read_config(repo)
        if config is None:
            # Fail with the same message as every other module.
            open_repository(spec, repo=repo)
        master = None
        if config.get("encryption") and (verify or spec.get("encryption_key")):
            if verify and not spec.get("encryption_key"):
                raise KeyRequired(
                    "verify: true needs repo.encryption_key: repository %s is encrypted" % repo.location(),
                    hint="Set repo.encryption_key to the repository's passphrase",
                )
            master = crypto.unlock(config["encryption"], spec.get("encryption_key"), repo.location())
        elif spec.get("encryption_key") and not config.get("encryption"):
            crypto.unlock(None, spec.get("encryption_key"), repo.location())
        repository = Repository(repo, config, master)
        clusters = [cluster] if cluster else catalog.list_clusters(repo)
        backups, cluster_rows, problems = [], [], []
        checked = {"backups": 0, "objects": 0, "bytes": 0}
        for name in clusters:
            manifests, incomplete = catalog.scan_cluster(repo, name)
            found_windows = []
            for engine in sorted(set(m["engine"] for m in manifests)):
                found_windows.extend(engines.windows(engine, repo, name, manifests))
            selected = [m for m in catalog.newest_first(manifests) if catalog.matches(m, **filters)]
            for manifest in selected:
                if verify:
                    count, size, found = catalog.verify_backup(repo, manifest, repository.master_key)
                    checked["backups"] += 1
                    checked["objects"] += count
                    checked["bytes"] += size
                    problems.extend(found)
                backups.append(catalog.summarize(manifest))
            newest = catalog.newest_first(manifests)
            cluster_rows.append({
                "name": name,
                "backups": len(manifests),
                "engines": sorted(set(m["engine"] for m in manifests)),
                "latest_backup": newest[0]["backup_id"] if newest else None,
                "windows": found_windows,
                "incomplete": incomplete,
            })
        backups.sort(key=lambda b: (b["end_time"], b["backup_id"]), reverse=True)
        result = {
            "changed": False,
            "repo": repo.describe(),
            "format": public_config(config),
            "backups": backups,
            "clusters": cluster_rows,
            "support_matrix": matrix.support_matrix(),
        }
        if verify:
            result["verification"] = dict(checked, ok=not problems, problems=problems)
        return result
    finally:
        repo.close()
