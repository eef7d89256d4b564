# -*- coding: utf-8 -*-
# Copyright: contributors to the dataprotection.databases collection
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Snapshot provider btrfs on a real btrfs (a loop device, as root): the plan's refusals, read-only snapshots
that keep the moment they were taken, deletion that never touches another subvolume, and restores into new
writable subvolumes."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import errno
import os

import pytest

from harness.loopfs import btrfs_fs, other_fs  # noqa: F401  pylint: disable=unused-import

from ansible_collections.dataprotection.databases.plugins.module_utils import tools
from ansible_collections.dataprotection.databases.plugins.module_utils.errors import ConfigError, EngineError, MissingDependency, ToolError
from ansible_collections.dataprotection.databases.plugins.module_utils.snapshots import btrfs
from ansible_collections.dataprotection.databases.plugins.module_utils.timeutil import parse_time, utcnow

BACKUP_ID = "main-volume-snapshot-20261125100000"


def write(path, text):
    with open(path, "w") as handle:
        handle.write(text)


def read(path):
    with open(path) as handle:
        return handle.read()


def subvolume_show(path):
    """``btrfs subvolume show`` read here, independently of the provider's parser."""
    out, _err = tools.run(["btrfs", "subvolume", "show", path])
    fields = dict(line.strip().split(":", 1) for line in out.splitlines()[1:] if ":" in line and not line.strip().startswith("Snapshot"))
    return dict((key.strip(), value.strip()) for key, value in fields.items())


def ro_property(path):
    out, _err = tools.run(["btrfs", "property", "get", "-ts", path, "ro"])
    return out.strip()


def database(fs):
    """A subvolume ``data`` holding a data directory ``pg`` with two files; returns (subvolume, data_dir)."""
    subvolume = fs.subvolume("data")
    data_dir = os.path.join(subvolume, "pg")
    os.makedirs(os.path.join(data_dir, "base"))
    write(os.path.join(data_dir, "PG_VERSION"), "16\n")
    write(os.path.join(data_dir, "base", "table"), "row 1\n")
    return subvolume, data_dir


def snapshot(fs, backup_id=BACKUP_ID, labels=None):
    subvolume, data_dir = database(fs)
    plan = btrfs.plan({}, data_dir=data_dir)
    records = btrfs.create(plan, backup_id, labels=labels)
    return subvolume, data_dir, records[0]


# plan


def test_plan_defaults_to_the_subvolume_holding_data_dir(btrfs_fs):
    subvolume, data_dir = database(btrfs_fs)
    plan = btrfs.plan({}, data_dir=data_dir)
    assert plan == {
        "provider": "btrfs",
        "subvolume": subvolume,
        "snapshot_dir": btrfs_fs.path(".dataprotection-snapshots"),
        "data_dir_relative": "pg",
        "filesystem_uuid": btrfs_fs.filesystem_uuid(),
    }
    assert not os.path.exists(plan["snapshot_dir"])


def test_plan_with_data_dir_at_the_subvolume_root_and_explicit_paths(btrfs_fs):
    subvolume = btrfs_fs.subvolume("srv/data")
    os.mkdir(btrfs_fs.path("snaps"))
    plan = btrfs.plan({"subvolume": subvolume + "/", "snapshot_dir": btrfs_fs.path("snaps", "pg", "new")}, data_dir=subvolume)
    assert plan == {
        "provider": "btrfs",
        "subvolume": subvolume,
        "snapshot_dir": btrfs_fs.path("snaps", "pg", "new"),
        "data_dir_relative": "",
        "filesystem_uuid": btrfs_fs.filesystem_uuid(),
    }


def test_plan_default_picks_a_nested_subvolume_that_holds_data_dir(btrfs_fs):
    btrfs_fs.subvolume("data")
    nested = btrfs_fs.subvolume("data/nested")
    os.mkdir(os.path.join(nested, "pg"))
    plan = btrfs.plan(None, data_dir=os.path.join(nested, "pg"))
    assert (plan["subvolume"], plan["snapshot_dir"], plan["data_dir_relative"]) == (
        nested, btrfs_fs.path("data", ".dataprotection-snapshots"), "pg")


