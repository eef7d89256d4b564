# -*- coding: utf-8 -*-
# Copyright: contributors to the dataprotection.databases collection
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Snapshot provider ``lvm``: an LVM snapshot of the logical volume that holds a data directory.

Plan
    ``logical_volume`` (``vg/lv``, optional) names the LV; without it the LV
    whose device holds ``data_dir`` is used: ``findmnt --target`` gives the
    mount holding the data directory, and its source is matched against
    ``lvs`` by major:minor or by the LV's device-mapper path.  The plan
    refuses a data directory that is not on an LV, or not on the one named
    (naming the device or LV it is on), a data directory holding another
    mount (it would be missing from the snapshot), btrfs (a block copy of a
    mounted btrfs has the same fsid and must not be mounted beside it),
    a process that is not root, and missing tools.  A thick (classic, COW)
    snapshot needs ``size``: ``5G``, ``512M`` (``lvcreate -L``; units as
    lvm2 reads them, always powers of 1024) or ``10%ORIGIN``, ``%VG``,
    ``%FREE``, ``%PVS`` (``lvcreate -l``); the volume group must have that
    much free space.  A thin LV gets a thin snapshot, which takes no size:
    the plan warns when its pool's data or metadata is over 90% full.

Create
    ``lvcreate --snapshot --name <name> (-L <size> | -l <N%ORIGIN> |
    --setactivationskip y) --addtag dataprotection.backup_id=<id> vg/lv``.
    lvcreate suspends the origin, which freezes and flushes its file system:
    no fsfreeze here.  The snapshot's moment is fixed when lvcreate returns
    (``taken`` is called there); the new LV is then read back with ``lvs``
    (its UUID, that it is a snapshot of the planned LV).  A failure after
    lvcreate removes the snapshot again (``lvremove -f``).

Delete / exists
    By ``vg/name``, but only an LV whose UUID is the record's and which is a
    snapshot of the recorded origin; another LV that has come to have the
    name is never removed.

Mounted
    Activates the snapshot when needed (thin snapshots carry the activation
    skip flag: ``lvchange -ay -K``), mounts it read-only in a private
    directory (mode 0700) and yields the data directory inside it; unmounts
    (and deactivates what it activated) on exit, also after errors.  Mount
    options by default: ``ro`` for ext2/3/4, ``ro,nouuid`` for xfs (the
    snapshot has the UUID of the mounted original).  ``noload`` (ext4) and
    ``norecovery`` (xfs) are deliberately not defaults: the snapshot device
    is writable, so a read-only mount replays a journal that needs it into
    the snapshot, which gives the consistent state; skipping the replay would
    show a tree without the last committed metadata.  The file system is
    frozen while lvcreate takes the snapshot, so normally there is nothing
    to replay.  An overflowed thick snapshot is refused.

Restore
    A new logical volume.  Thin: ``lvcreate --snapshot`` of the snapshot (a
    writable thin snapshot, instant).  Thick: a new LV of the origin's size
    and a block copy (``dd``) from the snapshot, which reads the whole
    origin size.  Then the copy gets a new file system UUID (``xfs_admin -U
    generate``; ``e2fsck -f -p`` and ``tune2fs -U random`` for ext2/3/4), so
    it can be mounted beside the original, and is mounted at
    ``mount_point`` when one is given.

Every tool runs through ``run_tool``, the one place tests replace.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import contextlib
import json
import os
import re
import shlex
import tempfile

from ansible_collections.dataprotection.databases.plugins.module_utils import hostfiles, tools
from ansible_collections.dataprotection.databases.plugins.module_utils.errors import ConfigError, DataProtectionError, EngineError, ToolError
from ansible_collections.dataprotection.databases.plugins.module_utils.timeutil import format_time, utcnow

PROVIDER = "lvm"
LOCAL = True
# The keys of a restore target (the restore module's snapshot option).
TARGET_KEYS = ("name", "vg", "size", "mount_point")

LV_FIELDS = (
    "lv_name", "vg_name", "lv_uuid", "lv_attr", "lv_size", "origin", "pool_lv", "lv_path", "lv_dm_path",
    "lv_kernel_major", "lv_kernel_minor", "data_percent", "snap_percent", "metadata_percent", "lv_tags", "lv_layout", "lv_role", "lv_time",
    "lv_active",
)
VG_FIELDS = ("vg_name", "vg_size", "vg_free", "vg_extent_size", "vg_extent_count", "vg_free_count")
REPORT_OPTIONS = ["--reportformat", "json", "--units", "b", "--nosuffix"]
FINDMNT_COLUMNS = "SOURCE,TARGET,FSTYPE,OPTIONS,MAJ:MIN,FSROOT"
BACKUP_TAG = "dataprotection.backup_id"
RESTORE_TAG = "dataprotection.restored_from"
DEFAULT_NAME = "{lv}-dp-{backup_id}"
# Default options for mounting a snapshot (always read-only); see the module docstring for what is left out and why.
MOUNT_DEFAULTS = {"xfs": "ro,nouuid", "ext4": "ro", "ext3": "ro", "ext2": "ro"}
EXT_FAMILY = ("ext2", "ext3", "ext4")
RESTORE_HINTS = {
    "dd": "The new volume is removed again; a thick snapshot that overflows during the copy fails its reads too",
    "xfs_admin": "xfs_admin -U needs a clean log: the snapshot's file system was not frozen cleanly; restore from the repository instead",
    "e2fsck": "e2fsck found problems it did not repair on its own in the copy; the new volume is removed again",
    "tune2fs": "tune2fs could not give the copy a new UUID; the new volume is removed again",
    "mount": "The copy was made but could not be mounted (dmesg says why); the new volume is removed again",
}
MOUNT_HINT = ("The kernel log (dmesg) says why. A journal that needs replaying is replayed into the (writable) snapshot on a read-only mount; "
              "snapshot.mount_options with norecovery (xfs) or noload (ext4) would skip it, showing a tree without the last committed changes")
