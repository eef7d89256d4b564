# -*- coding: utf-8 -*-
# Copyright: contributors to the dataprotection.databases collection
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Volume-snapshot backups and their restores, engine-neutral.

A backup with ``method: volume-snapshot``:

1. plans without changing anything: the engine reads the server (its data
   directory, its identity, the privileges the quiesce needs), the provider
   checks that it can snapshot what ``snapshot`` names (for a local provider,
   that the data directory lies on the volume); check mode stops here;
2. takes the cluster's writer lease, then quiesces the database through the
   engine's hook (PostgreSQL ``pg_backup_start``, MySQL ``FLUSH TABLES WITH
   READ LOCK``, Redis ``BGSAVE``, Prometheus a TSDB snapshot) and has the
   provider take the snapshots; the quiesce is released as soon as the
   provider says the snapshots' point in time is fixed (before a cloud has
   finished copying them), and on every failure path;
3. lets the engine record what the consistent point needs (PostgreSQL: the
   ``backup_label`` and the WAL from the backup's start to its stop, stored as
   objects, so the snapshot restores without a WAL archive);
4. for a local provider with ``stream: true``, streams the snapshot's files
   into the repository as one tar object (and with ``keep: false`` deletes the
   snapshot afterwards);
5. writes the manifest last (``type: snapshot``, the provider's records under
   ``snapshots``).  A failure anywhere deletes the snapshots this run made and
   the objects it wrote: nothing half-made stays under a name that looks
   complete.

A restore of such a backup takes the files from the snapshot (a local
provider makes a new subvolume or volume at ``data_dir``; a remote one new
volumes or PersistentVolumeClaims), from the repository (a streamed copy), or
finds them already in place (``source: mounted``: a restored volume the user
has mounted at ``data_dir``); the engine then finishes the data directory
(PostgreSQL: ``backup_label``, the WAL, recovery settings) and can start it.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import socket
import time

from ansible_collections.dataprotection.databases.plugins.module_utils import engines, hostfiles, snapshots, tools
from ansible_collections.dataprotection.databases.plugins.module_utils.errors import ConfigError, DataProtectionError, EngineError
from ansible_collections.dataprotection.databases.plugins.module_utils.locking import Lease
from ansible_collections.dataprotection.databases.plugins.module_utils.manifest import FILES_OBJECT, new_backup_id, streamed_object, write_manifest
from ansible_collections.dataprotection.databases.plugins.module_utils.repoconfig import open_repository
from ansible_collections.dataprotection.databases.plugins.module_utils.timeutil import format_time, utcnow

# Keys of the ``snapshot`` option read here; the rest belong to the provider.
CORE_KEYS = ("provider", "stream", "keep")
SOURCES = ("auto", "snapshot", "repository", "mounted")


def check_spec(spec, what="snapshot"):
    """The ``snapshot`` option: a dict naming an implemented provider; returns (provider module, spec)."""
    if not isinstance(spec, dict) or not spec.get("provider"):
        raise ConfigError(
            "method volume-snapshot needs the option %s with a provider" % what,
            hint="Set %s.provider to one of %s, with that provider's keys" % (what, ", ".join(snapshots.NAMES)),
        )
    return snapshots.provider(spec["provider"]), dict(spec)


def _bool(spec, key, default):
    value = spec.get(key)
    if value is None:
        return default
    if isinstance(value, bool):
        return value
    if str(value).lower() in ("true", "yes", "on", "1"):
        return True
    if str(value).lower() in ("false", "no", "off", "0"):
        return False
    raise ConfigError("snapshot.%s must be a boolean, got %r" % (key, value))


def stream_settings(provider, spec):
    """(stream, keep) of a backup: streaming only from local providers; not keeping only what was streamed."""
    local = getattr(provider, "LOCAL", False)
    stream = _bool(spec, "stream", False)
    keep = _bool(spec, "keep", True)
    if stream and not local:
        raise ConfigError(
            "snapshot.stream is only possible with a provider of this host's volumes (btrfs, lvm), not %s" % spec["provider"],
            hint="Remove snapshot.stream, or take a backup with the engine's tool method to have the data in the repository",
        )
    if not keep and not stream:
        raise ConfigError(
            "snapshot.keep: false without snapshot.stream: true would delete the only copy",
            hint="Set snapshot.stream: true to copy the snapshot's files into the repository first, or keep the snapshot",
        )
    return stream, keep


