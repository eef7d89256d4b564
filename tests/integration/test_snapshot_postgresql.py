# -*- coding: utf-8 -*-
# Copyright: contributors to the dataprotection.databases collection
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Volume-snapshot backups of a real PostgreSQL 15, through ansible-playbook.

btrfs, for real: the server's data directory lies on a btrfs subvolume of a
loop device; the backup holds the server in backup mode (pg_backup_start /
pg_backup_stop) around a read-only snapshot, keeps the backup_label in the
manifest and stores the WAL from the backup's start to its stop.  The restore
makes a writable subvolume from the snapshot, and PostgreSQL started on it
holds the data of the backup moment.  The same backup streamed into the
repository restores from there after the snapshot is gone, and serves as the
base of a point-in-time restore.

AWS EBS: the same backup mode around EBS snapshots of volumes in moto's EC2
API in server mode (the EC2 protocol over HTTP on loopback): moto stores no
block data, so that test proves the orchestration (quiesce, create, wait, tag,
manifest, retention's deletion, restore into a zone), not the data.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json
import os
import subprocess
import time

import pytest

from ansible_collections.dataprotection.databases.plugins.module_utils.timeutil import parse_time
from harness.loopfs import btrfs_fs  # noqa: F401  pylint: disable=unused-import
from harness.playbook import iso, now, run_tasks, task

ZONE = "us-east-1a"


def rows(server, sql):
    return server.psql(sql).strip().splitlines()


def wait_promoted(server):
    deadline = time.monotonic() + 120
    while rows(server, "SELECT pg_is_in_recovery()") != ["f"]:
        assert time.monotonic() < deadline, "the restored server did not finish recovery"
        time.sleep(0.2)


def pg_on_btrfs(postgres_factory, postgres_on_datadir, btrfs_fs, settings=None):
    """A PostgreSQL whose data directory is the btrfs subvolume ``pgdata``."""
    initial = postgres_factory(settings=settings)
    password = initial.password
    initial.stop()
    subvolume = btrfs_fs.subvolume_from("pgdata", initial.data_dir)
    return postgres_on_datadir(subvolume, password=password), subvolume


def manifest_of(repo, cluster, backup_id):
    with open(os.path.join(repo["path"], cluster, "backups", backup_id, "manifest.json")) as handle:
        return json.load(handle)


def test_btrfs_snapshot_backup_and_restore(tmp_path, postgres_factory, postgres_on_datadir, btrfs_fs):
    pg, subvolume = pg_on_btrfs(postgres_factory, postgres_on_datadir, btrfs_fs)
    pg.psql("CREATE TABLE items(id int PRIMARY KEY, note text); INSERT INTO items SELECT g, 'row ' || g FROM generate_series(1, 20000) g")
    repo = {"type": "local", "path": str(tmp_path / "repo")}
    args = dict(repo=repo, cluster="orders", engine="postgresql", method="volume-snapshot", connection=pg.connection,
                snapshot={"provider": "btrfs"}, labels={"reason": "test"})
    assert run_tasks([task("backup_repo", "repo", repo=repo)])["repo"]["changed"]
    run = run_tasks([task("backup", "planned", **args)], check=True)
    assert "plan" in run["planned"], run
    plan = run["planned"]["plan"]
    assert run["planned"]["changed"] and plan["provider"] == "btrfs" and plan["snapshot"]["subvolume"] == subvolume, run
    assert plan["data_dir"] == subvolume and btrfs_fs.subvolumes() == ["pgdata"], "check mode made a snapshot"

    run = run_tasks([task("backup", "taken", **args), task("backup_info", "info", repo=repo, cluster="orders", verify=True)])
    taken = run["taken"]["backup"]
    assert taken["type"] == "snapshot" and taken["consistency"] == "application" and len(taken["snapshots"]) == 1, run
    assert all(name.startswith("wal-") for name in taken["objects"]) and taken["objects"], taken
    assert taken["positions"]["start_wal"] <= taken["positions"]["stop_wal"] and taken["positions"]["timeline"] == 1
    assert pg.password not in run.stdout
    snapshot_path = taken["snapshots"][0]["id"]
    assert btrfs_fs.subvolumes() == ["%s/%s" % (".dataprotection-snapshots", taken["backup_id"]), "pgdata"]
    manifest = manifest_of(repo, "orders", taken["backup_id"])
    assert manifest["backup_label"].startswith("START WAL LOCATION: ") and "LABEL: %s" % taken["backup_id"] in manifest["backup_label"]
    assert manifest["snapshots"][0]["uuid"] and manifest["consistency"] == "application" and manifest["type"] == "snapshot"
    info = run["info"]
    assert [b["backup_id"] for b in info["backups"]] == [taken["backup_id"]] and info["verification"]["ok"], info
    assert info["backups"][0]["snapshots"][0]["id"] == snapshot_path and info["backups"][0]["streamed"] is False
    assert info["backups"][0]["consistency"] == "application"
    # The snapshot holds no backup_label (non-exclusive backup mode): restores write the manifest's.
    assert not os.path.exists(os.path.join(snapshot_path, "backup_label"))

    pg.psql("INSERT INTO items VALUES (20001, 'after the backup')")
    target = btrfs_fs.path("restored")
    restore_args = dict(repo=repo, cluster="orders", engine="postgresql", backup_id=taken["backup_id"], data_dir=target)
    run = run_tasks([task("restore", "planned", **restore_args)], check=True)
    assert run["planned"]["plan"]["source"] == "snapshot" and not os.path.exists(target), run
    run = run_tasks([task("restore", "restored", **restore_args), task("restore", "again", **restore_args)])
    assert run["restored"]["restored"]["from"] == "snapshot %s" % snapshot_path, run
    assert run["again"]["failed"] and "not empty" in run["again"]["msg"], run["again"]
    assert os.path.isfile(os.path.join(target, "backup_label"))
    pg.stop()
    restored = postgres_on_datadir(target, password=pg.password)
    wait_promoted(restored)
    assert rows(restored, "SELECT count(*), max(id) FROM items") == ["20000|20000"]


@pytest.mark.parametrize("streamed", [True, False], ids=["streamed", "kept-snapshot"])
def test_snapshot_is_a_pitr_base(streamed, tmp_path, postgres_factory, postgres_on_datadir, btrfs_fs, server_tmp_path, agent):
    """With WAL archiving a snapshot backup is the base of a point-in-time restore: restored from the snapshot (a new
    subvolume, then the archived WAL up to the target), or with stream: true and keep: false, where the snapshot is
    deleted once its files are in the repository, from the repository."""
    pg, subvolume = pg_on_btrfs(postgres_factory, postgres_on_datadir, btrfs_fs)
    repo = {"type": "local", "path": str(server_tmp_path / "repo")}  # archive_command runs as postgres
    common = dict(repo=repo, cluster="shop", engine="postgresql", connection=pg.connection)
    log_args = dict(common, archive_timeout=5, wait_timeout=30, **agent)
    run = run_tasks([task("backup_repo", "repo", repo=repo, owner="postgres"), task("log_backup", "enabled", **log_args)])
    assert run["enabled"]["changed"] and run["enabled"]["restart_required"], run
    pg.restart()
    pg.psql("CREATE TABLE orders(id int, note text); INSERT INTO orders SELECT g, 'before backup' FROM generate_series(1, 100) g")

    snapshot = {"provider": "btrfs", "stream": True, "keep": False} if streamed else {"provider": "btrfs"}
    run = run_tasks([task("backup", "base", method="volume-snapshot", snapshot=snapshot, **common)])
    base = run["base"]["backup"]
    if streamed:
        assert base["type"] == "snapshot" and base["streamed"] and base["snapshots"] == [], run
        assert "files.tar.zst" in base["objects"] and base["size"] > 10 * 1024 * 1024, base
        assert btrfs_fs.subvolumes() == ["pgdata"], "keep: false left the snapshot"
    else:
        assert base["type"] == "snapshot" and not base["streamed"] and len(base["snapshots"]) == 1, run

    pg.psql("INSERT INTO orders VALUES (101, 'moment 1')")
    time.sleep(1.2)
    middle = now()
    time.sleep(1.2)
    pg.psql("INSERT INTO orders VALUES (201, 'moment 2')")
    run = run_tasks([task("log_backup", "synced", state="synced", **log_args)])
    window = run["synced"]["windows"][0]
    assert window["base_backups"] == [base["backup_id"]] and window["start"] < iso(middle) < window["end"], run

    # A kept snapshot restores as a new subvolume on its own file system; a streamed copy anywhere.
    target = str(server_tmp_path / "pitr") if streamed else btrfs_fs.path("pitr")
    restore_args = dict(repo=repo, cluster="shop", engine="postgresql", restore_time=iso(middle), data_dir=target)
    run = run_tasks([task("restore", "planned", **restore_args)], check=True)
    plan = run["planned"]["plan"]
    source = "repository" if streamed else "snapshot"
    assert plan["source"] == source and plan["backup_id"] == base["backup_id"] and plan["recovery"] == "point-in-time", run
    assert plan["wal"]["segments"] >= 1 and not os.path.exists(target)
    run = run_tasks([task("restore", "pitr", **restore_args)])
    restored = run["pitr"]["restored"]
    assert restored["from"] == ("repository" if streamed else "snapshot %s" % base["snapshots"][0]["id"]), run
    assert restored["wal_segments"] >= 2 and parse_time(restored["restore_time"]) == parse_time(iso(middle)), run
    pg.stop()
    restored = postgres_on_datadir(target, password=pg.password)
    wait_promoted(restored)
    assert rows(restored, "SELECT string_agg(id::text, ',' ORDER BY id) FROM orders WHERE id > 100") == ["101"]
    assert rows(restored, "SELECT count(*) FROM orders") == ["101"]


def merged(base, **changes):
    """``base`` with ``changes`` applied (a copy)."""
    result = dict(base)
    result.update(changes)
    return result


def sessions(pg):
    return rows(pg, "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'dataprotection.databases'")


def test_refusals_and_failures_change_nothing(tmp_path, postgres_factory, postgres_on_datadir, btrfs_fs):
    pg, subvolume = pg_on_btrfs(postgres_factory, postgres_on_datadir, btrfs_fs)
    repo = {"type": "local", "path": str(tmp_path / "repo")}
    assert run_tasks([task("backup_repo", "repo", repo=repo)])["repo"]["changed"]
    common = dict(repo=repo, cluster="orders", engine="postgresql", connection=pg.connection, method="volume-snapshot")
    other = postgres_factory()  # its data directory is not on btrfs
    blocked = btrfs_fs.path("blocked")
    os.mkdir(blocked)
    run = run_tasks([
        task("backup", "not_btrfs", **merged(common, connection=other.connection, cluster="other", snapshot={"provider": "btrfs"})),
        task("backup", "no_snapshot", **common),
        task("backup", "stream_remote", **merged(common, snapshot={
            "provider": "aws_ebs", "volume_ids": ["vol-0123456789abcdef0"], "region": "us-east-1", "stream": True})),
        task("backup", "keep_only_copy", **merged(common, snapshot={"provider": "btrfs", "keep": False})),
        task("backup", "mongodb", **merged(common, engine="mongodb", method="dump", snapshot=None)),
        task("backup", "snapshot_on_tool", **merged(common, method="pg-basebackup", snapshot={"provider": "btrfs"})),
        task("backup", "wrong_password", **merged(common, connection=dict(pg.connection, password="wrong"), snapshot={"provider": "btrfs"})),
    ])
    assert run["not_btrfs"]["failed"] and "not on btrfs" in run["not_btrfs"]["msg"], run["not_btrfs"]
    assert run["no_snapshot"]["failed"] and "needs the option snapshot" in run["no_snapshot"]["msg"]
    assert run["stream_remote"]["failed"] and "only possible with a provider of this host" in run["stream_remote"]["msg"]
    assert run["keep_only_copy"]["failed"] and "would delete the only copy" in run["keep_only_copy"]["msg"]
    assert run["mongodb"]["failed"] and "mongosh is not installed" in run["mongodb"]["msg"], run["mongodb"]  # no MongoDB tools on this machine
    assert run["snapshot_on_tool"]["failed"] and "belongs to method volume-snapshot" in run["snapshot_on_tool"]["msg"]
    assert run["wrong_password"]["failed"] and "password authentication failed" in run["wrong_password"]["msg"]
    assert not os.path.exists(os.path.join(repo["path"], "orders", "backups"))
    assert btrfs_fs.subvolumes() == ["pgdata"]

    # A failure while the server is in backup mode: the snapshot cannot be made (an immutable snapshot_dir).
    subprocess.check_call(["chattr", "+i", blocked])
    try:
        run = run_tasks([task("backup", "failed", **merged(common, snapshot={"provider": "btrfs", "snapshot_dir": blocked}))])
    finally:
        subprocess.check_call(["chattr", "-i", blocked])
    assert run["failed"]["failed"] and "btrfs subvolume snapshot" in run["failed"]["msg"], run["failed"]
    assert sessions(pg) == ["0"], "the backup mode's session outlived the failure"
    assert btrfs_fs.subvolumes() == ["pgdata"] and os.listdir(blocked) == []
    backups = os.path.join(repo["path"], "orders", "backups")
    assert not os.path.exists(backups) or os.listdir(backups) == [], "a failed backup left objects"
    run = run_tasks([task("backup", "after", **merged(common, snapshot={"provider": "btrfs"}))])
    assert run["after"]["backup"]["status"] == "completed", run  # the lease and the backup mode were released
    backup_id = run["after"]["backup"]["backup_id"]

    # Restore refusals: a non-empty target without force, a running server's directory even with force, no streamed copy.
    busy = btrfs_fs.subvolume("busy")
    with open(os.path.join(busy, "keep.txt"), "w") as handle:
        handle.write("precious")
    args = dict(repo=repo, cluster="orders", engine="postgresql", backup_id=backup_id)
    run = run_tasks([
        task("restore", "not_empty", data_dir=busy, **args),
        task("restore", "in_use", data_dir=subvolume, force=True, **args),
        task("restore", "no_copy", data_dir=str(tmp_path / "x"), source="repository", **args),
        task("restore", "no_data_dir", **args),
    ])
    assert run["not_empty"]["failed"] and "not empty" in run["not_empty"]["msg"] and "force" in run["not_empty"]["msg"]
    assert run["in_use"]["failed"] and "in use" in run["in_use"]["msg"], run["in_use"]
    assert run["no_copy"]["failed"] and "no copy of its files in the repository" in run["no_copy"]["msg"]
    assert run["no_data_dir"]["failed"] and "needs data_dir" in run["no_data_dir"]["msg"], run["no_data_dir"]
    assert open(os.path.join(busy, "keep.txt")).read() == "precious" and not os.path.exists(str(tmp_path / "x"))
    assert rows(pg, "SELECT 1") == ["1"]


def test_aws_ebs_snapshot_backup_retention_and_restore(tmp_path, postgres_factory, s3_server):
    """EBS snapshots through moto's EC2 API in server mode around PostgreSQL's backup mode.

    moto keeps no block data: this proves the orchestration (backup mode held until the snapshots are started,
    tags, the manifest's records, retention deleting the snapshots through EC2, a restore into new volumes in a
    zone and the step that follows), not that EBS holds the data.
    """
    pg = postgres_factory()
    ec2 = s3_server.client("ec2")
    volume_id = ec2.create_volume(AvailabilityZone=ZONE, Size=8, VolumeType="gp3")["VolumeId"]
    connection = {"region": s3_server.region, "endpoint_url": s3_server.endpoint_url,
                  "access_key": s3_server.access_key, "secret_key": s3_server.secret_key}
    repo = {"type": "local", "path": str(tmp_path / "repo")}
    assert run_tasks([task("backup_repo", "repo", repo=repo)])["repo"]["changed"]
    args = dict(repo=repo, cluster="orders", engine="postgresql", method="volume-snapshot", connection=pg.connection,
                snapshot=dict(connection, provider="aws_ebs", volume_ids=[volume_id], tags={"team": "db"}))
    run = run_tasks([task("backup", "planned", **args)], check=True)
    plan = run["planned"]["plan"]
    assert plan["provider"] == "aws_ebs" and plan["snapshot"]["volumes"][0]["id"] == volume_id and plan["quiesce"], run
    assert s3_server.secret_key not in json.dumps(run.results) and s3_server.secret_key not in run.stdout
    assert ec2.describe_snapshots(Filters=[{"Name": "volume-id", "Values": [volume_id]}])["Snapshots"] == []

    first = run_tasks([task("backup", "taken", **args)])["taken"]["backup"]
    time.sleep(1.1)
    second = run_tasks([task("backup", "taken", **args)])["taken"]["backup"]
    assert first["consistency"] == "application" and first["objects"] and first["snapshots"][0]["source"] == volume_id, first
    snapshot_id = first["snapshots"][0]["id"]
    described = ec2.describe_snapshots(SnapshotIds=[snapshot_id])["Snapshots"][0]
    tags = dict((t["Key"], t["Value"]) for t in described["Tags"])
    assert tags["dataprotection.backup_id"] == first["backup_id"] and tags["team"] == "db" and described["State"] == "completed"
    manifest = manifest_of(repo, "orders", first["backup_id"])
    assert manifest["snapshots"][0]["id"] == snapshot_id and manifest["snapshot_provider"] == "aws_ebs"
    assert s3_server.secret_key not in json.dumps(manifest)

    # Retention deletes the older backup and its EBS snapshot through EC2, with the credentials of the environment.
    env = {"AWS_ACCESS_KEY_ID": s3_server.access_key, "AWS_SECRET_ACCESS_KEY": s3_server.secret_key}
    run = run_tasks([task("backup_retention", "retention", repo=repo, cluster="orders", keep_last=1)], extra_env=env)
    assert [b["backup_id"] for b in run["retention"]["expired"]] == [first["backup_id"]], run
    assert ec2.describe_snapshots(Filters=[{"Name": "snapshot-id", "Values": [snapshot_id]}])["Snapshots"] == []

    # Restore: a new volume in the zone from the newer backup's snapshot, and what to do next.
    restore_args = dict(repo=repo, cluster="orders", engine="postgresql", backup_id=second["backup_id"],
                        snapshot=dict(dict((k, v) for k, v in connection.items() if k != "region"), availability_zone=ZONE))
    run = run_tasks([task("restore", "planned", **restore_args)], check=True)
    assert "plan" in run["planned"], run["planned"]
    assert run["planned"]["plan"]["volumes"][0]["volume_id"] is None and "source: mounted" in run["planned"]["plan"]["next"], run
    before = len(ec2.describe_volumes()["Volumes"])
    run = run_tasks([task("restore", "restored", **restore_args)])
    made = run["restored"]["restored"]["volumes"][0]
    assert made["availability_zone"] == ZONE and made["snapshot_id"] == second["snapshots"][0]["id"], run
    assert len(ec2.describe_volumes()["Volumes"]) == before + 1
    volume = ec2.describe_volumes(VolumeIds=[made["volume_id"]])["Volumes"][0]
    assert volume["SnapshotId"] == second["snapshots"][0]["id"] and volume["State"] == "available"


def test_scheduled_snapshot_backups_with_retention(tmp_path, postgres_factory, postgres_on_datadir, btrfs_fs, agent):
    """A backup_schedule of method volume-snapshot: the cron line, run twice by the host command, takes two snapshot
    backups; the schedule's retention (keep_last 1) deletes the older backup and its btrfs snapshot."""
    pg, subvolume = pg_on_btrfs(postgres_factory, postgres_on_datadir, btrfs_fs)
    repo = {"type": "local", "path": str(tmp_path / "repo")}
    assert run_tasks([task("backup_repo", "repo", repo=repo)])["repo"]["changed"]
    cron_dir = tmp_path / "cron.d"
    sched = dict(repo=repo, name="orders-snap", cluster="orders", engine="postgresql", method="volume-snapshot", connection=pg.connection,
                 snapshot={"provider": "btrfs"}, cron="@hourly", keep_last=1, scheduler="cron", scheduler_dir=str(cron_dir), **agent)
    run = run_tasks([task("backup_schedule", "made", **sched)])
    made = run["made"]
    assert made["changed"], run
    config = json.load(open(made["config_path"]))
    assert config["snapshot"] == {"provider": "btrfs", "stream": False, "keep": True} and config["method"] == "volume-snapshot"
    line = [entry for entry in open(str(cron_dir / "dataprotection-backup-orders-snap")).read().splitlines()
            if entry and not entry.startswith(("#", "CRON_TZ"))][0]
    command = line.split(None, 2)[2]
    assert command == made["command"]

    def run_command():
        proc = subprocess.run(command.split(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, universal_newlines=True, timeout=300, check=False)
        assert proc.returncode == 0, proc.stderr
        return json.loads(proc.stdout.strip().splitlines()[-1])

    first = run_command()
    time.sleep(1.1)
    second = run_command()
    assert first["backup"]["type"] == "snapshot" and second["backup"]["consistency"] == "application", second
    assert second["retention"]["expired"] == [first["backup"]["backup_id"]], second
    assert btrfs_fs.subvolumes() == [".dataprotection-snapshots/%s" % second["backup"]["backup_id"], "pgdata"]
    info = run_tasks([task("backup_info", "info", repo=repo, cluster="orders", verify=True)])["info"]
    assert [b["backup_id"] for b in info["backups"]] == [second["backup"]["backup_id"]] and info["verification"]["ok"], info