THIN_FULL_WARNING = 90.0
TOOL_TIMEOUT = 120
CREATE_TIMEOUT = 300
# lvm2 prints "File descriptor N leaked on lvs invocation" for every descriptor it inherits.
LVM_ENV = {"LVM_SUPPRESS_FD_WARNINGS": "1"}
PACKAGES = {
    "lvs": "lvm2", "vgs": "lvm2", "lvcreate": "lvm2", "lvremove": "lvm2", "lvchange": "lvm2",
    "findmnt": "util-linux", "mount": "util-linux", "umount": "util-linux",
    "dd": "coreutils", "xfs_admin": "xfsprogs", "e2fsck": "e2fsprogs", "tune2fs": "e2fsprogs",
}
PLAN_TOOLS = ("lvs", "vgs", "lvcreate", "lvremove", "lvchange", "findmnt", "mount", "umount")
UNITS = {"b": 1, "s": 512, "k": 1024, "m": 1024 ** 2, "g": 1024 ** 3, "t": 1024 ** 4, "p": 1024 ** 5, "e": 1024 ** 6}
PERCENT_BASES = ("ORIGIN", "VG", "FREE", "PVS")
RESERVED_IN_NAMES = ("_cdata", "_cmeta", "_corig", "_iorig", "_mimage", "_mlog", "_pmspare", "_rimage", "_rmeta",
                     "_tdata", "_tmeta", "_vdata", "_vorigin", "_wcorig")
NAME_MAX = 127  # lvm2 NAME_LEN (128) with its terminating NUL; also the limit of a device-mapper name

_ABSOLUTE_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([bBsSkKmMgGtTpPeE])\s*$")
_PERCENT_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*%\s*([A-Za-z]+)\s*$")
_NAME = re.compile(r"^[A-Za-z0-9+_.][A-Za-z0-9+_.-]*$")
_TAG = re.compile(r"^[A-Za-z0-9_+.\-/=!:&#]+$")
_NOT_TAG = re.compile(r"[^A-Za-z0-9_+.\-/=!:&#]")
_NOT_NAME = re.compile(r"[^A-Za-z0-9+_.-]")


# The hooks: every command goes through run_tool, every check of the caller's privileges through euid,
# and the data directory is resolved by real_directory.  Tests replace these three; nothing else.


def run_tool(argv, timeout=TOOL_TIMEOUT, what=None):
    """Run one host tool; (stdout, stderr), or ToolError."""
    return tools.run(argv, env=LVM_ENV, timeout=timeout, what=what)


def euid():
    return os.geteuid()


def real_directory(path):
    """The real path of an existing directory, or ConfigError."""
    if not isinstance(path, str) or not os.path.isabs(path):
        raise ConfigError("data_dir must be an absolute path, got %r" % (path,), hint="Give the data directory as an absolute path")
    real = os.path.realpath(path)
    if not os.path.isdir(real):
        raise ConfigError("data_dir %s is not an existing directory" % real, hint="Give the data directory of the database")
    return real


# Small helpers -----------------------------------------------------------------------------------------


def _tool(name):
    return tools.find_tool(name, package=PACKAGES.get(name))


def _shell(argv):
    return " ".join(shlex.quote(str(arg)) for arg in argv)


def _human(value):
    """Bytes for people: 5368709120 -> 5.00 GiB."""
    if value < 1024:
        return "%d B" % value
    scaled = float(value)
    unit = "B"
    for unit in ("KiB", "MiB", "GiB", "TiB", "PiB"):
        scaled /= 1024.0
        if scaled < 1024:
            break
    return "%.2f %s" % (scaled, unit)


