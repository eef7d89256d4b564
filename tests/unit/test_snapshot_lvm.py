# -*- coding: utf-8 -*-
# Copyright: contributors to the dataprotection.databases collection
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Snapshot provider lvm through a fake host: the exact command lines it runs, and its parsing of lvs, vgs and findmnt output.

No logical volume was snapshotted for these tests: device-mapper does not work on the test machine
(``/dev/mapper/control: open failed: No such device``), so lvcreate cannot make or activate anything,
and these tests must not touch the host's disks anyway.  Every command goes through ``lvm.run_tool``,
which the ``host`` fixture replaces with a fake that records the argv lists and answers from the
files in ``fixtures/lvm`` (see its README: what was captured from lvm2 2.03.16 here, what was
written by hand in that format).  What only a real LVM can show is not tested here: that lvcreate
accepts these command lines, that the snapshot holds the moment it was taken, mount options on a
real snapshot, the dd copy and the UUID tools on real file systems.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json
import os
import stat
import tempfile

import pytest

from ansible_collections.dataprotection.databases.plugins.module_utils import tools
from ansible_collections.dataprotection.databases.plugins.module_utils.errors import ConfigError, EngineError, MissingDependency, ToolError
from ansible_collections.dataprotection.databases.plugins.module_utils.snapshots import lvm
from ansible_collections.dataprotection.databases.plugins.module_utils.timeutil import parse_time, utcnow

FIXTURES = os.path.join(os.path.dirname(os.path.abspath(__file__)), "fixtures", "lvm")
REAL_DIRECTORY = lvm.real_directory
BACKUP_ID = "main-volume-snapshot-20261125100000"
SNAP = "pgdata-dp-" + BACKUP_ID
TSNAP = "mysql-dp-" + BACKUP_ID
PG_DIR = "/var/lib/postgresql/16/main"
MY_DIR = "/var/lib/mysql"
PG_UUID = "TeKdNn-FRIB-XuDL-7Dxt-pYlS-XpfK-tHF4vU"
SNAP_UUID = "FdnXsi-Vpzz-63Ff-kCzJ-r4i0-B3Jr-TAwR4y"
MY_UUID = "De1f8r-ESQe-dUSt-PKR0-CsTy-4Qwb-8DwkNh"
TSNAP_UUID = "9ojflj-oQoa-F1Ll-qsaj-AIxN-Ku8i-S2G8NP"
GIB = 1024 ** 3

# The command lines, spelled out here (not taken from the module) so that a change to them shows.
LV_COLUMNS = ("lv_name,vg_name,lv_uuid,lv_attr,lv_size,origin,pool_lv,lv_path,lv_dm_path,lv_kernel_major,lv_kernel_minor,"
              "data_percent,snap_percent,metadata_percent,lv_tags,lv_layout,lv_role,lv_time,lv_active")
LVS_ALL = ["/usr/sbin/lvs", "--reportformat", "json", "--units", "b", "--nosuffix", "-o", LV_COLUMNS]
LVS_VG0 = LVS_ALL + ["vg0"]
VGS_VG0 = ["/usr/sbin/vgs", "--reportformat", "json", "--units", "b", "--nosuffix", "-o",
           "vg_name,vg_size,vg_free,vg_extent_size,vg_extent_count,vg_free_count", "vg0"]
FINDMNT_LIST = ["/usr/sbin/findmnt", "-J", "--list", "--nofsroot", "-o", "SOURCE,TARGET,FSTYPE,OPTIONS,MAJ:MIN,FSROOT"]
TAG = "dataprotection.backup_id=" + BACKUP_ID
READ_TOOLS = ("lvs", "vgs", "findmnt")


def findmnt_target(path):
    return ["/usr/sbin/findmnt", "-J", "--nofsroot", "-o", "SOURCE,TARGET,FSTYPE,OPTIONS,MAJ:MIN,FSROOT", "--target", path]


def fixture(name):
    with open(os.path.join(FIXTURES, name)) as handle:
        return handle.read()


def tool_error(what, rc, stderr):
    """What tools.run raises for a tool that exits non-zero."""
    return ToolError("%s failed (exit %d): %s" % (what, rc, "\n".join(line.strip() for line in stderr.strip().splitlines())), returncode=rc)


class FakeHost(object):
    """Stands in for lvm.run_tool (and tools.find_tool): records every argv, answers from a table.

    ``answer(argv, *responses)`` answers that exact argv; ``answer_prefix`` any argv starting so (for
    the random mount directory).  A response is stdout text, a (stdout, stderr) tuple, an exception to
    raise, or a callable taking the argv.  Several responses are given in turn, the last one repeats.
    A command without an answer fails as an unknown command would.
    """

    def __init__(self):
        self.calls = []
        self.table = {}
        self.prefixes = []
        self.missing = set()

    def answer(self, argv, *responses):
        self.table[tuple(argv)] = list(responses)

    def answer_prefix(self, argv, *responses):
        self.prefixes.insert(0, (tuple(argv), list(responses)))

    def _queue(self, argv):
        if tuple(argv) in self.table:
            return self.table[tuple(argv)]
        for prefix, queue in self.prefixes:
            if tuple(argv[:len(prefix)]) == prefix:
                return queue
        return None

    def __call__(self, argv, timeout=None, what=None):
        self.calls.append(list(argv))
        queue = self._queue(argv)
        if not queue:
            raise ToolError("%s failed (exit 127): fake host: no answer for %s" % (what, " ".join(argv)), returncode=127)
        response = queue.pop(0) if len(queue) > 1 else queue[0]
        if isinstance(response, BaseException):
            raise response
        if callable(response):
            return response(argv)
        if isinstance(response, tuple):
            return response
        return response, ""

    def find_tool(self, name, extra_dirs=(), package=None, required=True):
        if name in self.missing:
            raise MissingDependency("the tool %s is not installed on this host" % name, hint="Install %s on the host that runs the task" % (package or name))
        return "/usr/sbin/%s" % name

    def tools_run(self):
        return [os.path.basename(argv[0]) for argv in self.calls]


@pytest.fixture
def host(monkeypatch, tmp_path):
    fake = FakeHost()
    monkeypatch.setattr(lvm, "run_tool", fake)
    monkeypatch.setattr(lvm, "euid", lambda: 0)
    # The fixture paths (/var/lib/postgresql/...) do not exist here: data directories resolve to themselves.
    monkeypatch.setattr(lvm, "real_directory", os.path.normpath)
    monkeypatch.setattr(tools, "find_tool", fake.find_tool)
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    return fake


def answer_pg_plan(host, lvs_file="lvs_all.json", vgs_file="vgs_vg0.json", findmnt_list="findmnt_list.json"):
    host.answer(findmnt_target(PG_DIR), fixture("findmnt_target_pgdata.json"))
    host.answer(LVS_ALL, fixture(lvs_file))
    host.answer(FINDMNT_LIST, fixture(findmnt_list))
    host.answer(VGS_VG0, fixture(vgs_file))


def answer_mysql_plan(host, lvs_text=None):
    host.answer(findmnt_target(MY_DIR), fixture("findmnt_target_mysql.json"))
    host.answer(LVS_ALL, lvs_text or fixture("lvs_all.json"))
    host.answer(FINDMNT_LIST, fixture("findmnt_list.json"))