def test_plan_refuses_a_path_not_on_btrfs(other_fs):
    os.mkdir(other_fs.path("pg"))
    with pytest.raises(ConfigError) as caught:
        btrfs.plan({}, data_dir=other_fs.path("pg"))
    assert caught.value.message == "%s is on a tmpfs file system (mounted at %s), not on btrfs" % (other_fs.path("pg"), other_fs.mount)
    assert "needs the data on a btrfs subvolume" in caught.value.hint


def test_plan_refuses_a_subvolume_that_is_not_a_subvolume_root(btrfs_fs):
    subvolume, data_dir = database(btrfs_fs)
    with pytest.raises(ConfigError) as caught:
        btrfs.plan({"subvolume": data_dir}, data_dir=data_dir)
    assert caught.value.message == "snapshot.subvolume %s is not the root of a btrfs subvolume" % data_dir
    assert caught.value.hint.startswith("Give the path of the subvolume itself")
    assert btrfs.plan({"subvolume": subvolume}, data_dir=data_dir)["subvolume"] == subvolume


def test_plan_refuses_data_dir_outside_the_subvolume(btrfs_fs):
    subvolume, _data_dir = database(btrfs_fs)
    elsewhere = btrfs_fs.path("elsewhere")
    os.mkdir(elsewhere)
    with pytest.raises(ConfigError) as caught:
        btrfs.plan({"subvolume": subvolume}, data_dir=elsewhere)
    assert caught.value.message == "data_dir %s is not inside snapshot.subvolume %s" % (elsewhere, subvolume)
    assert caught.value.hint.startswith("Set snapshot.subvolume to the subvolume that holds data_dir")


def test_plan_refuses_data_dir_inside_a_nested_subvolume(btrfs_fs):
    subvolume = btrfs_fs.subvolume("data")
    nested = btrfs_fs.subvolume("data/lib/nested")
    os.mkdir(os.path.join(nested, "pg"))
    with pytest.raises(ConfigError) as caught:
        btrfs.plan({"subvolume": subvolume}, data_dir=os.path.join(nested, "pg"))
    assert caught.value.message == "data_dir %s is not part of a snapshot of %s: %s is a nested btrfs subvolume" % (
        os.path.join(nested, "pg"), subvolume, nested)
    assert "set snapshot.subvolume to %s" % nested in caught.value.hint


def test_plan_refuses_a_nested_subvolume_or_mount_below_data_dir(btrfs_fs, other_fs):
    subvolume, data_dir = database(btrfs_fs)
    wal = btrfs_fs.subvolume("data/pg/pg_wal")
    with pytest.raises(ConfigError) as caught:
        btrfs.plan({}, data_dir=data_dir)
    assert caught.value.message == "a snapshot of %s would miss part of data_dir %s: %s is a nested btrfs subvolume" % (subvolume, data_dir, wal)
    assert caught.value.hint.startswith("Nested subvolumes and mounts are not part of a snapshot")
    tools.run(["btrfs", "subvolume", "delete", wal])
    assert btrfs.plan({}, data_dir=data_dir)["subvolume"] == subvolume
    # A symbolic link to another file system is not followed: it is part of the snapshot as a link.
    os.symlink(other_fs.mount, os.path.join(data_dir, "pg_tblspc"))
    assert btrfs.plan({}, data_dir=data_dir)["subvolume"] == subvolume


def test_plan_refuses_a_snapshot_dir_on_another_file_system(btrfs_fs, other_fs):
    subvolume, data_dir = database(btrfs_fs)
    wanted = other_fs.path("snapshots", "pg")
    with pytest.raises(ConfigError) as caught:
        btrfs.plan({"snapshot_dir": wanted}, data_dir=data_dir)
    assert caught.value.message == "snapshot_dir %s is on a tmpfs file system (mounted at %s), not on the btrfs file system of %s" % (
        wanted, other_fs.mount, subvolume)
    assert caught.value.hint.startswith("Snapshots cannot cross file systems")
    assert os.listdir(other_fs.mount) == []


def test_plan_refuses_a_snapshot_dir_inside_data_dir(btrfs_fs):
    _subvolume, data_dir = database(btrfs_fs)
    with pytest.raises(ConfigError) as caught:
        btrfs.plan({"snapshot_dir": os.path.join(data_dir, "snaps")}, data_dir=data_dir)
    assert caught.value.message == "snapshot_dir %s lies inside data_dir %s" % (os.path.join(data_dir, "snaps"), data_dir)