def _ceil_div(a, b):
    return -(-a // b)


def _require_root(action):
    uid = euid()
    if uid != 0:
        raise ConfigError(
            "%s needs root: lvcreate, lvremove, lvchange and mount do (this process runs as uid %d)" % (action, uid),
            hint="Run the task as root (become: true)",
        )


def _number(value):
    if value is None or value == "":
        return None
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return int(value)
    try:
        return int(str(value).strip())
    except ValueError:
        try:
            return int(float(str(value).strip()))
        except ValueError:
            return None


def _percent(value):
    if value is None or value == "":
        return None
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def _tags(value):
    """A string list field (lv_tags, lv_layout, lv_role): comma-separated (``--reportformat json``) or a list (``json_std``)."""
    if isinstance(value, list):
        return [str(v) for v in value if str(v)]
    return [part for part in str(value or "").split(",") if part]


def _report(out, key, command):
    """The rows of an lvm2 JSON report (``{"report": [{"lv": [...]}]}``), every report entry joined."""
    try:
        data = json.loads(out)
    except ValueError:
        raise EngineError("%s printed no JSON report: %r" % (command, (out or "")[:200]),
                          hint="Use lvm2 2.02.158 or later, which has --reportformat json")
    if not isinstance(data, dict) or not isinstance(data.get("report"), list):
        raise EngineError("%s printed a JSON report without \"report\": %r" % (command, (out or "")[:200]))
    rows = []
    for entry in data["report"]:
        if isinstance(entry, dict):
            rows.extend(row for row in entry.get(key) or () if isinstance(row, dict))
    return rows


def parse_lvs(out):
    """``lvs --reportformat json --units b --nosuffix -o LV_FIELDS`` as a list of normalized dicts."""
    result = []
    for row in _report(out, "lv", "lvs"):
        attr = str(row.get("lv_attr") or "")
        layout, role = _tags(row.get("lv_layout")), _tags(row.get("lv_role"))
        major, minor = _number(row.get("lv_kernel_major")), _number(row.get("lv_kernel_minor"))
        result.append({
            "name": str(row.get("lv_name") or ""),
            "vg": str(row.get("vg_name") or ""),
            "uuid": str(row.get("lv_uuid") or ""),
            "attr": attr,
            "size": _number(row.get("lv_size")),
            "origin": str(row.get("origin") or ""),
            "pool": str(row.get("pool_lv") or ""),
            "path": str(row.get("lv_path") or ""),
            "dm_path": str(row.get("lv_dm_path") or ""),
            "majmin": "%d:%d" % (major, minor) if major is not None and minor is not None and major >= 0 and minor >= 0 else None,
            "data_percent": _percent(row.get("data_percent")),
            "snap_percent": _percent(row.get("snap_percent")),
            "metadata_percent": _percent(row.get("metadata_percent")),
            "tags": _tags(row.get("lv_tags")),
            "layout": layout,
            "role": role,
            # lv_attr character 1: thin (V)olume, (s)napshot, (t)hin pool; lv_layout/lv_role say the same in words.
            "thin": attr[:1] == "V" or ("thin" in layout and "sparse" in layout),
            "thick_snapshot": attr[:1] in ("s", "S") or "thicksnapshot" in role,
            "pool_volume": attr[:1] in ("t", "d") or "pool" in layout,
            "time": str(row.get("lv_time") or ""),
            # lv_attr character 5 is the state: (a)ctive; lv_active says "active" (or "local exclusive" ... in a cluster).
            "active": (len(attr) > 4 and attr[4] == "a") or str(row.get("lv_active") or "").startswith(("active", "local")),
        })
    return result


def parse_vgs(out):
    result = []
    for row in _report(out, "vg", "vgs"):
        result.append({
            "name": str(row.get("vg_name") or ""),
            "size": _number(row.get("vg_size")),
            "free": _number(row.get("vg_free")),
            "extent_size": _number(row.get("vg_extent_size")),
            "extent_count": _number(row.get("vg_extent_count")),
            "free_count": _number(row.get("vg_free_count")),
        })
    return result


def parse_findmnt(out):
    """``findmnt -J [--list] -o FINDMNT_COLUMNS``: a flat list of mounts (children of a tree flattened)."""
    try:
        data = json.loads(out)
    except ValueError:
        raise EngineError("findmnt printed no JSON: %r" % ((out or "")[:200],), hint="Use util-linux 2.27 or later, which has findmnt -J")
    result = []
    pending = list((data or {}).get("filesystems") or ())
    while pending:
        entry = pending.pop(0)
        if not isinstance(entry, dict):
            continue
        source = str(entry.get("source") or "")
        # Without --nofsroot, findmnt appends "[/subdir]" for bind mounts and btrfs subvolumes.
        source = re.sub(r"\[[^\]]*\]$", "", source)
        result.append({
            "source": source,
            "target": str(entry.get("target") or ""),
            "fstype": str(entry.get("fstype") or ""),
            "options": str(entry.get("options") or ""),
            "majmin": str(entry.get("maj:min") or ""),
            "fsroot": str(entry.get("fsroot") or "/"),
        })
        pending.extend(entry.get("children") or ())
    return result


# lvm2 errors ---------------------------------------------------------------------------------------------


def lvm_error(exc, action, subject=None):
    """A ToolError of an lvm2 (or mount) command as the error the user can act on."""
    text = getattr(exc, "message", None) or str(exc)
    low = text.lower()
    details = dict(getattr(exc, "details", None) or {})
    what = "%s %s" % (action, subject) if subject else action
    if "insufficient free space" in low:
        return ConfigError("%s: the volume group has too little free space: %s" % (what, text),
                           hint="Free space in the volume group (vgextend, or remove an LV) or choose a smaller snapshot.size", **details)
    if "running as a non-root user" in low or "permission denied" in low or "must be root" in low or "only root" in low:
        return ConfigError("%s: permission denied: %s" % (what, text), hint="Run the task as root (become: true)", **details)
    if "contains a filesystem in use" in low or "target is busy" in low:
        return EngineError("%s: it is in use (mounted, maybe by a backup streaming from it): %s" % (what, text),
                           hint="Wait for that to finish, or find the mount with findmnt and unmount it; nothing was removed", **details)
    if "already exists" in low:
        return EngineError("%s: %s" % (what, text), hint="Choose another name, or remove the old volume if nothing needs it", **details)
    if ("not supported" in low and "snapshot" in low) or "snapshot origin" in low or "thin snapshot supports only" in low:
        return ConfigError("%s: lvm2 cannot snapshot this volume: %s" % (what, text),
                           hint="Snapshot the volume the data lies on directly (not a snapshot of it), or use a method that copies files", **details)
    if "not found" in low or "failed to find" in low:
        return ConfigError("%s: %s" % (what, text), hint="Check the volume group and logical volume names with lvs", **details)
    return EngineError("%s failed: %s" % (what, text), hint="See the lvm2 message; nothing was changed by this step", **details)


def _lvm(argv, action, subject=None, timeout=TOOL_TIMEOUT):
    try:
        out, _err = run_tool(argv, timeout=timeout, what=os.path.basename(argv[0]))
    except ToolError as exc:
        raise lvm_error(exc, action, subject)
    return out


def lvs(*selection):
    """The LVs of the named VGs (all VGs without a name)."""
    argv = [_tool("lvs")] + REPORT_OPTIONS + ["-o", ",".join(LV_FIELDS)] + list(selection)
    return parse_lvs(_lvm(argv, "listing logical volumes with lvs", " ".join(selection) or None))


def vgs(vg):
    argv = [_tool("vgs")] + REPORT_OPTIONS + ["-o", ",".join(VG_FIELDS), vg]
    rows = [row for row in parse_vgs(_lvm(argv, "reading volume group", vg)) if row["name"] == vg]
    if not rows:
        raise ConfigError("volume group %s not found" % vg, hint="Check the volume group name with vgs")
    return rows[0]


def _find(rows, vg, name):
    for row in rows:
        if row["vg"] == vg and row["name"] == name:
            return row
    return None


# Names, sizes, tags, options ---------------------------------------------------------------------------


def _dm_name(vg, name):
    return "%s-%s" % (vg.replace("-", "--"), name.replace("-", "--"))


def check_name(name, what, vg=None):
    """Refuse what lvm2 refuses as a new LV name (lvm(8) "VALID NAMES")."""
    if not isinstance(name, str) or not name or not _NAME.match(name) or name in (".", ".."):
        raise ConfigError("%s %r is not a valid LV name" % (what, name),
                          hint="Use letters, digits and + _ . - (not first), as lvm(8) allows")
    if name.startswith(("snapshot", "pvmove")) or any(part in name for part in RESERVED_IN_NAMES):
        raise ConfigError("%s %r uses a name lvm2 reserves (names starting snapshot or pvmove, or containing %s)"
                          % (what, name, ", ".join(RESERVED_IN_NAMES)), hint="Choose another name")
    # A thick snapshot also gets the device-mapper name <vg>-<name>-cow.
    if len(name) > NAME_MAX or (vg and len(_dm_name(vg, name)) + 4 > NAME_MAX):
        raise ConfigError("%s %r is too long (lvm2 allows %d characters, with the volume group's)" % (what, name, NAME_MAX),
                          hint="Set snapshot.snapshot_name to a shorter pattern")
    return name


def split_lv(value, what="snapshot.logical_volume"):
    """``vg/lv`` (also ``/dev/vg/lv``) as (vg, lv)."""
    text = str(value or "").strip()
    if text.startswith("/dev/"):
        text = text[len("/dev/"):]
    parts = text.split("/")
    if len(parts) != 2 or not all(parts) or not all(_NAME.match(p) for p in parts):
        raise ConfigError("%s must be vg/lv, got %r" % (what, value), hint="Name the logical volume as lvs shows it: VG/LV, e.g. vg0/pgdata")
    return parts[0], parts[1]


def parse_size(value):
    """A snapshot size as lvcreate takes it: (option, argument, kind, number): -L 5G, or -l 10%ORIGIN."""
    text = str(value).strip() if value is not None and not isinstance(value, bool) else ""
    match = _ABSOLUTE_SIZE.match(text)
    if match:
        number = float(match.group(1))
        size = int(number * UNITS[match.group(2).lower()])
        if size <= 0:
            raise ConfigError("snapshot.size %r is zero" % (value,), hint="Give a size like 5G or 10%ORIGIN")
        return "-L", "%s%s" % (match.group(1), match.group(2)), "bytes", size
    match = _PERCENT_SIZE.match(text)
    if match:
        base = [b for b in PERCENT_BASES if b.startswith(match.group(2).upper())]
        number = float(match.group(1))
        if len(base) == 1 and 0 < number <= 100:
            return "-l", "%s%%%s" % (match.group(1), base[0]), base[0], number
    raise ConfigError(
        "snapshot.size %r is not a size lvcreate takes for a snapshot" % (value,),
        hint="Give a size with its unit (512M, 5G, 1.5T: powers of 1024, as lvm2 reads them) or a percentage: 10%ORIGIN, 20%FREE, 5%VG",
    )


def needed_extents(size, origin, vg):
    """Extents a snapshot of ``size`` takes (an upper bound for percentages, as lvcreate computes them)."""
    _option, _text, kind, number = size
    extent = vg["extent_size"] or 4 * 1024 * 1024
    if kind == "bytes":
        return _ceil_div(number, extent)
    if kind == "ORIGIN":
        return _ceil_div(int(number * 100) * _ceil_div(origin["size"] or 0, extent), 10000)
    if kind == "VG":
        return _ceil_div(int(number * 100) * (vg["extent_count"] or 0), 10000)
    # %FREE / %PVS: a part of what is free.
    return max(1, (int(number * 100) * (vg["free_count"] or 0)) // 10000)


def mount_options(value, fstype):
    """The options for mounting a snapshot: the given ones (a string or list) or the fstype's defaults; always read-only."""
    if value is None:
        options = MOUNT_DEFAULTS.get(fstype, "ro").split(",")
    elif isinstance(value, (list, tuple)):
        options = [str(v).strip() for v in value]
    else:
        options = [v.strip() for v in str(value).split(",")]
    options = [o for o in options if o]
    if "rw" in options:
        raise ConfigError("snapshot.mount_options %r asks for a read-write mount" % (value,),
                          hint="The snapshot is mounted read-only to be read; remove rw")
    if "ro" not in options:
        options.insert(0, "ro")
    for option in options:
        if not re.match(r"^[A-Za-z0-9_=.:/+-]+$", option):
            raise ConfigError("snapshot.mount_options has an option mount would not take: %r" % (option,))
    return ",".join(options)


def user_tags(value):
    """snapshot.tags: a list of LVM tags or a dict (key=value tags); refused when lvm2 would refuse them."""
    if value is None:
        return []
    if isinstance(value, dict):
        items = ["%s=%s" % (k, v) for k, v in sorted(value.items())]
    elif isinstance(value, (list, tuple)):
        items = [str(v) for v in value]
    else:
        raise ConfigError("snapshot.tags must be a list or a dict, got %r" % (value,))
    for tag in items:
        if not _TAG.match(tag) or tag.startswith(("-", "@")) or len(tag) > 128:
            raise ConfigError("snapshot.tags: %r is not an LVM tag" % (tag,),
                              hint="LVM tags take letters, digits and _ + . - / = ! : & # (not - or @ first), at most 128 characters")
        if tag.startswith((BACKUP_TAG, RESTORE_TAG)):
            raise ConfigError("snapshot.tags: %r is reserved for the collection's own tag" % (tag,))
    return items


def sanitize_tag(value):
    """A value made into an LVM tag: characters lvm2 refuses become '_'."""
    return _NOT_TAG.sub("_", str(value))[:128]


def snapshot_name(pattern, vg, lv, backup_id):
    text = pattern.replace("{lv}", lv).replace("{vg}", vg).replace("{backup_id}", _NOT_NAME.sub("_", str(backup_id)))
    return check_name(text, "snapshot name", vg)


# Plan ------------------------------------------------------------------------------------------------


def _mount_of(real):
    argv = [_tool("findmnt"), "-J", "--nofsroot", "-o", FINDMNT_COLUMNS, "--target", real]
    mounts = parse_findmnt(_lvm(argv, "finding the mount of", real))
    if not mounts:
        raise EngineError("findmnt found no mount holding %s" % real)
    return mounts[-1]


def _mounts_below(real):
    argv = [_tool("findmnt"), "-J", "--list", "--nofsroot", "-o", FINDMNT_COLUMNS]
    top = real.rstrip("/") + "/"
    return [m for m in parse_findmnt(_lvm(argv, "listing mounts")) if m["target"].startswith(top)]


def lv_of_mount(mount, rows):
    """The LV whose device is the mount's source (by major:minor, else by path), or None."""
    for row in rows:
        if row["majmin"] and row["majmin"] == mount["majmin"]:
            return row
    for row in rows:
        if mount["source"] and mount["source"] in (row["dm_path"], row["path"]):
            return row
    return None


def _describe(mount):
    return "%s (%s, mounted at %s)" % (mount["source"] or "an unknown device", mount["fstype"] or "unknown file system", mount["target"])


def _relative(real, mount):
    target = mount["target"]
    if real != target and not real.startswith(target.rstrip("/") + "/"):
        raise EngineError("findmnt says %s is mounted at %s, which does not hold it" % (real, target))
    inside = "" if real == target else os.path.relpath(real, target)
    # A bind mount shows a directory of the file system (FSROOT): the snapshot holds the whole file system.
    relative = os.path.normpath(os.path.join(mount["fsroot"].lstrip("/"), inside))
    return "" if relative == "." else relative


def plan(spec, data_dir=None):
    """Check what an LVM snapshot of the volume holding ``data_dir`` needs, changing nothing; return the plan."""
    spec = spec or {}
    if not isinstance(spec, dict):
        raise ConfigError("snapshot must be a dict, got %r" % (spec,))
    for name in PLAN_TOOLS:
        _tool(name)
    _require_root("an lvm snapshot")
    if data_dir is None:
        raise ConfigError("the lvm provider needs the data directory, to find the logical volume and the files inside it")
    real = real_directory(data_dir)
    named = split_lv(spec["logical_volume"]) if spec.get("logical_volume") else None
    pattern = spec.get("snapshot_name") or DEFAULT_NAME
    if not isinstance(pattern, str) or "{backup_id}" not in pattern:
        raise ConfigError("snapshot.snapshot_name %r must contain {backup_id}" % (pattern,),
                          hint="Every backup needs its own snapshot; e.g. {lv}-dp-{backup_id} (also {vg})")
    tags = user_tags(spec.get("tags"))

    mount = _mount_of(real)
    rows = lvs()
    holder = lv_of_mount(mount, rows)
    if named is not None:
        wanted = _find(rows, named[0], named[1])
        if wanted is None:
            raise ConfigError("logical volume %s/%s not found" % named, hint="lvs lists the logical volumes: %s"
                              % (", ".join("%s/%s" % (r["vg"], r["name"]) for r in rows) or "none"))
        if holder is None:
            raise ConfigError("data_dir %s is on %s, not on logical volume %s/%s" % ((real, _describe(mount)) + named),
                              hint="That device is not an LVM logical volume: use the snapshot provider of the volume it is on, "
                                   "or a method that copies files")
        if holder is not wanted:
            raise ConfigError("data_dir %s is on logical volume %s/%s, not on %s/%s" % ((real, holder["vg"], holder["name"]) + named),
                              hint="Set snapshot.logical_volume to %s/%s, or leave it unset to use the volume holding data_dir"
                              % (holder["vg"], holder["name"]))
    elif holder is None:
        raise ConfigError("data_dir %s is on %s, which is not an LVM logical volume" % (real, _describe(mount)),
                          hint="Use the snapshot provider of the volume it is on, or a method that copies files")
    lv = holder
    full = "%s/%s" % (lv["vg"], lv["name"])
    if lv["thick_snapshot"]:
        raise ConfigError("data_dir %s is on %s, which is itself a (thick) snapshot" % (real, full),
                          hint="lvm2 does not snapshot thick snapshots; back up from the origin volume")
    if lv["pool_volume"]:
        raise ConfigError("%s is a pool (%s), not a volume with a file system" % (full, ",".join(lv["layout"]) or lv["attr"]))
    fstype = mount["fstype"]
    if fstype == "btrfs":
        raise ConfigError(
            "data_dir %s is on btrfs (on %s): a block snapshot of a mounted btrfs has the same file system ID and must not be mounted beside it"
            % (real, full), hint="Use snapshot.provider: btrfs, which snapshots the subvolume",
        )
    relative = _relative(real, mount)
    nested = _mounts_below(real)
    if nested:
        raise ConfigError(
            "a snapshot of %s would miss part of data_dir %s: %s" % (full, real, "; ".join(
                "%s is the mount point of %s" % (m["target"], m["source"] or m["fstype"]) for m in nested)),
            hint="Mounts below data_dir are not part of the snapshot; make them plain directories, or back up with a method that copies files",
        )

    thin = lv["thin"]
    warnings = []
    size = None
    needed = None
    if thin:
        if spec.get("size") is not None:
            raise ConfigError(
                "snapshot.size is for a thick (classic) snapshot, but %s is a thin volume: its snapshot is a thin snapshot without a size" % full,
                hint="Remove snapshot.size",
            )
        pool = _find(rows, lv["vg"], lv["pool"])
        for field, label in (("data_percent", "data"), ("metadata_percent", "metadata")):
            used = pool.get(field) if pool else None
            if used is not None and used > THIN_FULL_WARNING:
                warnings.append("thin pool %s/%s is %.2f%% full (%s): the snapshot shares its space, and writes fail when it is full"
                                % (lv["vg"], lv["pool"], used, label))
    else:
        if spec.get("size") is None:
            raise ConfigError(
                "%s is a thick volume: its snapshot needs snapshot.size, the room for the blocks written to it while the snapshot lives" % full,
                hint="Set snapshot.size, e.g. 10%ORIGIN or 5G; a snapshot that runs full becomes unusable",
            )
        size = parse_size(spec["size"])
        group = vgs(lv["vg"])
        needed = needed_extents(size, lv, group)
        extent = group["extent_size"] or 1
        free_count = group["free_count"] if group["free_count"] is not None else (group["free"] or 0) // extent
        if needed > free_count or needed < 1:
            raise ConfigError(
                "volume group %s has %d bytes (%s) free; a snapshot of size %s needs %d bytes (%s)"
                % (lv["vg"], free_count * extent, _human(free_count * extent), size[1], needed * extent, _human(needed * extent)),
                hint="Free space in %s (vgextend, or remove an LV) or choose a smaller snapshot.size" % lv["vg"],
            )
        needed *= extent
    snapshot_name(pattern, lv["vg"], lv["name"], "x")
    return {
        "provider": PROVIDER,
        "logical_volume": full,
        "vg": lv["vg"],
        "lv": lv["name"],
        "lv_uuid": lv["uuid"],
        "lv_size": lv["size"],
        "thin": thin,
        "pool": lv["pool"] or None,
        "size": size[1] if size else None,
        "size_option": size[0] if size else None,
        "size_bytes": needed,
        "device": mount["source"],
        "fstype": fstype,
        "mount_point": mount["target"],
        "data_dir": real,
        "data_dir_relative": relative,
        "mount_options": mount_options(spec.get("mount_options"), fstype),
        "snapshot_name": pattern,
        "tags": tags,
        "warnings": warnings,
    }


# Create / exists / delete ----------------------------------------------------------------------------


def _remove_quietly(full):
    """lvremove -f of an LV this call made; a sentence on failure, else None."""
    try:
        run_tool([_tool("lvremove"), "-f", full], what="lvremove")
    except (ToolError, DataProtectionError) as exc:
        return getattr(exc, "message", None) or str(exc)
    return None


def create(plan, backup_id, labels=None, timeout=None, taken=None):
    """Take the snapshot of the plan's LV; return its record (a list of one)."""
    if not isinstance(plan, dict) or plan.get("provider") != PROVIDER:
        raise ConfigError("not an lvm snapshot plan: %r" % (plan,))
    if not isinstance(backup_id, str) or not backup_id:
        raise ConfigError("backup id %r cannot name a snapshot" % (backup_id,))
    _require_root("an lvm snapshot")
    vg, origin = plan["vg"], plan["lv"]
    name = snapshot_name(plan.get("snapshot_name") or DEFAULT_NAME, vg, origin, backup_id)
    full = "%s/%s" % (vg, name)
    rows = lvs(vg)
    source = _find(rows, vg, origin)
    if source is None or source["uuid"] != plan["lv_uuid"]:
        raise EngineError("logical volume %s/%s is not the one planned (UUID %s)" % (vg, origin, plan["lv_uuid"]),
                          hint="It was removed or replaced since the plan; run the backup again")
    if _find(rows, vg, name) is not None:
        raise EngineError("logical volume %s already exists" % full,
                          hint="Use another backup id or snapshot_name, or remove the old snapshot if no backup refers to it")
    argv = [_tool("lvcreate"), "--snapshot", "--name", name]
    if plan.get("thin"):
        argv += ["--setactivationskip", "y"]
    else:
        argv += [plan["size_option"], plan["size"]]
    argv += ["--addtag", "%s=%s" % (BACKUP_TAG, sanitize_tag(backup_id))]
    for tag in plan.get("tags") or ():
        argv += ["--addtag", tag]
    argv.append("%s/%s" % (vg, origin))
    created = utcnow()
    try:
        run_tool(argv, timeout=timeout or CREATE_TIMEOUT, what="lvcreate")
    except ToolError as exc:
        if (exc.details or {}).get("returncode") is None:
            # Stopped (timeout) or not started: lvcreate may have been killed with the origin suspended.
            raise EngineError(
                "creating snapshot %s: %s" % (full, exc.message),
                hint="Check that no device is left suspended (dmsetup info -c; dmsetup resume <device>) and whether %s exists (lvs %s)" % (full, vg),
            )
        raise lvm_error(exc, "creating snapshot", full)
    try:
        if taken is not None:
            taken()
        made = _find(lvs(vg), vg, name)
        if made is None:
            raise EngineError("lvcreate reported success but lvs does not list %s" % full)
        kind_ok = made["thin"] if plan.get("thin") else made["thick_snapshot"]
        if made["origin"] != origin or not kind_ok or not made["uuid"]:
            raise EngineError("%s is not a %s snapshot of %s/%s (origin %r, attributes %s)"
                              % (full, "thin" if plan.get("thin") else "thick", vg, origin, made["origin"], made["attr"]))
        record = {
            "provider": PROVIDER,
            "id": full,
            "source": "%s/%s" % (vg, origin),
            "vg": vg,
            "name": name,
            "uuid": made["uuid"],
            "origin": "%s/%s" % (vg, origin),
            "origin_uuid": plan["lv_uuid"],
            "thin": bool(plan.get("thin")),
            "size": made["size"],
            "origin_size": source["size"],
            "fstype": plan["fstype"],
            "mount_options": plan["mount_options"],
            "data_dir_relative": plan.get("data_dir_relative") or "",
            "created": format_time(created),
            "labels": dict(labels or {}),
        }
    except BaseException as exc:
        problem = _remove_quietly(full)
        if problem is not None:
            message = getattr(exc, "message", None) or str(exc) or exc.__class__.__name__
            raise EngineError(
                "%s; the snapshot %s could not be removed either: %s" % (message, full, problem),
                hint="It is left behind: remove it with lvremove -f %s" % full, left=full,
            )
        raise
    return [record]


def _record_names(record):
    if not isinstance(record, dict) or record.get("provider") != PROVIDER:
        raise ConfigError("not an lvm snapshot record: %r" % (record,))
    vg, name = split_lv(record.get("id"), "lvm snapshot record id")
    if not record.get("uuid"):
        raise ConfigError("lvm snapshot record %s has no uuid" % record.get("id"),
                          hint="Without its UUID the snapshot cannot be told from another LV of that name")
    return vg, name


def _verify(record, row):
    """Refuse unless ``row`` is the record's snapshot: its UUID, a snapshot of the recorded origin."""
    full = record["id"]
    if row["uuid"] != record["uuid"]:
        raise EngineError("logical volume %s has UUID %s, not %s as the record says" % (full, row["uuid"], record["uuid"]),
                          hint="It is another volume than the snapshot of the record and was left alone")
    origin = str(record.get("origin") or "").rsplit("/", 1)[-1]
    thin = bool(record.get("thin"))
    is_snapshot = row["thin"] if thin else row["thick_snapshot"]
    # A thin snapshot outlives its origin (its origin field is empty then); a thick one cannot.
    if not is_snapshot or (row["origin"] != origin and not (thin and row["origin"] == "")):
        raise EngineError("logical volume %s is not a snapshot of %s (origin %r, attributes %s)" % (full, record.get("origin"), row["origin"], row["attr"]),
                          hint="It was left alone")


def _lookup(record):
    vg, name = _record_names(record)
    row = _find(lvs(vg), vg, name)
    if row is not None:
        _verify(record, row)
    return row


def exists(record):
    """Whether the record's snapshot is still there; another LV of that name raises."""
    _record_names(record)
    _require_root("reading lvm snapshots")
    return _lookup(record) is not None


def delete(record):
    """Remove the record's snapshot: True when removed, False when it was already gone."""
    vg, name = _record_names(record)
    _require_root("removing an lvm snapshot")
    if _lookup(record) is None:
        return False
    _lvm([_tool("lvremove"), "-f", "%s/%s" % (vg, name)], "removing snapshot", record["id"])
    return True


def _usable(record, row):
    """Refuse an overflowed (invalid) or failed-merge thick snapshot."""
    state = row["attr"][4:5]
    if not record.get("thin") and (state in ("I", "S") or (row["snap_percent"] is not None and row["snap_percent"] >= 100.0)):
        raise EngineError(
            "the snapshot %s overflowed: its size was too small for the writes during its life; it is unusable" % record["id"],
            hint="Restore another backup (or from the repository if this one was streamed); give snapshot.size more room, e.g. 20%ORIGIN",
        )
    if state in ("m", "M"):
        raise EngineError("the snapshot %s failed to merge into its origin and is unusable" % record["id"])


# Mounted ---------------------------------------------------------------------------------------------


def _release(full, directory, activated):
    """Unmount ``directory`` and deactivate what was activated; a sentence with the leftovers, or None."""
    if directory is not None:
        try:
            run_tool([_tool("umount"), directory], what="umount")
        except (ToolError, DataProtectionError) as exc:
            left = "could not unmount the snapshot %s from %s: %s; unmount it with umount %s" % (
                full, directory, getattr(exc, "message", None) or exc, directory)
            if activated:
                left += ", then deactivate it with lvchange -an %s" % full
            return left
        try:
            os.rmdir(directory)
        except OSError:
            pass
    if activated:
        try:
            run_tool([_tool("lvchange"), "-an", full], what="lvchange")
        except (ToolError, DataProtectionError) as exc:
            return "could not deactivate the snapshot %s: %s; deactivate it with lvchange -an %s" % (
                full, getattr(exc, "message", None) or exc, full)
    return None


@contextlib.contextmanager
def mounted(record):
    """Mount the record's snapshot read-only in a private directory; yield the data directory inside it."""
    vg, name = _record_names(record)
    _require_root("mounting an lvm snapshot")
    full = "%s/%s" % (vg, name)
    row = _lookup(record)
    if row is None:
        raise EngineError("snapshot %s no longer exists" % full, hint="Restore this backup from the repository, if it was streamed")
    _usable(record, row)
    device = row["dm_path"] or "/dev/%s/%s" % (vg, name)
    fstype = record.get("fstype") or "auto"
    options = record.get("mount_options") or mount_options(None, fstype)
    activated = False
    directory = None
    try:
        if not row["active"]:
            _lvm([_tool("lvchange"), "-ay", "-K", full], "activating snapshot", full)
            activated = True
        directory = tempfile.mkdtemp(prefix="dataprotection-lvm-")
        os.chmod(directory, 0o700)
        try:
            run_tool([_tool("mount"), "-t", fstype, "-o", options, device, directory], what="mount")
        except ToolError as exc:
            mapped = lvm_error(exc, "mounting snapshot", full)
            if isinstance(mapped, EngineError):
                mapped.hint = MOUNT_HINT
            raise mapped
    except BaseException as exc:
        if directory is not None:
            try:
                os.rmdir(directory)
            except OSError:
                pass
        problem = _release(full, None, activated)
        if problem and isinstance(exc, DataProtectionError):
            exc.message = "%s; %s" % (exc.message, problem)
        raise
    relative = record.get("data_dir_relative") or ""
    error = None
    try:
        yield os.path.join(directory, relative) if relative else directory
    except BaseException as exc:
        error = exc
        raise
    finally:
        problem = _release(full, directory, activated)
        if problem:
            if error is None:
                raise EngineError(problem, hint="The snapshot stays mounted until then; it cannot be removed while it is", left=directory)
            if isinstance(error, DataProtectionError):
                error.message = "%s; %s" % (error.message, problem)


# Restore ---------------------------------------------------------------------------------------------


def _restore_target(record, target):
    """The restore target as a dict: name, vg, size, mount_point.  A path alone (what the core passes) is a mount_point."""
    if isinstance(target, str):
        target = {"mount_point": target}
    if not isinstance(target, dict):
        raise ConfigError("an lvm restore target is a dict (name, vg, size, mount_point), got %r" % (target,))
    vg, snap = split_lv(record.get("id"), "lvm snapshot record id")
    name = target.get("name")
    if name is None:
        if target.get("mount_point") is None:
            raise ConfigError("an lvm restore needs the name of the new logical volume", hint="Set the target's name")
        name = "%s-restored" % snap
    new_vg = target.get("vg") or vg
    check_name(str(new_vg), "restore target vg")
    check_name(name, "restore target name", new_vg)
    point = target.get("mount_point")
    if point is not None:
        if not isinstance(point, str) or not os.path.isabs(point) or os.path.normpath(point) in ("/", "//"):
            raise ConfigError("restore target mount_point must be an absolute path below /, got %r" % (point,))
        point = os.path.normpath(point)
    return {"name": name, "vg": new_vg, "size": target.get("size"), "mount_point": point}


def _check_mount_point(point, force):
    """Whether the mount point must be made; refuse a mount point, a non-directory, or (without force) a non-empty one."""
    if point is None:
        return False
    if not os.path.lexists(point):
        return True
    if os.path.islink(point) or not os.path.isdir(point):
        raise ConfigError("restore target mount_point %s exists and is not a directory" % point, hint="Give a new or empty directory")
    if os.path.ismount(point):
        raise ConfigError("restore target mount_point %s is already a mount point" % point, hint="Unmount it, or give another directory")
    entries = sorted(os.listdir(point))
    if entries and not force:
        raise ConfigError("restore target mount_point %s is not empty: it holds %d entries (%s)" % (point, len(entries), ", ".join(entries[:5])),
                          hint="Give a new or empty directory, or set force: true to mount over its contents (they are hidden, not removed)")
    return False


def _uuid_commands(fstype, device):
    """The commands that give a copy its own file system UUID, so it can be mounted beside the original."""
    if fstype == "xfs":
        return [[_tool("xfs_admin"), "-U", "generate", device]]
    if fstype in EXT_FAMILY:
        # tune2fs -U on a metadata_csum file system wants a freshly checked one.
        return [[_tool("e2fsck"), "-f", "-p", device], [_tool("tune2fs"), "-U", "random", device]]
    return []


def _run_step(argv):
    name = os.path.basename(argv[0])
    try:
        run_tool(argv, timeout=None, what=name)
    except ToolError as exc:
        # e2fsck: 1 = errors corrected, 2 = corrected, reboot (only for a mounted root): the copy is fine.
        if name == "e2fsck" and (exc.details or {}).get("returncode") in (1, 2):
            return
        if name in ("lvcreate", "lvchange"):
            raise lvm_error(exc, "restoring: %s" % name)
        raise EngineError("restoring: %s failed: %s" % (name, exc.message), hint=RESTORE_HINTS.get(name, RESTORE_HINTS["dd"]))


def restore(record, target, check_mode=False, force=False, **options):  # pylint: disable=unused-argument
    """Make a new logical volume from the record's snapshot (mounted at mount_point when given); return what was (or would be) made."""
    vg, snap = _record_names(record)
    _require_root("restoring an lvm snapshot")
    wanted = _restore_target(record, target)
    thin = bool(record.get("thin"))
    fstype = record.get("fstype") or ""
    for name in ("lvs", "lvcreate", "lvremove", "lvchange", "mount", "umount") + (() if thin else ("vgs", "dd")):
        _tool(name)
    full = "%s/%s" % (vg, snap)
    rows = lvs(vg)
    row = _find(rows, vg, snap)
    if row is None:
        raise EngineError("snapshot %s no longer exists" % full, hint="Restore this backup from the repository, if it was streamed")
    _verify(record, row)
    _usable(record, row)
    new_vg, new_name = wanted["vg"], wanted["name"]
    new = "%s/%s" % (new_vg, new_name)
    device = "/dev/%s/%s" % (new_vg, new_name)
    if thin and new_vg != vg:
        raise ConfigError("a thin snapshot restores into its own thin pool, in volume group %s, not %s" % (vg, new_vg),
                          hint="Leave the target's vg unset")
    if thin and wanted["size"] is not None:
        raise ConfigError("a thin restore is a thin snapshot of the snapshot: it has the origin's size and takes no size",
                          hint="Remove the target's size")
    target_rows = rows if new_vg == vg else lvs(new_vg)
    if _find(target_rows, new_vg, new_name) is not None:
        raise ConfigError("logical volume %s already exists" % new,
                          hint="Choose another name, or remove it first (lvremove %s) if nothing needs it" % new)
    make_point = _check_mount_point(wanted["mount_point"], force)
    tag = "%s=%s" % (RESTORE_TAG, sanitize_tag(full))
    commands = []
    size = None
    if thin:
        commands.append([_tool("lvcreate"), "--snapshot", "--name", new_name, "--activate", "y", "--ignoreactivationskip",
                         "--setactivationskip", "n", "--addtag", tag, full])
    else:
        origin_size = record.get("origin_size") or 0
        if not origin_size and wanted["size"] is None:
            raise ConfigError("the record of %s does not say the size of its origin" % full,
                              hint="Give the target's size, at least the origin's (lvs shows it)")
        size = origin_size
        if wanted["size"] is not None:
            parsed = parse_size(wanted["size"])
            if parsed[2] != "bytes":
                raise ConfigError("the target's size must be absolute (like 60G), got %r" % (wanted["size"],))
            size = parsed[3]
        if not size or size < origin_size:
            raise ConfigError("the target's size %s is smaller than the snapshot's origin, %d bytes (%s)" % (wanted["size"], origin_size, _human(origin_size)),
                              hint="Leave the size unset to use the origin's size, or give a larger one")
        group = vgs(new_vg)
        extent = group["extent_size"] or 1
        if _ceil_div(size, extent) > (group["free_count"] if group["free_count"] is not None else (group["free"] or 0) // extent):
            raise ConfigError("volume group %s has %d bytes (%s) free; the restored volume needs %d bytes (%s)"
                              % (new_vg, group["free"] or 0, _human(group["free"] or 0), size, _human(size)),
                              hint="Free space in %s, or restore into another volume group (the target's vg)" % new_vg)
        commands.append([_tool("lvcreate"), "--name", new_name, "-L", "%db" % size, "--wipesignatures", "n", "--zero", "n",
                         "--addtag", tag, new_vg])
        if not row["active"]:
            commands.append([_tool("lvchange"), "-ay", "-K", full])
        commands.append([_tool("dd"), "if=%s" % (row["dm_path"] or "/dev/%s" % full), "of=%s" % device, "bs=4M", "conv=fsync", "status=none"])
        if not row["active"]:
            commands.append([_tool("lvchange"), "-an", full])
    commands.extend(_uuid_commands(fstype, device))
    if wanted["mount_point"] is not None:
        commands.append([_tool("mount"), "-t", fstype or "auto", device, wanted["mount_point"]])
    relative = record.get("data_dir_relative") or ""
    point = wanted["mount_point"]
    result = {
        "logical_volume": new,
        "device": device,
        "from": full,
        "thin": thin,
        "size": size,
        "mounted_at": point,
        "path": point,
        "data_dir": (os.path.join(point, relative) if relative else point) if point else None,
        "commands": [_shell(argv) for argv in commands],
        "warnings": [] if _uuid_commands(fstype, device) else [
            "the %s file system of %s keeps the UUID of the original" % (fstype or "unknown", new)],
    }
    if check_mode:
        return result
    created = False
    made_point = False
    try:
        for argv in commands:
            if os.path.basename(argv[0]) == "mount" and make_point:
                hostfiles.make_dirs(point)
                made_point = True
            _run_step(argv)
            if os.path.basename(argv[0]) == "lvcreate":
                created = True
    except BaseException as exc:
        problems = []
        if not thin and not row["active"]:
            try:
                run_tool([_tool("lvchange"), "-an", full], what="lvchange")
            except (ToolError, DataProtectionError):
                pass
        if created:
            problem = _remove_quietly(new)
            if problem:
                problems.append("the new volume %s could not be removed either: %s" % (new, problem))
        if made_point:
            try:
                os.rmdir(point)
            except OSError:
                pass
        if problems:
            message = getattr(exc, "message", None) or str(exc) or exc.__class__.__name__
            raise EngineError("%s; %s" % (message, "; ".join(problems)), hint="It is left behind: remove it with lvremove -f %s" % new, left=new)
        raise
    return result


def remove_restored(result, **options):  # pylint: disable=unused-argument
    """Undo a restore: unmount and remove the volume it made (only one carrying the restore tag).  None when done, else a sentence."""
    try:
        vg, name = split_lv(result.get("logical_volume"), "restored logical_volume")
        if result.get("mounted_at"):
            run_tool([_tool("umount"), result["mounted_at"]], what="umount")
        row = _find(lvs(vg), vg, name)
        if row is None:
            return None
        if not any(tag.startswith(RESTORE_TAG + "=") for tag in row["tags"]):
            return "%s/%s does not carry the tag %s of a restore; it was left alone" % (vg, name, RESTORE_TAG)
        run_tool([_tool("lvremove"), "-f", "%s/%s" % (vg, name)], what="lvremove")
    except (ToolError, DataProtectionError) as exc:
        return getattr(exc, "message", None) or str(exc)
    return None