def pg_plan(host, spec=None):
    answer_pg_plan(host)
    made = lvm.plan(spec or {"provider": "lvm", "size": "5G"}, data_dir=PG_DIR)
    host.calls[:] = []
    return made


def mysql_plan(host, spec=None):
    answer_mysql_plan(host)
    made = lvm.plan(spec or {"provider": "lvm"}, data_dir=MY_DIR)
    host.calls[:] = []
    return made


def thick_record(**changes):
    record = {
        "provider": "lvm", "id": "vg0/" + SNAP, "source": "vg0/pgdata", "vg": "vg0", "name": SNAP, "uuid": SNAP_UUID,
        "origin": "vg0/pgdata", "origin_uuid": PG_UUID, "thin": False, "size": 5 * GIB, "origin_size": 50 * GIB, "fstype": "xfs",
        "mount_options": "ro,nouuid", "data_dir_relative": "16/main", "created": "2026-11-25T10:00:01Z", "labels": {},
    }
    record.update(changes)
    return record


def thin_record(**changes):
    record = {
        "provider": "lvm", "id": "vg0/" + TSNAP, "source": "vg0/mysql", "vg": "vg0", "name": TSNAP, "uuid": TSNAP_UUID,
        "origin": "vg0/mysql", "origin_uuid": MY_UUID, "thin": True, "size": 40 * GIB, "origin_size": 40 * GIB, "fstype": "ext4",
        "mount_options": "ro", "data_dir_relative": "", "created": "2026-11-25T10:00:01Z", "labels": {},
    }
    record.update(changes)
    return record


# Parsing the captured formats


def by_name(rows):
    return dict((row["name"], row) for row in rows)


def test_parse_lvs_thick_origin_snapshot_thin_volume_and_pool():
    rows = by_name(lvm.parse_lvs(fixture("lvs_vg0_thick_snapshot.json")))
    assert sorted(rows) == ["mysql", "pg-wal", "pgdata", SNAP, "pool0", "root", "swap"]
    snap = rows[SNAP]
    assert snap == {
        "name": SNAP, "vg": "vg0", "uuid": SNAP_UUID, "attr": "swi-a-s---", "size": 5368709120, "origin": "pgdata", "pool": "",
        "path": "/dev/vg0/" + SNAP, "dm_path": "/dev/mapper/vg0-pgdata--dp--main--volume--snapshot--20261125100000",
        "majmin": "253:10", "data_percent": 0.01, "snap_percent": 0.01, "metadata_percent": None, "tags": [TAG],
        "layout": ["linear"], "role": ["public", "snapshot", "thicksnapshot"], "thin": False, "thick_snapshot": True, "pool_volume": False,
        "time": "2026-11-25 10:00:01 +0000", "active": True,
    }
    assert (rows["pgdata"]["attr"], rows["pgdata"]["thick_snapshot"], rows["pgdata"]["size"]) == ("owi-aos---", False, 53687091200)
    assert (rows["mysql"]["thin"], rows["mysql"]["pool"], rows["mysql"]["data_percent"], rows["mysql"]["majmin"]) == (True, "pool0", 37.52, "253:7")
    pool = rows["pool0"]
    assert (pool["pool_volume"], pool["thin"], pool["path"], pool["data_percent"], pool["metadata_percent"]) == (True, False, "", 41.27, 12.08)
    assert rows["pg-wal"]["dm_path"] == "/dev/mapper/vg0-pg--wal"


def test_parse_lvs_inactive_thin_snapshot_and_overflowed_snapshot():
    thin = by_name(lvm.parse_lvs(fixture("lvs_vg0_thin_snapshot.json")))[TSNAP]
    assert (thin["thin"], thin["active"], thin["majmin"], thin["data_percent"], thin["origin"], thin["attr"][9]) == (
        True, False, None, None, "mysql", "k")
    overflowed = by_name(lvm.parse_lvs(fixture("lvs_vg0_thick_overflowed.json")))[SNAP]
    assert (overflowed["attr"][4], overflowed["snap_percent"], overflowed["thick_snapshot"]) == ("I", 100.0, True)


def test_parse_captured_empty_reports():
    assert lvm.parse_lvs(fixture("lvs_none.json")) == []
    assert lvm.parse_vgs(fixture("vgs_none.json")) == []
    with pytest.raises(EngineError) as caught:
        lvm.parse_lvs("  Volume group \"vg0\" not found\n")
    assert caught.value.message.startswith("lvs printed no JSON report")


def test_parse_lvs_json_std_numbers_and_lists():
    """lvm2 2.03.17+ ``--reportformat json_std`` prints numbers and string lists as JSON types."""
    text = json.dumps({"report": [{"lv": [{
        "lv_name": "pgdata", "vg_name": "vg0", "lv_uuid": PG_UUID, "lv_attr": "-wi-ao----", "lv_size": 53687091200, "origin": "",
        "pool_lv": "", "lv_path": "/dev/vg0/pgdata", "lv_dm_path": "/dev/mapper/vg0-pgdata", "lv_kernel_major": 253, "lv_kernel_minor": 2,
        "data_percent": None, "snap_percent": None, "metadata_percent": None, "lv_tags": ["a=1", "b"], "lv_layout": ["linear"],
        "lv_role": ["public"], "lv_time": "2025-03-02 09:31:07 +0000", "lv_active": "active"}]}]})
    row = lvm.parse_lvs(text)[0]
    assert (row["size"], row["majmin"], row["tags"], row["data_percent"], row["active"]) == (53687091200, "253:2", ["a=1", "b"], None, True)


def test_parse_vgs_and_findmnt():
    assert lvm.parse_vgs(fixture("vgs_vg0.json")) == [{
        "name": "vg0", "size": 214744170496, "free": 94468308992, "extent_size": 4194304, "extent_count": 51199, "free_count": 22523}]
    mounts = lvm.parse_findmnt(fixture("findmnt_list_nested.json"))
    assert [m["target"] for m in mounts] == ["/", "/sys", "/proc", "/dev", "/run", "/boot", "/srv", "/var/lib/postgresql",
                                             "/var/lib/postgresql/16/main/pg_wal", "/var/lib/postgresql/16/main-replica", "/var/lib/mysql"]
    assert mounts[7] == {"source": "/dev/mapper/vg0-pgdata", "target": "/var/lib/postgresql", "fstype": "xfs",
                         "options": "rw,relatime,attr2,inode64,logbufs=8,logbsize=32k,noquota", "majmin": "253:2", "fsroot": "/"}
    # The tree form (findmnt without --list) nests children; a source may carry "[/dir]" when --nofsroot was not given.
    tree = json.dumps({"filesystems": [{"source": "/dev/sda1", "target": "/", "fstype": "ext4", "options": "rw", "maj:min": "8:1", "children": [
        {"source": "/dev/mapper/vg0-pgdata[/16]", "target": "/srv/pg", "fstype": "xfs", "options": "rw", "maj:min": "253:2"}]}]})
    assert [(m["source"], m["target"], m["fsroot"]) for m in lvm.parse_findmnt(tree)] == [("/dev/sda1", "/", "/"), ("/dev/mapper/vg0-pgdata", "/srv/pg", "/")]