def test_plan_refuses_when_the_btrfs_tool_is_missing(btrfs_fs, monkeypatch):
    _subvolume, data_dir = database(btrfs_fs)
    real_find_tool = tools.find_tool

    def find_tool(name, extra_dirs=(), package=None, required=True):
        if name == "btrfs":
            # What find_tool raises for a tool found nowhere.
            raise MissingDependency("the tool %s is not installed on this host" % name, hint="Install %s on the host that runs the task" % (package or name))
        return real_find_tool(name, extra_dirs, package, required)

    monkeypatch.setattr(tools, "find_tool", find_tool)
    with pytest.raises(MissingDependency) as caught:
        btrfs.plan({}, data_dir=data_dir)
    assert caught.value.message == "the tool btrfs is not installed on this host"
    assert caught.value.hint == "Install btrfs-progs on the host that runs the task"


# create, exists, delete


def test_create_takes_a_read_only_snapshot_of_that_moment(btrfs_fs):
    before = utcnow().replace(microsecond=0)
    subvolume, data_dir, record = snapshot(btrfs_fs, labels={"cluster": "main"})
    after = utcnow()
    path = btrfs_fs.path(".dataprotection-snapshots", BACKUP_ID)
    shown = subvolume_show(path)
    assert record == {
        "provider": "btrfs",
        "id": path,
        "source": subvolume,
        "data_dir_relative": "pg",
        "uuid": shown["UUID"],
        "created": record["created"],
        "labels": {"cluster": "main"},
    }
    assert before <= parse_time(record["created"]) <= after
    assert shown["Parent UUID"] == subvolume_show(subvolume)["UUID"]
    assert ro_property(path) == "ro=true"
    assert oct(os.stat(btrfs_fs.path(".dataprotection-snapshots")).st_mode & 0o777) == "0o700"
    assert btrfs_fs.subvolumes() == [".dataprotection-snapshots/" + BACKUP_ID, "data"]

    # Later writes to the source do not reach the snapshot.
    write(os.path.join(data_dir, "base", "table"), "row 1\nrow 2\n")
    write(os.path.join(data_dir, "postmaster.pid"), "123\n")
    tree = btrfs.tree(record)
    assert tree == os.path.join(path, "pg")
    assert sorted(os.listdir(tree)) == ["PG_VERSION", "base"]
    assert read(os.path.join(tree, "base", "table")) == "row 1\n"
    assert read(os.path.join(tree, "PG_VERSION")) == "16\n"

    with pytest.raises(OSError) as caught:
        write(os.path.join(tree, "PG_VERSION"), "17\n")
    assert caught.value.errno == errno.EROFS
    assert read(os.path.join(tree, "PG_VERSION")) == "16\n"
    assert btrfs.exists(record) is True


def test_create_refuses_an_existing_destination(btrfs_fs):
    _subvolume, data_dir, record = snapshot(btrfs_fs)
    plan = btrfs.plan({}, data_dir=data_dir)
    with pytest.raises(EngineError) as caught:
        btrfs.create(plan, BACKUP_ID)
    assert caught.value.message == "snapshot %s already exists" % record["id"]
    assert subvolume_show(record["id"])["UUID"] == record["uuid"]
    assert btrfs_fs.subvolumes() == [".dataprotection-snapshots/" + BACKUP_ID, "data"]


def test_create_refuses_a_backup_id_that_is_not_a_plain_name(btrfs_fs):
    _subvolume, data_dir = database(btrfs_fs)
    plan = btrfs.plan({}, data_dir=data_dir)
    for backup_id in ("../escape", "", ".hidden", "a/b"):
        with pytest.raises(ConfigError):
            btrfs.create(plan, backup_id)
    assert btrfs_fs.subvolumes() == ["data"]