def _engine(request):
    module = engines.engine_module(request.engine)
    if module is None or not hasattr(module, "quiesce"):
        raise DataProtectionError("engine %s has no volume-snapshot hooks" % request.engine)
    return module


def plan(repository, request):
    """Engine and provider plans; nothing changes.  Returns (engine plan, provider module, provider plan, stream, keep)."""
    provider, spec = check_spec(request.snapshot)
    stream, keep = stream_settings(provider, spec)
    engine = _engine(request)
    if hasattr(provider, "check_labels"):
        provider.check_labels(request.labels)
    engine_plan = engine.plan_snapshot(request, local=getattr(provider, "LOCAL", False))
    provider_plan = provider.plan(spec, data_dir=engine_plan.get("data_dir") if getattr(provider, "LOCAL", False) else None)
    return engine_plan, provider, provider_plan, stream, keep


def _plan_summary(request, repository, engine_plan, provider_plan, stream, keep):
    shown = dict((k, v) for k, v in engine_plan.items() if k != "identity")
    shown.update({
        "cluster": request.cluster,
        "engine": request.engine,
        "method": request.method,
        "provider": provider_plan.get("provider"),
        "snapshot": dict((k, v) for k, v in provider_plan.items() if not k.startswith("credentials_ref")),
        "stream": stream,
        "keep_snapshot": keep,
        "compression": request.compression if stream or engine_plan.get("objects") else "none",
        "encryption": "aes-256-gcm" if repository.encrypted else "none",
        "repository": repository.repo.location(),
    })
    return shown


def _delete_quietly(records):
    """Delete snapshots after a failure; return {id: problem} of those that stay."""
    left = {}
    for record in records:
        try:
            snapshots.delete_record(record)
        except Exception as exc:  # pylint: disable=broad-except
            left[str(record.get("id"))] = getattr(exc, "message", None) or str(exc)
    return left


def _with_leftovers(exc, left):
    if not left or not isinstance(exc, DataProtectionError):
        return exc
    exc.message = "%s; the snapshots %s could not be deleted either: %s" % (
        exc.message, ", ".join(sorted(left)), "; ".join("%s: %s" % item for item in sorted(left.items())))
    exc.hint = "Delete those snapshots by hand: no backup refers to them"
    exc.details["snapshots_left"] = sorted(left)
    return exc


def stream_files(provider, record, ctx):
    """Store the data directory inside a local snapshot as one tar object."""
    tar = tools.find_tool("tar", package="tar")
    with provider.mounted(record) as tree:
        argv = [tar, "--create", "--file=-", "--blocking-factor=2048", "--directory=%s" % tree, "--numeric-owner", "--one-file-system", "."]
        with tools.StreamingTool(argv, what="tar") as proc:
            stored = ctx.store(FILES_OBJECT, proc.stdout)
            proc.finish()
    return stored