def test_parse_size():
    assert lvm.parse_size("5G") == ("-L", "5G", "bytes", 5 * GIB)
    assert lvm.parse_size("512m") == ("-L", "512m", "bytes", 512 * 1024 * 1024)
    assert lvm.parse_size("1.5T") == ("-L", "1.5T", "bytes", 1536 * GIB)
    assert lvm.parse_size("10%ORIGIN") == ("-l", "10%ORIGIN", "ORIGIN", 10.0)
    assert lvm.parse_size("20%free") == ("-l", "20%FREE", "FREE", 20.0)
    for bad in ("512", "5GiB", "0G", "150%ORIGIN", "10%LV", "", None, True, "-5G"):
        with pytest.raises(ConfigError) as caught:
            lvm.parse_size(bad)
        assert caught.value.message.startswith("snapshot.size ")


def test_mount_options_defaults_are_read_only_without_skipping_the_journal():
    assert lvm.mount_options(None, "xfs") == "ro,nouuid"
    assert lvm.mount_options(None, "ext4") == "ro"
    assert lvm.mount_options(None, "f2fs") == "ro"
    assert lvm.mount_options("noatime,nouuid", "xfs") == "ro,noatime,nouuid"
    assert lvm.mount_options(["ro", "norecovery", "nouuid"], "xfs") == "ro,norecovery,nouuid"
    with pytest.raises(ConfigError) as caught:
        lvm.mount_options("rw,nouuid", "xfs")
    assert caught.value.message == "snapshot.mount_options 'rw,nouuid' asks for a read-write mount"


def test_names_and_tags():
    assert lvm.snapshot_name("{lv}-dp-{backup_id}", "vg0", "pgdata", "main volume@2026") == "pgdata-dp-main_volume_2026"
    assert lvm.sanitize_tag("main volume@2026/x") == "main_volume_2026/x"
    for bad in ("snapshot1", "pvmove0", "a_tdata", "-x", "..", "a" * 128, "a b"):
        with pytest.raises(ConfigError):
            lvm.check_name(bad, "name")
    assert lvm.check_name("pg.data+1_x-y", "name") == "pg.data+1_x-y"
    assert lvm.user_tags({"env": "prod"}) == ["env=prod"]
    assert lvm.user_tags(["owner:dba", "a/b#1"]) == ["owner:dba", "a/b#1"]
    for bad in (["has space"], ["@host"], ["dataprotection.backup_id=x"], "single"):
        with pytest.raises(ConfigError):
            lvm.user_tags(bad)


def test_lvm_error_maps_the_captured_stderr():
    not_root = lvm.lvm_error(tool_error("lvs", 5, fixture("lvs_not_root.stderr")), "listing logical volumes with lvs")
    assert isinstance(not_root, ConfigError)
    assert "permission denied: lvs failed (exit 5): WARNING: Running as a non-root user" in not_root.message
    assert not_root.hint == "Run the task as root (become: true)"
    missing = lvm.lvm_error(tool_error("lvs", 5, fixture("lvs_vg_not_found.stderr")), "listing logical volumes with lvs", "vg0")
    assert isinstance(missing, ConfigError)
    assert missing.message == 'listing logical volumes with lvs vg0: lvs failed (exit 5): Volume group "vg0" not found\nCannot process volume group vg0'
    snapshot_of_snapshot = lvm.lvm_error(tool_error("lvcreate", 5, "  Snapshots of snapshots are not supported."), "creating snapshot")
    assert isinstance(snapshot_of_snapshot, ConfigError) and "lvm2 cannot snapshot this volume" in snapshot_of_snapshot.message
    other = lvm.lvm_error(tool_error("lvcreate", 5, "  Internal error: something"), "creating snapshot", "vg0/x")
    assert isinstance(other, EngineError) and other.message == "creating snapshot vg0/x failed: lvcreate failed (exit 5): Internal error: something"


def test_real_directory_refuses_relative_and_missing_paths(tmp_path):
    with pytest.raises(ConfigError) as caught:
        REAL_DIRECTORY("var/lib/pg")
    assert caught.value.message == "data_dir must be an absolute path, got 'var/lib/pg'"
    with pytest.raises(ConfigError) as caught:
        REAL_DIRECTORY(str(tmp_path / "missing"))
    assert caught.value.message == "data_dir %s is not an existing directory" % (tmp_path / "missing")
    os.symlink(str(tmp_path), str(tmp_path / "link"))
    assert REAL_DIRECTORY(str(tmp_path / "link")) == os.path.realpath(str(tmp_path))


# plan


def test_plan_thick_finds_the_lv_holding_data_dir(host):
    answer_pg_plan(host)
    made = lvm.plan({"provider": "lvm", "size": "10%ORIGIN", "stream": True, "unknown": 1}, data_dir=PG_DIR)
    assert host.calls == [findmnt_target(PG_DIR), LVS_ALL, FINDMNT_LIST, VGS_VG0]
    assert made == {
        "provider": "lvm", "logical_volume": "vg0/pgdata", "vg": "vg0", "lv": "pgdata", "lv_uuid": PG_UUID, "lv_size": 50 * GIB,
        "thin": False, "pool": None, "size": "10%ORIGIN", "size_option": "-l", "size_bytes": 5 * GIB, "device": "/dev/mapper/vg0-pgdata",
        "fstype": "xfs", "mount_point": "/var/lib/postgresql", "data_dir": PG_DIR, "data_dir_relative": "16/main",
        "mount_options": "ro,nouuid", "snapshot_name": "{lv}-dp-{backup_id}", "tags": [], "warnings": [],
    }


def test_plan_thin_takes_no_size_and_checks_no_free_space(host):
    answer_mysql_plan(host)
    made = lvm.plan({"provider": "lvm", "logical_volume": "vg0/mysql", "tags": ["owner:dba"]}, data_dir=MY_DIR)
    assert host.calls == [findmnt_target(MY_DIR), LVS_ALL, FINDMNT_LIST]
    assert (made["thin"], made["pool"], made["size"], made["size_bytes"], made["fstype"], made["data_dir_relative"], made["mount_options"]) == (
        True, "pool0", None, None, "ext4", "", "ro")
    assert (made["tags"], made["warnings"]) == (["owner:dba"], [])


def test_plan_warns_about_a_nearly_full_thin_pool(host):
    answer_mysql_plan(host, fixture("lvs_all.json").replace('"data_percent":"41.27"', '"data_percent":"93.40"'))
    made = lvm.plan({"provider": "lvm"}, data_dir=MY_DIR)
    assert made["warnings"] == ["thin pool vg0/pool0 is 93.40% full (data): the snapshot shares its space, and writes fail when it is full"]