def test_create_deletes_the_snapshot_when_reading_its_uuid_fails(btrfs_fs, monkeypatch):
    _subvolume, data_dir = database(btrfs_fs)
    plan = btrfs.plan({}, data_dir=data_dir)
    made = []

    def failing_show(path, timeout=None):
        made.append((path, os.path.isdir(os.path.join(path, "pg"))))
        raise ToolError("btrfs subvolume show failed (exit 1): ERROR: injected")

    monkeypatch.setattr(btrfs, "subvolume_show", failing_show)
    with pytest.raises(ToolError) as caught:
        btrfs.create(plan, BACKUP_ID)
    assert caught.value.message == "btrfs subvolume show failed (exit 1): ERROR: injected"
    # The snapshot had been made, and is gone again.
    assert made == [(btrfs_fs.path(".dataprotection-snapshots", BACKUP_ID), True)]
    assert not os.path.lexists(made[0][0])
    assert btrfs_fs.subvolumes() == ["data"]


def test_delete_is_idempotent(btrfs_fs):
    _subvolume, _data_dir, record = snapshot(btrfs_fs)
    assert btrfs.delete(record) is True
    assert not os.path.lexists(record["id"])
    assert btrfs_fs.subvolumes() == ["data"]
    assert btrfs.exists(record) is False
    assert btrfs.delete(record) is False


def test_delete_refuses_anything_but_the_records_read_only_snapshot(btrfs_fs):
    subvolume, _data_dir, record = snapshot(btrfs_fs)
    other = dict(record, uuid="00000000-1111-2222-3333-444444444444")
    with pytest.raises(EngineError) as caught:
        btrfs.delete(other)
    assert caught.value.message == "the subvolume at %s has UUID %s, not %s as the record says" % (record["id"], record["uuid"], other["uuid"])
    with pytest.raises(EngineError):
        btrfs.exists(other)

    # A writable subvolume with the record's UUID (the live source) is not a snapshot.
    live = dict(record, id=subvolume, uuid=subvolume_show(subvolume)["UUID"])
    with pytest.raises(EngineError) as caught:
        btrfs.delete(live)
    assert caught.value.message == "the subvolume at %s is writable, not a read-only snapshot" % subvolume

    # A plain directory at the record's path.
    plain = dict(record, id=os.path.join(subvolume, "pg"))
    with pytest.raises(EngineError) as caught:
        btrfs.delete(plain)
    assert caught.value.message == "%s is not a btrfs subvolume, so it is not the snapshot %s of the record" % (plain["id"], record["uuid"])

    assert btrfs_fs.subvolumes() == [".dataprotection-snapshots/" + BACKUP_ID, "data"]
    assert sorted(os.listdir(os.path.join(subvolume, "pg"))) == ["PG_VERSION", "base"]
    assert btrfs.delete(record) is True


# restore


def test_restore_makes_a_writable_subvolume_with_the_snapshot_data(btrfs_fs):
    _subvolume, data_dir, record = snapshot(btrfs_fs)
    write(os.path.join(data_dir, "base", "table"), "changed after the snapshot\n")
    target = btrfs_fs.path("restored", "data")
    result = btrfs.restore(record, target)
    assert result == {"path": target, "data_dir": os.path.join(target, "pg"), "from": record["id"], "replaced": None}
    assert read(os.path.join(target, "pg", "base", "table")) == "row 1\n"
    assert read(os.path.join(target, "pg", "PG_VERSION")) == "16\n"
    assert os.stat(target).st_ino == 256
    assert ro_property(target) == "ro=false"
    assert subvolume_show(target)["Parent UUID"] == record["uuid"]
    write(os.path.join(target, "pg", "PG_VERSION"), "17\n")
    assert read(os.path.join(btrfs.tree(record), "PG_VERSION")) == "16\n"
    assert btrfs_fs.subvolumes() == [".dataprotection-snapshots/" + BACKUP_ID, "data", "restored/data"]


def test_restore_into_an_empty_directory(btrfs_fs):
    _subvolume, _data_dir, record = snapshot(btrfs_fs)
    target = btrfs_fs.path("empty")
    os.mkdir(target)
    result = btrfs.restore(record, target)
    assert result["replaced"] == "empty directory"
    assert sorted(os.listdir(os.path.join(target, "pg"))) == ["PG_VERSION", "base"]
    assert os.stat(target).st_ino == 256