def run_backup(spec, request, check_mode=False, lease_ttl=None):
    """Take one volume-snapshot backup.  Returns a result dict with ``backup`` (or ``plan`` in check mode)."""
    from ansible_collections.dataprotection.databases.plugins.module_utils.backup import (  # pylint: disable=import-outside-toplevel
        BackupContext,
        allocate_backup_id,
        check_identity,
        summary,
    )

    with open_repository(spec) as repository:
        engine_plan, provider, provider_plan, stream, keep = plan(repository, request)
        identity = engine_plan.get("identity")
        if identity is not None:
            check_identity(repository.repo, request.cluster, request.engine, identity, write=not check_mode)
        shown = _plan_summary(request, repository, engine_plan, provider_plan, stream, keep)
        if check_mode:
            shown["backup_id"] = new_backup_id(request.cluster, request.method, utcnow())
            return {"changed": True, "plan": shown}
        engine = _engine(request)
        lease = Lease(repository.repo, request.cluster, "backup", ttl=lease_ttl or 6 * 3600)
        with lease:
            backup_id, started = allocate_backup_id(repository.repo, request.cluster, request.method)
            lease.purpose = "backup %s" % backup_id
            lease.renew()
            ctx = BackupContext(repository, request, backup_id)
            request.backup_id = backup_id  # the label of the engine's backup mode
            clock = time.monotonic()
            records = []
            try:
                quiesce = engine.quiesce(request, engine_plan)
                with quiesce:
                    records = provider.create(provider_plan, backup_id, labels=request.labels, taken=quiesce.release)
                    quiesce.release()
                facts = engine.snapshot_facts(request, ctx, quiesce)
                if stream:
                    stream_files(provider, records[0], ctx)
                    if not keep:
                        for record in records:
                            snapshots.delete_record(record)
                        records = []
                manifest = {
                    "backup_id": backup_id,
                    "cluster": request.cluster,
                    "engine": request.engine,
                    "method": request.method,
                    "type": "snapshot",
                    "status": "completed",
                    "start_time": format_time(facts.pop("start_time", None) or started),
                    "end_time": format_time(facts.pop("end_time", None) or utcnow()),
                    "objects": ctx.objects,
                    "compression": request.compression,
                    "encryption": "aes-256-gcm" if repository.encrypted else "none",
                    "host": socket.gethostname(),
                    "labels": request.labels,
                    "snapshots": records,
                    "snapshot_provider": provider_plan.get("provider"),
                    "consistency": quiesce.consistency,
                    "quiesce_seconds": quiesce.held_seconds,
                    "identity": identity,
                }
                manifest.update(facts)
                write_manifest(repository.repo, manifest)
            except BaseException as exc:
                left = _delete_quietly(records)
                try:
                    ctx.discard()
                except DataProtectionError:
                    pass
                raise _with_leftovers(exc, left)
            duration = max(time.monotonic() - clock, 0.001)
        result = summary(manifest, duration)
        result.update({
            "snapshots": [dict((k, v) for k, v in r.items() if k in ("provider", "id", "source", "created")) for r in records],
            "consistency": manifest["consistency"],
            "quiesce_seconds": manifest["quiesce_seconds"],
            "streamed": bool(stream),
        })
        notes = list(provider_plan.get("warnings") or ()) + list(engine_plan.get("warnings") or ())
        out = {"changed": True, "backup": result, "manifest": manifest}
        if notes:
            out["warnings"] = notes
        return out


# Restore ------------------------------------------------------------------


def _split_target(provider, given):
    """The restore ``snapshot`` option: the provider's connection options apart from the target's own keys."""
    given = dict(given or {})
    option_keys = tuple(getattr(provider, "OPTION_KEYS", ()))
    options = dict((k, v) for k, v in given.items() if k in option_keys and v is not None)
    target = dict((k, v) for k, v in given.items() if k not in option_keys and k not in CORE_KEYS)
    return target, options


def choose_source(manifest, source):
    """Where the files come from: ``snapshot``, ``repository`` or ``mounted``; refuses what the backup cannot give."""
    source = source or "auto"
    if source not in SOURCES:
        raise ConfigError("source must be one of %s, got %r" % (", ".join(SOURCES), source))
    records = manifest.get("snapshots") or []
    streamed = streamed_object(manifest)
    if source == "mounted":
        return source
    if source == "repository" or (source == "auto" and not records):
        if not streamed:
            raise ConfigError(
                "backup %s has no copy of its files in the repository (it was not streamed)" % manifest["backup_id"],
                hint="Restore it from its snapshot (source: snapshot)" if records else "Its snapshots are gone: restore another backup",
            )
        return "repository"
    if not records:
        raise ConfigError("backup %s holds no snapshot any more (it was streamed and not kept)" % manifest["backup_id"],
                          hint="Restore it from the repository: source: repository")
    if source == "auto" and streamed:
        provider = snapshots.provider(records[0]["provider"])
        if getattr(provider, "LOCAL", False) and not all(provider.exists(r) for r in records):
            return "repository"
    return "snapshot"