def test_plan_with_a_bind_mount_finds_the_directory_inside_the_file_system(host):
    host.answer(findmnt_target("/srv/pgbind/main"), fixture("findmnt_target_bind.json"))
    host.answer(LVS_ALL, fixture("lvs_all.json"))
    host.answer(FINDMNT_LIST, fixture("findmnt_list.json"))
    host.answer(VGS_VG0, fixture("vgs_vg0.json"))
    made = lvm.plan({"size": "5G"}, data_dir="/srv/pgbind/main")
    assert (made["logical_volume"], made["mount_point"], made["data_dir_relative"]) == ("vg0/pgdata", "/srv/pgbind", "16/main")


def test_plan_refuses_a_data_dir_on_a_plain_partition(host):
    host.answer(findmnt_target("/srv/redis"), fixture("findmnt_target_plain.json"))
    host.answer(LVS_ALL, fixture("lvs_all.json"))
    with pytest.raises(ConfigError) as caught:
        lvm.plan({"size": "5G"}, data_dir="/srv/redis")
    assert caught.value.message == "data_dir /srv/redis is on /dev/sda2 (ext4, mounted at /srv), which is not an LVM logical volume"
    assert caught.value.hint.startswith("Use the snapshot provider of the volume it is on")
    with pytest.raises(ConfigError) as caught:
        lvm.plan({"size": "5G", "logical_volume": "vg0/pgdata"}, data_dir="/srv/redis")
    assert caught.value.message == "data_dir /srv/redis is on /dev/sda2 (ext4, mounted at /srv), not on logical volume vg0/pgdata"
    assert set(host.tools_run()) == {"findmnt", "lvs"}


def test_plan_refuses_a_data_dir_on_another_lv_than_named(host):
    answer_mysql_plan(host)
    with pytest.raises(ConfigError) as caught:
        lvm.plan({"size": "5G", "logical_volume": "/dev/vg0/pgdata"}, data_dir=MY_DIR)
    assert caught.value.message == "data_dir /var/lib/mysql is on logical volume vg0/mysql, not on vg0/pgdata"
    assert caught.value.hint == "Set snapshot.logical_volume to vg0/mysql, or leave it unset to use the volume holding data_dir"
    with pytest.raises(ConfigError) as caught:
        lvm.plan({"logical_volume": "vg0/nothere"}, data_dir=MY_DIR)
    assert caught.value.message == "logical volume vg0/nothere not found"
    assert caught.value.hint == "lvs lists the logical volumes: vg0/mysql, vg0/pg-wal, vg0/pgdata, vg0/pool0, vg0/root, vg0/swap"
    with pytest.raises(ConfigError) as caught:
        lvm.plan({"logical_volume": "pgdata"}, data_dir=MY_DIR)
    assert caught.value.message == "snapshot.logical_volume must be vg/lv, got 'pgdata'"


def test_plan_refuses_a_mount_inside_data_dir(host):
    answer_pg_plan(host, findmnt_list="findmnt_list_nested.json")
    with pytest.raises(ConfigError) as caught:
        lvm.plan({"size": "5G"}, data_dir=PG_DIR)
    # main-replica is beside the data directory, not in it.
    assert caught.value.message == ("a snapshot of vg0/pgdata would miss part of data_dir /var/lib/postgresql/16/main: "
                                    "/var/lib/postgresql/16/main/pg_wal is the mount point of /dev/mapper/vg0-pg--wal")
    assert caught.value.hint.startswith("Mounts below data_dir are not part of the snapshot")
    assert host.calls == [findmnt_target(PG_DIR), LVS_ALL, FINDMNT_LIST]


def test_plan_refuses_too_little_free_space_with_the_numbers(host):
    answer_pg_plan(host, vgs_file="vgs_vg0_low.json")
    with pytest.raises(ConfigError) as caught:
        lvm.plan({"size": "5G"}, data_dir=PG_DIR)
    assert caught.value.message == "volume group vg0 has 1073741824 bytes (1.00 GiB) free; a snapshot of size 5G needs 5368709120 bytes (5.00 GiB)"
    assert caught.value.hint == "Free space in vg0 (vgextend, or remove an LV) or choose a smaller snapshot.size"
    with pytest.raises(ConfigError) as caught:
        lvm.plan({"size": "10%ORIGIN"}, data_dir=PG_DIR)
    assert caught.value.message.endswith("a snapshot of size 10%ORIGIN needs 5368709120 bytes (5.00 GiB)")
    # 1 GiB fits.
    assert lvm.plan({"size": "1G"}, data_dir=PG_DIR)["size_bytes"] == GIB


def test_plan_size_rules_for_thick_and_thin(host):
    answer_pg_plan(host)
    with pytest.raises(ConfigError) as caught:
        lvm.plan({}, data_dir=PG_DIR)
    assert caught.value.message.startswith("vg0/pgdata is a thick volume: its snapshot needs snapshot.size")
    answer_mysql_plan(host)
    with pytest.raises(ConfigError) as caught:
        lvm.plan({"size": "5G"}, data_dir=MY_DIR)
    assert caught.value.message.startswith("snapshot.size is for a thick (classic) snapshot, but vg0/mysql is a thin volume")
    assert "vgs" not in host.tools_run()


def test_plan_refuses_btrfs_on_lvm(host):
    answer_pg_plan(host)
    host.answer(findmnt_target(PG_DIR), fixture("findmnt_target_pgdata.json").replace('"xfs"', '"btrfs"'))
    with pytest.raises(ConfigError) as caught:
        lvm.plan({"size": "5G"}, data_dir=PG_DIR)
    assert "a block snapshot of a mounted btrfs has the same file system ID" in caught.value.message
    assert caught.value.hint == "Use snapshot.provider: btrfs, which snapshots the subvolume"


def test_plan_refuses_when_not_root(host, monkeypatch):
    monkeypatch.setattr(lvm, "euid", lambda: 1000)
    with pytest.raises(ConfigError) as caught:
        lvm.plan({"size": "5G"}, data_dir=PG_DIR)
    assert caught.value.message == "an lvm snapshot needs root: lvcreate, lvremove, lvchange and mount do (this process runs as uid 1000)"
    assert caught.value.hint == "Run the task as root (become: true)"
    assert host.calls == []


def test_plan_refuses_when_a_tool_is_missing(host):
    host.missing.add("lvcreate")
    with pytest.raises(MissingDependency) as caught:
        lvm.plan({"size": "5G"}, data_dir=PG_DIR)
    assert caught.value.message == "the tool lvcreate is not installed on this host"
    assert caught.value.hint == "Install lvm2 on the host that runs the task"
    assert host.calls == []


def test_plan_checks_the_name_pattern_and_tags(host):
    answer_pg_plan(host)
    with pytest.raises(ConfigError) as caught:
        lvm.plan({"size": "5G", "snapshot_name": "{lv}-backup"}, data_dir=PG_DIR)
    assert caught.value.message == "snapshot.snapshot_name '{lv}-backup' must contain {backup_id}"
    with pytest.raises(ConfigError):
        lvm.plan({"size": "5G", "tags": ["bad tag"]}, data_dir=PG_DIR)
    assert host.calls == []


# create