def test_restore_refuses_a_non_empty_target(btrfs_fs):
    _subvolume, _data_dir, record = snapshot(btrfs_fs)
    target = btrfs_fs.path("busy")
    os.mkdir(target)
    write(os.path.join(target, "keep"), "mine\n")
    with pytest.raises(ConfigError) as caught:
        btrfs.restore(record, target)
    assert caught.value.message == "restore target %s is not empty: it holds 1 entries (keep)" % target
    assert caught.value.hint == "Restore to a new or empty path; force replaces only a subvolume, not a plain directory"
    with pytest.raises(ConfigError) as caught:
        btrfs.restore(record, target, force=True)
    assert caught.value.message.startswith("restore target %s is a non-empty plain directory, which cannot be replaced" % target)
    assert os.listdir(target) == ["keep"]
    assert read(os.path.join(target, "keep")) == "mine\n"


def test_restore_with_force_replaces_a_writable_subvolume_only(btrfs_fs):
    _subvolume, _data_dir, record = snapshot(btrfs_fs)
    target = btrfs_fs.subvolume("old")
    write(os.path.join(target, "stale"), "old\n")
    with pytest.raises(ConfigError) as caught:
        btrfs.restore(record, target)
    assert caught.value.message == "restore target %s is not empty: it holds 1 entries (stale)" % target
    old_uuid = subvolume_show(target)["UUID"]
    result = btrfs.restore(record, target, force=True)
    assert result["replaced"] == "subvolume"
    assert sorted(os.listdir(target)) == ["pg"]
    assert subvolume_show(target)["UUID"] != old_uuid

    # Another backup's read-only snapshot is never replaced, not even with force.
    second = btrfs.create(btrfs.plan({}, data_dir=btrfs_fs.path("data", "pg")), "second")[0]
    with pytest.raises(ConfigError) as caught:
        btrfs.restore(record, second["id"], force=True)
    assert caught.value.message == "restore target %s is a read-only subvolume, maybe another backup's snapshot" % second["id"]
    assert btrfs.exists(second) is True
    with pytest.raises(ConfigError) as caught:
        btrfs.restore(record, record["id"], force=True)
    assert caught.value.message == "restore target %s overlaps the snapshot %s" % (record["id"], record["id"])
    assert btrfs.exists(record) is True


def test_restore_refuses_a_target_on_another_file_system(btrfs_fs, other_fs):
    _subvolume, _data_dir, record = snapshot(btrfs_fs)
    target = other_fs.path("restored")
    with pytest.raises(ConfigError) as caught:
        btrfs.restore(record, target)
    assert caught.value.message == "restore target %s is on a tmpfs file system (mounted at %s), not on the btrfs file system of the snapshot %s" % (
        target, other_fs.mount, record["id"])
    assert caught.value.hint.startswith("A snapshot restores instantly only on its own file system")
    assert os.listdir(other_fs.mount) == []


def test_restore_check_mode_changes_nothing(btrfs_fs):
    _subvolume, _data_dir, record = snapshot(btrfs_fs)
    new = btrfs_fs.path("new", "data")
    assert btrfs.restore(record, new, check_mode=True) == {
        "path": new, "data_dir": os.path.join(new, "pg"), "from": record["id"], "replaced": None}
    assert not os.path.lexists(btrfs_fs.path("new"))

    empty = btrfs_fs.path("empty")
    os.mkdir(empty)
    assert btrfs.restore(record, empty, check_mode=True)["replaced"] == "empty directory"
    assert os.listdir(empty) == [] and os.stat(empty).st_ino != 256

    old = btrfs_fs.subvolume("old")
    write(os.path.join(old, "stale"), "old\n")
    assert btrfs.restore(record, old, check_mode=True, force=True)["replaced"] == "subvolume"
    assert read(os.path.join(old, "stale")) == "old\n"
    assert btrfs_fs.subvolumes() == [".dataprotection-snapshots/" + BACKUP_ID, "data", "old"]

    with pytest.raises(ConfigError):
        btrfs.restore(record, old, check_mode=True)


def test_restore_of_a_deleted_snapshot_is_refused(btrfs_fs):
    _subvolume, _data_dir, record = snapshot(btrfs_fs)
    assert btrfs.delete(record) is True
    with pytest.raises(EngineError) as caught:
        btrfs.restore(record, btrfs_fs.path("restored"))
    assert caught.value.message == "snapshot %s no longer exists" % record["id"]
    assert caught.value.hint == "Restore this backup from the repository instead"
    assert not os.path.lexists(btrfs_fs.path("restored"))
