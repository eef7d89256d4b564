# -*- coding: utf-8 -*-
# Copyright: contributors to the dataprotection.databases collection
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Snapshot provider ``btrfs``: read-only snapshots of the btrfs subvolume that holds a data directory.

Plan
    ``subvolume`` (the ``snapshot`` option's key) names the subvolume to
    snapshot; without it, the subvolume that contains ``data_dir`` is used.
    ``snapshot_dir`` is where the snapshots go, by default
    ``.dataprotection-snapshots`` next to the subvolume.  The plan refuses a
    path that is not on btrfs, a ``subvolume`` that is not a subvolume's root,
    a ``data_dir`` outside the subvolume, and a ``data_dir`` in or holding a
    nested subvolume or another mount: a snapshot holds one subvolume only,
    nested ones appear in it as empty directories.  ``snapshot_dir`` (or its
    nearest existing parent) must be on the same btrfs file system, since a
    snapshot cannot cross file systems, and not inside ``data_dir``.

Create
    ``btrfs subvolume snapshot -r <subvolume> <snapshot_dir>/<backup_id>``.
    The record keeps the snapshot's subvolume UUID: ``delete`` removes only a
    read-only subvolume with that UUID, never something else that has come
    to lie at the path.

Restore
    ``btrfs subvolume snapshot <snapshot> <target>``: an instant, writable
    subvolume on the same file system.  The target must not exist or be an
    empty directory; with ``force`` a writable subvolume there is deleted
    first.  A non-empty plain directory is refused even with ``force`` (it
    cannot be swapped for a subvolume in one step), as are read-only
    subvolumes (another backup's snapshot), mount points and symbolic links.
    Whether a server still uses the target is for the caller to check.

The file system's UUID is read with the BTRFS_IOC_FS_INFO ioctl, which also
tells whether a path is on btrfs at all; everything else goes through the
``btrfs`` tool.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import contextlib
import errno
import os
import re
import uuid

from ansible_collections.dataprotection.databases.plugins.module_utils import hostfiles, tools
from ansible_collections.dataprotection.databases.plugins.module_utils.errors import ConfigError, EngineError, ToolError
from ansible_collections.dataprotection.databases.plugins.module_utils.timeutil import format_time, utcnow

PROVIDER = "btrfs"
LOCAL = True
SNAPSHOT_DIR_NAME = ".dataprotection-snapshots"
SUBVOLUME_ROOT_INODE = 256  # BTRFS_FIRST_FREE_OBJECTID: the root directory of every subvolume
FS_INFO_IOCTL = 0x8400941F  # _IOR(0x94, 31, struct btrfs_ioctl_fs_info_args), 1024 bytes
FS_INFO_SIZE = 1024
FS_INFO_FSID = slice(16, 32)
TOOL_TIMEOUT = 120
SNAPSHOT_TIMEOUT = 600
_BACKUP_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
_SHOW_LINE = re.compile(r"^\s+([A-Za-z][A-Za-z ()]*?):\s*(.*?)\s*$")


def _btrfs():
    return tools.find_tool("btrfs", package="btrfs-progs")


def _run(args, timeout=TOOL_TIMEOUT):
    return tools.run([_btrfs()] + list(args), timeout=timeout, what="btrfs %s" % " ".join(args[:2]))


def filesystem_uuid(path):
    """The UUID of the btrfs file system holding ``path``, or None when ``path`` is not on btrfs."""
    import fcntl  # pylint: disable=import-outside-toplevel

    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOFOLLOW)
    except OSError as exc:
        raise ConfigError("cannot open %s: %s" % (path, exc.strerror or exc))
    try:
        args = bytearray(FS_INFO_SIZE)
        fcntl.ioctl(fd, FS_INFO_IOCTL, args, True)
    except OSError:
        return None
    finally:
        os.close(fd)
    return str(uuid.UUID(bytes=bytes(args[FS_INFO_FSID])))


def _unescape(field):
    return re.sub(r"\\([0-7]{3})", lambda match: chr(int(match.group(1), 8)), field)


def mount_of(path):
    """(mount point, file system type) of the mount holding the real path ``path``; ("?", "unknown") when unknown."""
    best = ("?", "unknown")
    try:
        with open("/proc/self/mountinfo") as handle:
            lines = handle.readlines()
    except (IOError, OSError):
        return best
    for line in lines:
        fields = line.split()
        if "-" not in fields[6:]:
            continue
        point = _unescape(fields[4])
        fstype = fields[fields.index("-", 6) + 1]
        if path == point or path.startswith(point.rstrip("/") + "/"):
            # The longest mount point wins; of equal ones the later (mounted over the earlier).
            if best[0] == "?" or len(point) >= len(best[0]):
                best = (point, fstype)
    return best


def _describe_fs(path):
    point, fstype = mount_of(path)
    if point == "?":
        return "an unknown file system"
    return "a %s file system (mounted at %s)" % (fstype, point)


def _nearest_existing(path):
    while not os.path.lexists(path):
        path = os.path.dirname(path)
    return path


def _within(path, top):
    return path == top or path.startswith(top.rstrip("/") + "/")


def _absolute(value, name):
    if not isinstance(value, str) or not os.path.isabs(value):
        raise ConfigError("%s must be an absolute path, got %r" % (name, value), hint="Give %s as an absolute path" % name)
    return os.path.realpath(value)


def subvolume_show(path, timeout=TOOL_TIMEOUT):
    """``btrfs subvolume show`` as a dict (``UUID``, ``Flags``, ``Subvolume ID``, ...)."""
    out, _err = _run(["subvolume", "show", path], timeout=timeout)
    info = {}
    for line in out.splitlines()[1:]:
        match = _SHOW_LINE.match(line)
        if match and match.group(1) not in info:
            info[match.group(1)] = match.group(2)
    if not info.get("UUID") or info["UUID"] == "-":
        raise ToolError("btrfs subvolume show %s printed no UUID" % path)
    return info


def _containing_subvolume(data_dir):
    """The root of the subvolume that holds ``data_dir`` (a real path)."""
    dev = os.stat(data_dir).st_dev
    current = data_dir
    while True:
        if os.lstat(current).st_ino == SUBVOLUME_ROOT_INODE:
            return current
        parent = os.path.dirname(current)
        if parent == current or os.lstat(parent).st_dev != dev:
            break
        current = parent
    raise ConfigError(
        "cannot tell which btrfs subvolume holds data_dir %s: %s is the top of its mount but not a subvolume's root" % (data_dir, current),
        hint="Set snapshot.subvolume to the path of the subvolume that holds data_dir",
    )


def _foreign_below(top, dev):
    """The first directory below ``top`` on another device (a nested subvolume, a mount), or None."""
    pending = [top]
    while pending:
        current = pending.pop()
        with os.scandir(current) as entries:
            for entry in sorted(entries, key=lambda item: item.name, reverse=True):
                if entry.is_dir(follow_symlinks=False):
                    if entry.stat(follow_symlinks=False).st_dev != dev:
                        return entry.path
                    pending.append(entry.path)
    return None


def _foreign_message(path, fs_uuid):
    if filesystem_uuid(path) == fs_uuid and os.lstat(path).st_ino == SUBVOLUME_ROOT_INODE:
        return "%s is a nested btrfs subvolume" % path
    return "%s is the mount point of %s" % (path, _describe_fs(path))


def plan(spec, data_dir=None):
    """Check what a btrfs snapshot of ``spec`` would need, changing nothing; return the plan."""
    spec = spec or {}
    if not isinstance(spec, dict):
        raise ConfigError("snapshot must be a dict, got %r" % (spec,))
    _btrfs()
    real_data_dir = None
    if data_dir is not None:
        real_data_dir = _absolute(data_dir, "data_dir")
        if not os.path.isdir(real_data_dir):
            raise ConfigError("data_dir %s is not a directory" % real_data_dir, hint="Give the data directory of the database")
    if spec.get("subvolume") is not None:
        subvolume = _absolute(spec["subvolume"], "snapshot.subvolume")
        if not os.path.isdir(subvolume):
            raise ConfigError("snapshot.subvolume %s is not a directory" % subvolume, hint="Give the path of an existing btrfs subvolume")
    elif real_data_dir is not None:
        subvolume = real_data_dir
    else:
        raise ConfigError("a btrfs snapshot needs snapshot.subvolume or data_dir", hint="Set snapshot.subvolume to the subvolume to snapshot")

    fs_uuid = filesystem_uuid(subvolume)
    if fs_uuid is None:
        raise ConfigError(
            "%s is on %s, not on btrfs" % (subvolume, _describe_fs(subvolume)),
            hint="Snapshot provider btrfs needs the data on a btrfs subvolume; use the provider of the volume it is on, or a method that copies files",
        )
    if spec.get("subvolume") is None:
        subvolume = _containing_subvolume(real_data_dir)
    elif os.lstat(subvolume).st_ino != SUBVOLUME_ROOT_INODE:
        raise ConfigError(
            "snapshot.subvolume %s is not the root of a btrfs subvolume" % subvolume,
            hint="Give the path of the subvolume itself (btrfs subvolume list shows them), or leave subvolume unset to use the one that holds data_dir",
        )
    dev = os.lstat(subvolume).st_dev

    relative = ""
    if real_data_dir is not None:
        if not _within(real_data_dir, subvolume):
            raise ConfigError(
                "data_dir %s is not inside snapshot.subvolume %s" % (real_data_dir, subvolume),
                hint="Set snapshot.subvolume to the subvolume that holds data_dir, or leave it unset to find it",
            )
        relative = "" if real_data_dir == subvolume else os.path.relpath(real_data_dir, subvolume)
        current = subvolume
        for part in relative.split(os.sep) if relative else ():
            current = os.path.join(current, part)
            if os.lstat(current).st_dev != dev:
                raise ConfigError(
                    "data_dir %s is not part of a snapshot of %s: %s" % (real_data_dir, subvolume, _foreign_message(current, fs_uuid)),
                    hint="A snapshot holds one subvolume only: set snapshot.subvolume to %s, or leave it unset to use the subvolume that holds data_dir"
                    % current,
                )
        foreign = _foreign_below(real_data_dir, dev)
        if foreign is not None:
            raise ConfigError(
                "a snapshot of %s would miss part of data_dir %s: %s" % (subvolume, real_data_dir, _foreign_message(foreign, fs_uuid)),
                hint="Nested subvolumes and mounts are not part of a snapshot; make it a plain directory, or back up with a method that copies files",
            )

    if spec.get("snapshot_dir") is not None:
        snapshot_dir = _absolute(spec["snapshot_dir"], "snapshot.snapshot_dir")
    else:
        snapshot_dir = os.path.join(os.path.dirname(subvolume), SNAPSHOT_DIR_NAME)
    if os.path.lexists(snapshot_dir) and not os.path.isdir(snapshot_dir):
        raise ConfigError("snapshot_dir %s exists and is not a directory" % snapshot_dir, hint="Set snapshot.snapshot_dir to a directory")
    if real_data_dir is not None and _within(snapshot_dir, real_data_dir):
        raise ConfigError(
            "snapshot_dir %s lies inside data_dir %s" % (snapshot_dir, real_data_dir),
            hint="Put snapshot_dir outside the data directory, e.g. next to the subvolume",
        )
    existing = _nearest_existing(snapshot_dir)
    if filesystem_uuid(existing) != fs_uuid:
        raise ConfigError(
            "snapshot_dir %s is on %s, not on the btrfs file system of %s" % (snapshot_dir, _describe_fs(existing), subvolume),
            hint="Snapshots cannot cross file systems: set snapshot.snapshot_dir to a directory on the same btrfs file system as the subvolume",
        )
    return {
        "provider": PROVIDER,
        "subvolume": subvolume,
        "snapshot_dir": snapshot_dir,
        "data_dir_relative": relative,
        "filesystem_uuid": fs_uuid,
    }


def _delete_quietly(path):
    """Delete a subvolume this call made; a sentence on failure, else None."""
    try:
        _run(["subvolume", "delete", path])
    except ToolError as exc:
        return str(exc)
    return None


def create(plan, backup_id, labels=None, timeout=None, taken=None):
    """Take a read-only snapshot of the plan's subvolume; return its record (a list of one)."""
    if not isinstance(plan, dict) or plan.get("provider") != PROVIDER:
        raise ConfigError("not a btrfs snapshot plan: %r" % (plan,))
    if not isinstance(backup_id, str) or not _BACKUP_ID.match(backup_id):
        raise ConfigError("backup id %r cannot name a snapshot" % (backup_id,), hint="Use letters, digits, '.', '_' and '-'")
    snapshot_dir = plan["snapshot_dir"]
    destination = os.path.join(snapshot_dir, backup_id)
    if os.path.lexists(destination):
        raise EngineError(
            "snapshot %s already exists" % destination,
            hint="Use another backup id, or delete the old snapshot if no backup refers to it",
        )
    if not os.path.isdir(snapshot_dir):
        os.makedirs(snapshot_dir, 0o700)
    created = utcnow()
    _run(["subvolume", "snapshot", "-r", plan["subvolume"], destination], timeout=timeout or SNAPSHOT_TIMEOUT)
    try:
        if taken is not None:
            taken()
        info = subvolume_show(destination)
        if "readonly" not in info.get("Flags", "").split():
            raise EngineError("snapshot %s was made writable (flags: %s)" % (destination, info.get("Flags")))
        record = {
            "provider": PROVIDER,
            "id": destination,
            "source": plan["subvolume"],
            "data_dir_relative": plan.get("data_dir_relative") or "",
            "uuid": info["UUID"],
            "created": format_time(created),
            "labels": dict(labels or {}),
        }
    except BaseException as exc:
        problem = _delete_quietly(destination)
        if problem is not None:
            raise EngineError(
                "%s; the snapshot %s could not be deleted either: %s" % (exc, destination, problem),
                hint="Delete it with btrfs subvolume delete %s" % destination,
            )
        raise
    return [record]


def _record_path(record):
    if not isinstance(record, dict) or record.get("provider") != PROVIDER:
        raise ConfigError("not a btrfs snapshot record: %r" % (record,))
    path = record.get("id")
    if not isinstance(path, str) or not os.path.isabs(path) or os.path.normpath(path) != path:
        raise ConfigError("btrfs snapshot record has no usable path: %r" % (path,))
    if not record.get("uuid"):
        raise ConfigError("btrfs snapshot record %s has no uuid" % path, hint="Without its UUID the snapshot cannot be told from another subvolume")
    return path


def _check_snapshot(record, path):
    """Refuse unless ``path`` is the record's read-only snapshot."""
    st = os.lstat(path)
    if os.path.islink(path) or not os.path.isdir(path) or st.st_ino != SUBVOLUME_ROOT_INODE or filesystem_uuid(path) is None:
        raise EngineError(
            "%s is not a btrfs subvolume, so it is not the snapshot %s of the record" % (path, record["uuid"]),
            hint="Something else has replaced the snapshot; it was left alone",
        )
    info = subvolume_show(path)
    if info["UUID"] != record["uuid"]:
        raise EngineError(
            "the subvolume at %s has UUID %s, not %s as the record says" % (path, info["UUID"], record["uuid"]),
            hint="It is another subvolume than the snapshot of the record and was left alone",
        )
    if "readonly" not in info.get("Flags", "").split():
        raise EngineError(
            "the subvolume at %s is writable, not a read-only snapshot" % path,
            hint="It was changed after the backup (its read-only flag was cleared) and was left alone",
        )


def exists(record):
    """Whether the record's snapshot is still there; something else at its path raises."""
    path = _record_path(record)
    if not os.path.lexists(path):
        return False
    _check_snapshot(record, path)
    return True


def delete(record):
    """Delete the record's snapshot: True when deleted, False when it was already gone."""
    path = _record_path(record)
    if not os.path.lexists(path):
        return False
    _check_snapshot(record, path)
    _run(["subvolume", "delete", path])
    return True


def tree(record):
    """The directory inside the snapshot that holds the data directory."""
    path = _record_path(record)
    relative = record.get("data_dir_relative") or ""
    return os.path.join(path, relative) if relative else path


@contextlib.contextmanager
def mounted(record):
    """The data directory inside the snapshot (a snapshot is a directory already: nothing is mounted)."""
    path = _record_path(record)
    if not os.path.lexists(path):
        raise EngineError("snapshot %s no longer exists" % path, hint="Restore this backup from the repository instead")
    _check_snapshot(record, path)
    yield tree(record)


def remove_restored(result):
    """Delete the subvolume a restore made (its finishing failed); a sentence when that fails, else None."""
    path = (result or {}).get("path")
    if not path or not os.path.lexists(path):
        return None
    return _delete_quietly(path)


def _target_state(target, fs_uuid, force):
    """What lies at ``target`` ("subvolume", "empty directory" or None); refuse what may not be replaced."""
    if not os.path.lexists(target):
        return None
    if os.path.islink(target):
        raise ConfigError("restore target %s is a symbolic link" % target, hint="Give the path it points to, or another path")
    if not os.path.isdir(target):
        raise ConfigError("restore target %s exists and is not a directory" % target, hint="Remove it, or restore to another path")
    if mount_of(target)[0] == target:
        raise ConfigError("restore target %s is a mount point" % target, hint="Unmount it, or restore to another path")
    entries = sorted(os.listdir(target))
    listing = "it holds %d entries (%s)" % (len(entries), ", ".join(entries[:5]))
    if os.lstat(target).st_ino == SUBVOLUME_ROOT_INODE and filesystem_uuid(target) == fs_uuid:
        if "readonly" in subvolume_show(target).get("Flags", "").split():
            raise ConfigError(
                "restore target %s is a read-only subvolume, maybe another backup's snapshot" % target,
                hint="Restore to another path; delete that subvolume yourself if nothing needs it",
            )
        if entries and not force:
            raise ConfigError(
                "restore target %s is not empty: %s" % (target, listing),
                hint="Restore to a new or empty path, or set force: true to delete this subvolume first (stop the server that uses it)",
            )
        return "subvolume"
    if entries:
        if force:
            raise ConfigError(
                "restore target %s is a non-empty plain directory, which cannot be replaced by the snapshot's subvolume: %s" % (target, listing),
                hint="Move it away or empty it, or restore to a new path",
            )
        raise ConfigError(
            "restore target %s is not empty: %s" % (target, listing),
            hint="Restore to a new or empty path; force replaces only a subvolume, not a plain directory",
        )
    return "empty directory"


def restore(record, target, check_mode=False, force=False):
    """Make a writable subvolume at ``target`` from the record's snapshot; return what was (or would be) made."""
    snapshot = _record_path(record)
    _btrfs()
    if not isinstance(target, str) or not os.path.isabs(target) or os.path.normpath(target) in ("/", "//"):
        raise ConfigError("restore target must be an absolute path below /, got %r" % (target,))
    target = os.path.normpath(target)
    target = os.path.join(os.path.realpath(os.path.dirname(target)), os.path.basename(target))
    if not os.path.lexists(snapshot):
        raise EngineError("snapshot %s no longer exists" % snapshot, hint="Restore this backup from the repository instead")
    _check_snapshot(record, snapshot)
    if _within(target, snapshot) or _within(snapshot, target):
        raise ConfigError("restore target %s overlaps the snapshot %s" % (target, snapshot), hint="Restore to a path outside the snapshot")
    fs_uuid = filesystem_uuid(snapshot)
    parent = os.path.dirname(target)
    existing = _nearest_existing(parent)
    if filesystem_uuid(existing) != fs_uuid:
        raise ConfigError(
            "restore target %s is on %s, not on the btrfs file system of the snapshot %s" % (target, _describe_fs(existing), snapshot),
            hint="A snapshot restores instantly only on its own file system: restore to a path there, or restore from the repository",
        )
    replaced = _target_state(target, fs_uuid, force)
    relative = record.get("data_dir_relative") or ""
    result = {
        "path": target,
        "data_dir": os.path.join(target, relative) if relative else target,
        "from": snapshot,
        "replaced": replaced,
    }
    if check_mode:
        return result
    mode = None
    if replaced == "subvolume":
        _run(["subvolume", "delete", target])
    elif replaced == "empty directory":
        st = os.lstat(target)
        mode = (st.st_mode & 0o7777, st.st_uid, st.st_gid)
        os.rmdir(target)
    else:
        hostfiles.make_dirs(parent)
    try:
        _run(["subvolume", "snapshot", snapshot, target])
    except BaseException:
        if mode is not None and not os.path.lexists(target):
            try:
                os.mkdir(target, mode[0])
                os.chown(target, mode[1], mode[2])
            except OSError as exc:
                if exc.errno != errno.EEXIST:
                    raise
        raise
    return result