def test_create_thick_snapshot(host):
    made = pg_plan(host)
    lvcreate = ["/usr/sbin/lvcreate", "--snapshot", "--name", SNAP, "-L", "5G", "--addtag", TAG, "vg0/pgdata"]
    host.answer(LVS_VG0, fixture("lvs_all.json"), fixture("lvs_vg0_thick_snapshot.json"))
    host.answer(lvcreate, ("", '  Logical volume "%s" created.\n' % SNAP))
    seen_at_taken = []
    before = utcnow().replace(microsecond=0)
    records = lvm.create(made, BACKUP_ID, labels={"cluster": "main"}, taken=lambda: seen_at_taken.append(list(host.calls)))
    assert host.calls == [LVS_VG0, lvcreate, LVS_VG0]
    # The quiesce is released right after lvcreate, before the read-back.
    assert seen_at_taken == [[LVS_VG0, lvcreate]]
    assert records == [{
        "provider": "lvm", "id": "vg0/" + SNAP, "source": "vg0/pgdata", "vg": "vg0", "name": SNAP, "uuid": SNAP_UUID,
        "origin": "vg0/pgdata", "origin_uuid": PG_UUID, "thin": False, "size": 5 * GIB, "origin_size": 50 * GIB, "fstype": "xfs",
        "mount_options": "ro,nouuid", "data_dir_relative": "16/main", "created": records[0]["created"], "labels": {"cluster": "main"},
    }]
    assert before <= parse_time(records[0]["created"]) <= utcnow()


def test_create_thin_snapshot_with_tags_and_a_name_pattern(host):
    made = mysql_plan(host, {"tags": {"env": "prod"}, "snapshot_name": "{vg}-{lv}-{backup_id}"})
    name = "vg0-mysql-" + BACKUP_ID
    lvcreate = ["/usr/sbin/lvcreate", "--snapshot", "--name", name, "--setactivationskip", "y", "--addtag", TAG, "--addtag", "env=prod", "vg0/mysql"]
    host.answer(LVS_VG0, fixture("lvs_all.json"), fixture("lvs_vg0_thin_snapshot.json").replace(TSNAP, name))
    host.answer(lvcreate, "")
    records = lvm.create(made, BACKUP_ID)
    assert host.calls == [LVS_VG0, lvcreate, LVS_VG0]
    assert (records[0]["id"], records[0]["uuid"], records[0]["thin"], records[0]["size"], records[0]["origin"]) == (
        "vg0/" + name, TSNAP_UUID, True, 40 * GIB, "vg0/mysql")


def test_create_sanitizes_the_backup_id_for_the_tag_and_name(host):
    made = pg_plan(host)
    odd = "main volume@2026"
    name = "pgdata-dp-main_volume_2026"
    lvcreate = ["/usr/sbin/lvcreate", "--snapshot", "--name", name, "-L", "5G", "--addtag", "dataprotection.backup_id=main_volume_2026", "vg0/pgdata"]
    host.answer(LVS_VG0, fixture("lvs_all.json"), fixture("lvs_vg0_thick_snapshot.json").replace(SNAP, name))
    host.answer(lvcreate, "")
    assert lvm.create(made, odd)[0]["name"] == name
    assert host.calls[1] == lvcreate


def test_create_removes_the_snapshot_when_the_read_back_fails(host):
    made = pg_plan(host)
    lvremove = ["/usr/sbin/lvremove", "-f", "vg0/" + SNAP]
    host.answer(LVS_VG0, fixture("lvs_all.json"), tool_error("lvs", 5, "  Internal error: injected"))
    host.answer(["/usr/sbin/lvcreate", "--snapshot", "--name", SNAP, "-L", "5G", "--addtag", TAG, "vg0/pgdata"], "")
    host.answer(lvremove, ("", '  Logical volume "%s" successfully removed.\n' % SNAP))
    with pytest.raises(EngineError) as caught:
        lvm.create(made, BACKUP_ID)
    assert caught.value.message == "listing logical volumes with lvs vg0 failed: lvs failed (exit 5): Internal error: injected"
    assert host.tools_run() == ["lvs", "lvcreate", "lvs", "lvremove"]
    assert host.calls[-1] == lvremove


def test_create_names_the_leftover_when_removing_it_fails_too(host):
    made = pg_plan(host)
    host.answer(LVS_VG0, fixture("lvs_all.json"), fixture("lvs_all.json"))  # the new LV does not show
    host.answer(["/usr/sbin/lvcreate", "--snapshot", "--name", SNAP, "-L", "5G", "--addtag", TAG, "vg0/pgdata"], "")
    host.answer(["/usr/sbin/lvremove", "-f", "vg0/" + SNAP], tool_error("lvremove", 5, "  Failed to find logical volume \"vg0/%s\"" % SNAP))
    with pytest.raises(EngineError) as caught:
        lvm.create(made, BACKUP_ID)
    assert caught.value.message == (
        "lvcreate reported success but lvs does not list vg0/%s; the snapshot vg0/%s could not be removed either: "
        "lvremove failed (exit 5): Failed to find logical volume \"vg0/%s\"" % (SNAP, SNAP, SNAP))
    assert caught.value.hint == "It is left behind: remove it with lvremove -f vg0/%s" % SNAP
    assert caught.value.details["left"] == "vg0/" + SNAP


def test_create_removes_the_snapshot_when_taken_fails(host):
    made = pg_plan(host)
    host.answer(LVS_VG0, fixture("lvs_all.json"))
    host.answer(["/usr/sbin/lvcreate", "--snapshot", "--name", SNAP, "-L", "5G", "--addtag", TAG, "vg0/pgdata"], "")
    host.answer(["/usr/sbin/lvremove", "-f", "vg0/" + SNAP], "")

    def taken():
        raise EngineError("releasing the quiesce failed")

    with pytest.raises(EngineError) as caught:
        lvm.create(made, BACKUP_ID, taken=taken)
    assert caught.value.message == "releasing the quiesce failed"
    assert host.tools_run() == ["lvs", "lvcreate", "lvremove"]


def test_create_maps_insufficient_space_and_removes_nothing(host):
    made = pg_plan(host)
    host.answer(LVS_VG0, fixture("lvs_all.json"))
    host.answer(["/usr/sbin/lvcreate", "--snapshot", "--name", SNAP, "-L", "5G", "--addtag", TAG, "vg0/pgdata"],
                tool_error("lvcreate", 5, '  Volume group "vg0" has insufficient free space (256 extents): 1280 required.'))
    with pytest.raises(ConfigError) as caught:
        lvm.create(made, BACKUP_ID)
    assert caught.value.message == ("creating snapshot vg0/%s: the volume group has too little free space: lvcreate failed (exit 5): "
                                    'Volume group "vg0" has insufficient free space (256 extents): 1280 required.' % SNAP)
    assert host.tools_run() == ["lvs", "lvcreate"]


def test_create_says_what_to_check_when_lvcreate_is_stopped(host):
    made = pg_plan(host)
    host.answer(LVS_VG0, fixture("lvs_all.json"))
    # What tools.run raises when the timeout kills the tool: no exit status.
    host.answer(["/usr/sbin/lvcreate", "--snapshot", "--name", SNAP, "-L", "5G", "--addtag", TAG, "vg0/pgdata"],
                ToolError("lvcreate did not finish within 300 seconds"))
    with pytest.raises(EngineError) as caught:
        lvm.create(made, BACKUP_ID)
    assert caught.value.message == "creating snapshot vg0/%s: lvcreate did not finish within 300 seconds" % SNAP
    assert caught.value.hint == ("Check that no device is left suspended (dmsetup info -c; dmsetup resume <device>) "
                                 "and whether vg0/%s exists (lvs vg0)" % SNAP)
    assert host.tools_run() == ["lvs", "lvcreate"]