def run_restore(repository, manifest, request, logs=None, check_mode=False):
    """Restore a snapshot backup; ``logs`` are the log files a point-in-time restore replays."""
    engine = _engine(request)
    source = choose_source(manifest, request.options.get("source"))
    records = manifest.get("snapshots") or []
    plan = {
        "backup_id": manifest["backup_id"],
        "base_end_time": manifest["end_time"],
        "source": source,
        "consistency": manifest.get("consistency"),
        "recovery": "point-in-time" if logs is not None else "end of backup",
    }
    if source == "snapshot":
        provider = snapshots.provider(records[0]["provider"])
        if not getattr(provider, "LOCAL", False):
            return _restore_remote(provider, engine, manifest, request, records, logs, plan, check_mode)
    data_dir = request.target
    if not data_dir:
        raise ConfigError("restoring backup %s from %s needs data_dir" % (manifest["backup_id"], source))
    plan.update(engine.plan_snapshot_restore(repository, manifest, request, logs, data_dir, mounted=source == "mounted"))
    target = data_dir
    if source == "snapshot":
        if len(records) != 1:
            raise ConfigError("backup %s has %d snapshots; a local restore takes one" % (manifest["backup_id"], len(records)))
        target = _local_target(provider, request, data_dir)
        plan["snapshot"] = provider.restore(records[0], target, check_mode=True, force=request.force)
    if check_mode:
        return {"changed": True, "plan": plan}
    if source == "repository":
        with hostfiles.Target(data_dir):
            record = streamed_object(manifest)
            tar = tools.find_tool("tar", package="tar")
            hostfiles.feed_object(repository, manifest, record, [tar, "-x", "-f", "-", "-C", data_dir, "--numeric-owner"], "tar")
            restored = engine.finish_snapshot_restore(repository, manifest, request, logs, data_dir)
        restored["from"] = "repository"
    elif source == "mounted":
        restored = engine.finish_snapshot_restore(repository, manifest, request, logs, data_dir)
        restored["from"] = "mounted volume"
    else:
        made = provider.restore(records[0], target, force=request.force)
        data_dir = made.get("data_dir") or data_dir
        try:
            restored = engine.finish_snapshot_restore(repository, manifest, request, logs, data_dir)
        except BaseException:
            problem = provider.remove_restored(made)
            if problem:
                raise EngineError("the restore failed and the restored copy %s could not be removed: %s" % (made.get("path"), problem),
                                  hint="Remove it by hand before using the target")
            raise
        restored["from"] = "snapshot %s" % records[0].get("id")
        restored["snapshot"] = made
    return {"changed": True, "plan": plan, "restored": restored}


def _local_target(provider, request, data_dir):
    """What a local provider restores to: ``data_dir`` itself (btrfs: the new subvolume), or, for a provider with target
    options (``TARGET_KEYS``; lvm: the new volume), those options with the volume mounted at ``data_dir``."""
    given = dict(request.options.get("snapshot") or {})
    keys = tuple(getattr(provider, "TARGET_KEYS", ()))
    unused = sorted(k for k in given if k not in keys)
    if unused:
        raise ConfigError("a %s restore does not use the snapshot options %s" % (provider.PROVIDER, ", ".join(unused)),
                          hint="Remove them; %s" % ("it takes %s" % ", ".join(keys) if keys else "the new copy is made at data_dir"))
    if not keys:
        return data_dir
    given["mount_point"] = given.get("mount_point") or data_dir
    return given


def _restore_remote(provider, engine, manifest, request, records, logs, plan, check_mode):
    """New volumes from every snapshot of the backup; the data directory is finished later (source: mounted)."""
    target, options = _split_target(provider, request.options.get("snapshot"))
    plan["volumes"] = [provider.restore(record, target, check_mode=True, **options) for record in records]
    plan["next"] = engine.remote_restore_next(manifest, logs)
    if check_mode:
        return {"changed": True, "plan": plan}
    made = []
    try:
        for record in records:
            made.append(provider.restore(record, target, **options))
    except BaseException as exc:
        left = {}
        for result in made:
            problem = provider.remove_restored(result, **options)
            if problem:
                left[str(result)] = problem
        if left and isinstance(exc, DataProtectionError):
            exc.message = "%s; volumes made before the failure could not be removed: %s" % (exc.message, "; ".join(left.values()))
        raise
    restored = {"from": "snapshots", "volumes": made, "next": plan["next"]}
    return {"changed": True, "plan": plan, "restored": restored}