def test_create_refuses_an_existing_name_and_a_replaced_origin(host):
    made = pg_plan(host)
    host.answer(LVS_VG0, fixture("lvs_vg0_thick_snapshot.json"))
    with pytest.raises(EngineError) as caught:
        lvm.create(made, BACKUP_ID)
    assert caught.value.message == "logical volume vg0/%s already exists" % SNAP
    host.answer(LVS_VG0, fixture("lvs_all.json").replace(PG_UUID, "zzzzzz-zzzz-zzzz-zzzz-zzzz-zzzz-zzzzzz"))
    with pytest.raises(EngineError) as caught:
        lvm.create(made, BACKUP_ID)
    assert caught.value.message == "logical volume vg0/pgdata is not the one planned (UUID %s)" % PG_UUID
    assert "lvcreate" not in host.tools_run()


# exists, delete


def test_delete_removes_only_the_records_snapshot(host):
    lvremove = ["/usr/sbin/lvremove", "-f", "vg0/" + SNAP]
    host.answer(LVS_VG0, fixture("lvs_vg0_thick_snapshot.json"))
    host.answer(lvremove, "")
    assert lvm.exists(thick_record()) is True
    assert lvm.delete(thick_record()) is True
    assert host.calls == [LVS_VG0, LVS_VG0, lvremove]


def test_delete_of_a_gone_snapshot_is_false(host):
    host.answer(LVS_VG0, fixture("lvs_all.json"))
    assert lvm.exists(thick_record()) is False
    assert lvm.delete(thick_record()) is False
    assert host.tools_run() == ["lvs", "lvs"]


def test_delete_refuses_another_lv_of_that_name(host):
    host.answer(LVS_VG0, fixture("lvs_vg0_thick_snapshot.json"))
    other = thick_record(uuid="AAAAAA-BBBB-CCCC-DDDD-EEEE-FFFF-GGGGGG")
    with pytest.raises(EngineError) as caught:
        lvm.delete(other)
    assert caught.value.message == "logical volume vg0/%s has UUID %s, not %s as the record says" % (SNAP, SNAP_UUID, other["uuid"])
    with pytest.raises(EngineError):
        lvm.exists(other)
    # The right UUID but not a snapshot of the recorded origin.
    with pytest.raises(EngineError) as caught:
        lvm.delete(thick_record(origin="vg0/mysql"))
    assert caught.value.message == "logical volume vg0/%s is not a snapshot of vg0/mysql (origin 'pgdata', attributes swi-a-s---)" % SNAP
    # The origin itself, with its own UUID in a record.
    with pytest.raises(EngineError):
        lvm.delete(thick_record(id="vg0/pgdata", uuid=PG_UUID))
    assert "lvremove" not in host.tools_run()


def test_delete_of_a_mounted_snapshot_says_it_is_in_use(host):
    host.answer(LVS_VG0, fixture("lvs_vg0_thick_snapshot.json"))
    host.answer(["/usr/sbin/lvremove", "-f", "vg0/" + SNAP], tool_error("lvremove", 5, "  Logical volume vg0/%s contains a filesystem in use." % SNAP))
    with pytest.raises(EngineError) as caught:
        lvm.delete(thick_record())
    assert caught.value.message.startswith("removing snapshot vg0/%s: it is in use (mounted, maybe by a backup streaming from it)" % SNAP)
    assert caught.value.hint.endswith("nothing was removed")


def test_delete_when_the_volume_group_is_gone_raises(host):
    host.answer(LVS_VG0, tool_error("lvs", 5, fixture("lvs_vg_not_found.stderr")))
    with pytest.raises(ConfigError) as caught:
        lvm.delete(thick_record())
    assert 'Volume group "vg0" not found' in caught.value.message


def test_delete_and_exists_need_root(host, monkeypatch):
    monkeypatch.setattr(lvm, "euid", lambda: 1000)
    for call in (lvm.delete, lvm.exists):
        with pytest.raises(ConfigError) as caught:
            call(thick_record())
        assert "needs root" in caught.value.message
    assert host.calls == []


def test_a_thin_snapshot_whose_origin_was_removed_is_still_its_own(host):
    host.answer(LVS_VG0, fixture("lvs_vg0_thin_snapshot.json").replace('"origin":"mysql"', '"origin":""'))
    host.answer(["/usr/sbin/lvremove", "-f", "vg0/" + TSNAP], "")
    assert lvm.delete(thin_record()) is True


# mounted

DM_SNAP = "/dev/mapper/vg0-pgdata--dp--main--volume--snapshot--20261125100000"
DM_TSNAP = "/dev/mapper/vg0-mysql--dp--main--volume--snapshot--20261125100000"


def answer_mount(host, prefix, modes=None, umount=""):
    def mount(argv):
        if modes is not None:
            modes.append(stat.S_IMODE(os.stat(argv[-1]).st_mode))
        return "", ""

    host.answer_prefix(prefix, mount)
    host.answer_prefix(["/usr/sbin/umount"], umount)


def test_mounted_thick_snapshot_read_only_in_a_private_directory(host, tmp_path):
    host.answer(LVS_VG0, fixture("lvs_vg0_thick_snapshot.json"))
    modes = []
    answer_mount(host, ["/usr/sbin/mount", "-t", "xfs", "-o", "ro,nouuid", DM_SNAP], modes)
    with lvm.mounted(thick_record()) as tree:
        directory = host.calls[1][-1]
        assert tree == os.path.join(directory, "16", "main")
        assert os.path.dirname(directory) == str(tmp_path) and os.path.basename(directory).startswith("dataprotection-lvm-")
        assert host.calls == [LVS_VG0, ["/usr/sbin/mount", "-t", "xfs", "-o", "ro,nouuid", DM_SNAP, directory]]
    assert modes == [0o700]
    assert host.calls[2:] == [["/usr/sbin/umount", directory]]
    assert not os.path.exists(directory)


def test_mounted_thin_snapshot_is_activated_and_deactivated_again(host):
    host.answer(LVS_VG0, fixture("lvs_vg0_thin_snapshot.json"))
    host.answer(["/usr/sbin/lvchange", "-ay", "-K", "vg0/" + TSNAP], "")
    host.answer(["/usr/sbin/lvchange", "-an", "vg0/" + TSNAP], "")
    answer_mount(host, ["/usr/sbin/mount", "-t", "ext4", "-o", "ro", DM_TSNAP])
    with lvm.mounted(thin_record()) as tree:
        assert host.calls[2] == ["/usr/sbin/mount", "-t", "ext4", "-o", "ro", DM_TSNAP, tree]
    assert host.calls == [LVS_VG0, ["/usr/sbin/lvchange", "-ay", "-K", "vg0/" + TSNAP], host.calls[2],
                          ["/usr/sbin/umount", tree], ["/usr/sbin/lvchange", "-an", "vg0/" + TSNAP]]


def test_mounted_unmounts_and_deactivates_after_an_error(host):
    host.answer(LVS_VG0, fixture("lvs_vg0_thin_snapshot.json"))
    host.answer(["/usr/sbin/lvchange", "-ay", "-K", "vg0/" + TSNAP], "")
    host.answer(["/usr/sbin/lvchange", "-an", "vg0/" + TSNAP], "")
    answer_mount(host, ["/usr/sbin/mount", "-t", "ext4", "-o", "ro", DM_TSNAP])
    with pytest.raises(RuntimeError) as caught:
        with lvm.mounted(thin_record()) as tree:
            raise RuntimeError("tar failed")
    assert str(caught.value) == "tar failed"
    assert host.tools_run() == ["lvs", "lvchange", "mount", "umount", "lvchange"]
    assert host.calls[-2:] == [["/usr/sbin/umount", tree], ["/usr/sbin/lvchange", "-an", "vg0/" + TSNAP]]
    assert not os.path.exists(tree)


def test_mounted_reports_what_stays_mounted_when_umount_fails(host):
    host.answer(LVS_VG0, fixture("lvs_vg0_thick_snapshot.json"))
    answer_mount(host, ["/usr/sbin/mount", "-t", "xfs"], umount=tool_error("umount", 32, "umount: /tmp/x: target is busy."))
    with pytest.raises(EngineError) as caught:
        with lvm.mounted(thick_record()) as tree:
            directory = os.path.dirname(os.path.dirname(tree))
    assert caught.value.message == ("could not unmount the snapshot vg0/%s from %s: umount failed (exit 32): umount: /tmp/x: target is busy.; "
                                    "unmount it with umount %s" % (SNAP, directory, directory))
    assert caught.value.details["left"] == directory


def test_mounted_cleans_up_when_the_mount_fails(host, tmp_path):
    host.answer(LVS_VG0, fixture("lvs_vg0_thin_snapshot.json"))
    host.answer(["/usr/sbin/lvchange", "-ay", "-K", "vg0/" + TSNAP], "")
    host.answer(["/usr/sbin/lvchange", "-an", "vg0/" + TSNAP], "")
    host.answer_prefix(["/usr/sbin/mount"], tool_error("mount", 32, "mount: /tmp/x: wrong fs type, bad option, bad superblock on %s." % DM_TSNAP))
    with pytest.raises(EngineError) as caught:
        with lvm.mounted(thin_record()):
            pytest.fail("the body must not run")
    assert caught.value.message.startswith("mounting snapshot vg0/%s failed: mount failed (exit 32): mount: /tmp/x: wrong fs type" % TSNAP)
    assert caught.value.hint.startswith("The kernel log (dmesg) says why. A journal that needs replaying is replayed into the (writable) snapshot")
    assert host.tools_run() == ["lvs", "lvchange", "mount", "lvchange"]
    assert os.listdir(str(tmp_path)) == []


def test_mounted_refuses_an_overflowed_snapshot(host):
    host.answer(LVS_VG0, fixture("lvs_vg0_thick_overflowed.json"))
    with pytest.raises(EngineError) as caught:
        with lvm.mounted(thick_record()):
            pytest.fail("the body must not run")
    assert caught.value.message == ("the snapshot vg0/%s overflowed: its size was too small for the writes during its life; it is unusable" % SNAP)
    assert host.calls == [LVS_VG0]


def test_mounted_refuses_a_gone_snapshot(host):
    host.answer(LVS_VG0, fixture("lvs_all.json"))
    with pytest.raises(EngineError) as caught:
        with lvm.mounted(thick_record()):
            pytest.fail("the body must not run")
    assert caught.value.message == "snapshot vg0/%s no longer exists" % SNAP


# restore

RESTORED_DEV = "/dev/vg0/pgdata-restored"
THICK_RESTORE = [
    ["/usr/sbin/lvcreate", "--name", "pgdata-restored", "-L", "53687091200b", "--wipesignatures", "n", "--zero", "n",
     "--addtag", "dataprotection.restored_from=vg0/" + SNAP, "vg0"],
    ["/usr/sbin/dd", "if=" + DM_SNAP, "of=" + RESTORED_DEV, "bs=4M", "conv=fsync", "status=none"],
    ["/usr/sbin/xfs_admin", "-U", "generate", RESTORED_DEV],
]


def answer_thick_restore(host):
    host.answer(LVS_VG0, fixture("lvs_vg0_thick_snapshot.json"))
    host.answer(VGS_VG0, fixture("vgs_vg0.json"))
    for argv in THICK_RESTORE:
        host.answer(argv, "")
    host.answer_prefix(["/usr/sbin/mount"], "")


def test_restore_thick_makes_a_new_volume_by_block_copy(host, tmp_path):
    answer_thick_restore(host)
    point = str(tmp_path / "restore" / "pg")
    mount = ["/usr/sbin/mount", "-t", "xfs", RESTORED_DEV, point]
    result = lvm.restore(thick_record(), {"name": "pgdata-restored", "mount_point": point})
    assert host.calls == [LVS_VG0, VGS_VG0] + THICK_RESTORE + [mount]
    assert result == {
        "logical_volume": "vg0/pgdata-restored", "device": RESTORED_DEV, "from": "vg0/" + SNAP, "thin": False, "size": 50 * GIB,
        "mounted_at": point, "path": point, "data_dir": os.path.join(point, "16", "main"),
        "commands": [" ".join(argv) for argv in THICK_RESTORE + [mount]], "warnings": [],
    }
    assert os.path.isdir(point)


def test_restore_thin_is_a_writable_snapshot_of_the_snapshot(host, tmp_path):
    device = "/dev/vg0/mysql-restored"
    steps = [
        ["/usr/sbin/lvcreate", "--snapshot", "--name", "mysql-restored", "--activate", "y", "--ignoreactivationskip", "--setactivationskip", "n",
         "--addtag", "dataprotection.restored_from=vg0/" + TSNAP, "vg0/" + TSNAP],
        ["/usr/sbin/e2fsck", "-f", "-p", device],
        ["/usr/sbin/tune2fs", "-U", "random", device],
        ["/usr/sbin/mount", "-t", "ext4", device, str(tmp_path)],
    ]
    host.answer(LVS_VG0, fixture("lvs_vg0_thin_snapshot.json"))
    for argv in steps:
        host.answer(argv, "")
    # e2fsck exit 1: errors corrected, the copy is fine.
    host.answer(steps[1], tool_error("e2fsck", 1, "/dev/vg0/mysql-restored: 11/2621440 files"))
    result = lvm.restore(thin_record(), {"name": "mysql-restored", "mount_point": str(tmp_path)})
    assert host.calls == [LVS_VG0] + steps
    assert (result["logical_volume"], result["thin"], result["size"], result["data_dir"]) == ("vg0/mysql-restored", True, None, str(tmp_path))


def test_restore_check_mode_runs_only_read_commands(host, tmp_path):
    answer_thick_restore(host)
    point = str(tmp_path / "new")
    planned = lvm.restore(thick_record(), {"name": "pgdata-restored", "mount_point": point}, check_mode=True)
    assert set(host.tools_run()) <= set(READ_TOOLS) and host.calls == [LVS_VG0, VGS_VG0]
    assert planned["commands"] == [" ".join(argv) for argv in THICK_RESTORE] + ["/usr/sbin/mount -t xfs %s %s" % (RESTORED_DEV, point)]
    assert not os.path.exists(point)
    host.calls[:] = []
    host.answer(LVS_VG0, fixture("lvs_vg0_thin_snapshot.json"))
    planned = lvm.restore(thin_record(), {"name": "mysql-restored"}, check_mode=True)
    assert host.calls == [LVS_VG0]
    assert [command.split()[0] for command in planned["commands"]] == ["/usr/sbin/lvcreate", "/usr/sbin/e2fsck", "/usr/sbin/tune2fs"]
    assert planned["mounted_at"] is None and planned["data_dir"] is None


def test_restore_with_a_path_as_target_names_the_volume_after_the_snapshot(host, tmp_path):
    answer_thick_restore(host)
    planned = lvm.restore(thick_record(), str(tmp_path), check_mode=True)
    assert (planned["logical_volume"], planned["data_dir"]) == ("vg0/%s-restored" % SNAP, os.path.join(str(tmp_path), "16", "main"))


def test_restore_refuses_an_existing_volume_and_a_busy_mount_point(host, tmp_path):
    answer_thick_restore(host)
    with pytest.raises(ConfigError) as caught:
        lvm.restore(thick_record(), {"name": "pgdata", "mount_point": str(tmp_path)}, force=True)
    assert caught.value.message == "logical volume vg0/pgdata already exists"
    assert caught.value.hint == "Choose another name, or remove it first (lvremove vg0/pgdata) if nothing needs it"
    (tmp_path / "keep").write_text("mine")
    with pytest.raises(ConfigError) as caught:
        lvm.restore(thick_record(), {"name": "pgdata-restored", "mount_point": str(tmp_path)})
    assert caught.value.message == "restore target mount_point %s is not empty: it holds 1 entries (keep)" % tmp_path
    assert lvm.restore(thick_record(), {"name": "pgdata-restored", "mount_point": str(tmp_path)}, check_mode=True, force=True)["mounted_at"] == str(tmp_path)
    assert set(host.tools_run()) <= set(READ_TOOLS)


def test_restore_refuses_what_the_volume_cannot_take(host, monkeypatch):
    answer_thick_restore(host)
    with pytest.raises(ConfigError) as caught:
        lvm.restore(thick_record(), {"name": "small", "size": "10G"})
    assert caught.value.message == "the target's size 10G is smaller than the snapshot's origin, 53687091200 bytes (50.00 GiB)"
    host.answer(VGS_VG0, fixture("vgs_vg0_low.json"))
    with pytest.raises(ConfigError) as caught:
        lvm.restore(thick_record(), {"name": "big"})
    assert caught.value.message == "volume group vg0 has 1073741824 bytes (1.00 GiB) free; the restored volume needs 53687091200 bytes (50.00 GiB)"
    host.answer(LVS_VG0, fixture("lvs_vg0_thin_snapshot.json"))
    with pytest.raises(ConfigError) as caught:
        lvm.restore(thin_record(), {"name": "x", "vg": "vg1"})
    assert caught.value.message == "a thin snapshot restores into its own thin pool, in volume group vg0, not vg1"
    with pytest.raises(ConfigError):
        lvm.restore(thin_record(), {"name": "x", "size": "50G"})
    host.answer(LVS_VG0, fixture("lvs_vg0_thick_overflowed.json"))
    with pytest.raises(EngineError) as caught:
        lvm.restore(thick_record(), {"name": "x"})
    assert "overflowed" in caught.value.message
    assert set(host.tools_run()) <= set(READ_TOOLS)
    monkeypatch.setattr(lvm, "euid", lambda: 1000)
    host.calls[:] = []
    with pytest.raises(ConfigError) as caught:
        lvm.restore(thick_record(), {"name": "x"}, check_mode=True)
    assert "needs root" in caught.value.message and host.calls == []


def test_restore_removes_the_new_volume_after_a_failure(host, tmp_path):
    answer_thick_restore(host)
    lvremove = ["/usr/sbin/lvremove", "-f", "vg0/pgdata-restored"]
    host.answer(THICK_RESTORE[1], tool_error("dd", 1, "dd: error writing '/dev/vg0/pgdata-restored': No space left on device"))
    host.answer(lvremove, "")
    point = str(tmp_path / "pg")
    with pytest.raises(EngineError) as caught:
        lvm.restore(thick_record(), {"name": "pgdata-restored", "mount_point": point})
    assert caught.value.message == ("restoring: dd failed: dd failed (exit 1): dd: error writing '/dev/vg0/pgdata-restored': "
                                    "No space left on device")
    assert caught.value.hint.startswith("The new volume is removed again")
    assert host.calls == [LVS_VG0, VGS_VG0, THICK_RESTORE[0], THICK_RESTORE[1], lvremove]
    assert not os.path.exists(point)

    # The mount fails after the mount point was made: the volume and the directory go again; lvremove fails too.
    host.calls[:] = []
    host.answer(THICK_RESTORE[1], "")
    host.answer_prefix(["/usr/sbin/mount"], tool_error("mount", 32, "mount: %s: wrong fs type" % point))
    host.answer(lvremove, tool_error("lvremove", 5, "  Logical volume vg0/pgdata-restored contains a filesystem in use."))
    with pytest.raises(EngineError) as caught:
        lvm.restore(thick_record(), {"name": "pgdata-restored", "mount_point": point})
    assert caught.value.message.endswith("the new volume vg0/pgdata-restored could not be removed either: lvremove failed (exit 5): "
                                         "Logical volume vg0/pgdata-restored contains a filesystem in use.")
    assert caught.value.hint == "It is left behind: remove it with lvremove -f vg0/pgdata-restored"
    assert host.tools_run() == ["lvs", "vgs", "lvcreate", "dd", "xfs_admin", "mount", "lvremove"]
    assert not os.path.exists(point)


def test_remove_restored_removes_only_a_volume_a_restore_made(host):
    restored = fixture("lvs_vg0_thick_snapshot.json").replace(SNAP, "pgdata-restored").replace(TAG, "dataprotection.restored_from=vg0/" + SNAP)
    host.answer(LVS_VG0, restored)
    host.answer(["/usr/sbin/umount", "/srv/restore"], "")
    host.answer(["/usr/sbin/lvremove", "-f", "vg0/pgdata-restored"], "")
    assert lvm.remove_restored({"logical_volume": "vg0/pgdata-restored", "mounted_at": "/srv/restore"}) is None
    assert host.tools_run() == ["umount", "lvs", "lvremove"]
    host.calls[:] = []
    assert lvm.remove_restored({"logical_volume": "vg0/pgdata", "mounted_at": None}) == (
        "vg0/pgdata does not carry the tag dataprotection.restored_from of a restore; it was left alone")
    assert host.tools_run() == ["lvs"]
