# -*- coding: utf-8 -*-
# Copyright: contributors to the dataprotection.databases collection
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Retention policies against generated repositories spanning months.

The repositories hold manifests with real stored objects and log files named
as wal-push and binlog-ship name them (tests/harness/synthetic.py); the
integration test (tests/integration/test_schedule.py) runs retention on real
backups of a real PostgreSQL.  Every case asserts the exact survivors, that
check mode changes nothing, and that the windows of the kept backups are
intact after pruning.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import datetime
import os

import pytest

from ansible_collections.dataprotection.databases.plugins.module_utils import catalog, engines, retention
from ansible_collections.dataprotection.databases.plugins.module_utils.engines import binlog, pgwal
from ansible_collections.dataprotection.databases.plugins.module_utils.errors import ConfigError, IntegrityError, LeaseHeld
from ansible_collections.dataprotection.databases.plugins.module_utils.locking import Lease
from ansible_collections.dataprotection.databases.plugins.module_utils.repoconfig import new_config, write_config
from ansible_collections.dataprotection.databases.plugins.module_utils.repository import LocalRepo
from ansible_collections.dataprotection.databases.plugins.module_utils.timeutil import parse_time, utcnow
from harness.synthetic import Generator, wal_name

START = "2026-06-01T00:00:00Z"
NOW = parse_time("2026-09-01T12:00:00Z")  # 92.5 days after START


@pytest.fixture
def repo_dir(tmp_path):
    path = tmp_path / "repo"
    path.mkdir()
    write_config(LocalRepo({"path": str(path)}), new_config()[0])
    return str(path)


@pytest.fixture
def repo(repo_dir):
    return LocalRepo({"path": repo_dir})


def spec(repo_dir):
    return {"type": "local", "path": repo_dir}


def listing(repo):
    return sorted((info.key, info.size) for info in repo.list(""))


def ids(rows):
    return [row["backup_id"] for row in rows]


def pg_history(repo, days=92, **kwargs):
    kwargs.setdefault("segment_minutes", 60)
    return Generator(repo, "pg").postgresql(START, days, **kwargs)


def apply(repo_dir, repo, now=NOW, cluster="pg", **policy):
    """Check mode first (nothing may change), then the real run; both results."""
    before = listing(repo)
    planned = retention.run_retention(spec(repo_dir), cluster, retention.Policy(**policy), check_mode=True, now=now)
    assert listing(repo) == before
    done = retention.run_retention(spec(repo_dir), cluster, retention.Policy(**policy), now=now)
    for key in ("expired", "kept", "logs", "incomplete", "bytes_freed", "windows_after"):
        assert planned[key] == done[key], key
    return planned, done


def assert_consistent(repo, cluster="pg"):
    """Every manifest names only objects that exist and read back intact (what backup_info verify checks)."""
    manifests, dummy = catalog.scan_cluster(repo, cluster)
    for manifest in manifests:
        checked, dummy, problems = catalog.verify_backup(repo, manifest)
        assert checked and not problems, problems
    return manifests


# Periods -------------------------------------------------------------------

@pytest.mark.parametrize("text, seconds", [
    ("7d", 7 * 86400), ("30d12h", 30 * 86400 + 12 * 3600), ("6mo", 180 * 86400), ("2y", 730 * 86400),
    ("1y6mo", 545 * 86400), ("2w", 14 * 86400), ("90m", 5400), ("1D", 86400), (" 12h ", 43200),
])
def test_periods_in_kubeblocks_syntax(text, seconds):
    assert retention.parse_period(text).total_seconds() == seconds


@pytest.mark.parametrize("text, message", [
    ("7", "is not a retention period"), ("d7", "is not a retention period"), ("7days", "is not a retention period"),
    ("", "is not a retention period"), ("-1d", "is not a retention period"), ("1d2d", "names the unit d twice"),
    ("0d", "is zero"), ("7 d", "is not a retention period"), ("1.5d", "is not a retention period"),
])
def test_invalid_periods_are_refused_with_the_syntax(text, message):
    with pytest.raises(ConfigError) as err:
        retention.parse_period(text)
    assert message in err.value.message
    assert "30d12h" in err.value.hint


def test_policy_needs_something_to_expire_by():
    with pytest.raises(ConfigError, match="needs retention_period or keep_last"):
        retention.Policy(min_window="3d")
    with pytest.raises(ConfigError, match="keep_last must be at least 1"):
        retention.Policy(keep_last=0)
    with pytest.raises(ConfigError, match="needs engine"):
        retention.Policy(keep_last=1, method="pg-basebackup")
    with pytest.raises(Exception, match="not offer|not a method|offers"):
        retention.Policy(keep_last=1, engine="redis", method="binlog-archive")


# Policies on PostgreSQL ------------------------------------------------------

def test_keep_last_keeps_the_newest_and_prunes_wal_before_the_oldest_kept(repo_dir, repo):
    history = pg_history(repo)
    assert len(history.manifests) == 92
    planned, done = apply(repo_dir, repo, keep_last=5)
    newest = sorted(ids(history.manifests))[-5:]
    assert sorted(ids(done["kept"])) == newest
    assert len(done["expired"]) == 87 and ids(done["expired"]) == sorted(ids(done["expired"]))
    remaining = assert_consistent(repo)
    assert sorted(ids(remaining)) == newest
    # WAL before the oldest kept base's start segment is gone, from it on everything stays.
    oldest = min(remaining, key=lambda m: m["end_time"])
    floor = pgwal._segno(oldest["positions"]["start_wal"])
    index = pgwal.load(repo, "pg")
    assert min(index[1]) == floor and max(index[1]) == 92 * 24
    assert done["logs"] == [{"engine": "postgresql", "kind": "wal", "count": floor - 1, "bytes": done["logs"][0]["bytes"],
                             "first": wal_name(1, 1), "last": wal_name(1, floor - 1)}]
    # The history file stays; the windows of the kept bases are unchanged and listed.
    assert any("/history/" in key for key, dummy in listing(repo))
    assert engines.windows("postgresql", repo, "pg", remaining) == done["windows_after"]
    assert done["windows_after"] == [{"start": oldest["end_time"], "end": done["windows_before"][0]["end"],
                                      "base_backups": sorted(newest, reverse=True)}]
    assert done["bytes_freed"] > 0 and done["changed"] is True
    # A second run has nothing to do.
    again = retention.run_retention(spec(repo_dir), "pg", retention.Policy(keep_last=5), now=NOW)
    assert again["changed"] is False and again["expired"] == [] and again["logs"] == []


def test_retention_period_keeps_what_is_younger(repo_dir, repo):
    history = pg_history(repo)
    dummy, done = apply(repo_dir, repo, retention_period="10d")
    cutoff = NOW - datetime.timedelta(days=10)
    expected = sorted(m["backup_id"] for m in history.manifests if parse_time(m["end_time"]) >= cutoff)
    assert len(expected) == 9  # daily at 00:00:40 from June 1 to August 31
    assert sorted(ids(done["kept"])) == expected
    assert all("younger than retention_period 10d" in row["reasons"] for row in done["kept"])
    assert all("older than retention_period 10d" in row["reason"] for row in done["expired"])
    assert sorted(ids(assert_consistent(repo))) == expected


def test_rules_combine_by_union(repo_dir, repo):
    history = pg_history(repo)
    dummy, done = apply(repo_dir, repo, retention_period="3d", keep_last=7)
    assert sorted(ids(done["kept"])) == sorted(ids(history.manifests))[-7:]
    dummy, done = apply(repo_dir, repo, retention_period="5d", keep_last=2)
    assert len(done["kept"]) == 4  # August 28 to 31


def test_retain_latest_keeps_the_newest_whatever_its_age(repo_dir, repo):
    history = pg_history(repo, days=30)  # the newest backup is two months old at NOW
    dummy, done = apply(repo_dir, repo, retention_period="7d")
    assert ids(done["kept"]) == [history.manifests[-1]["backup_id"]]
    assert done["kept"][0]["reasons"] == ["the newest backup (retain_latest)"]


def test_a_policy_that_deletes_everything_is_refused_and_changes_nothing(repo_dir, repo):
    pg_history(repo, days=30)
    before = listing(repo)
    with pytest.raises(ConfigError) as err:
        retention.run_retention(spec(repo_dir), "pg", retention.Policy(retention_period="7d", retain_latest=False), now=NOW)
    assert "would delete every backup of cluster pg (30 of 30" in err.value.message
    assert "allow_empty" in err.value.hint
    assert listing(repo) == before
    done = retention.run_retention(spec(repo_dir), "pg", retention.Policy(retention_period="7d", retain_latest=False, allow_empty=True), now=NOW)
    assert len(done["expired"]) == 30 and done["kept"] == []
    # With no base left, no WAL is pruned: there is nothing to anchor a floor.
    assert done["logs"] == [] and catalog.scan_cluster(repo, "pg")[0] == []


def test_min_window_keeps_the_base_that_reaches_back(repo_dir, repo):
    history = pg_history(repo)
    dummy, done = apply(repo_dir, repo, retention_period="2d", min_window="10d")
    cutoff = NOW - datetime.timedelta(days=10)
    # The newest base at or before the cutoff covers it; the bases after it are kept by the period or not needed.
    anchor = max((m for m in history.manifests if parse_time(m["end_time"]) <= cutoff), key=lambda m: m["end_time"])
    kept = dict((row["backup_id"], row["reasons"]) for row in done["kept"])
    assert anchor["backup_id"] in kept and "min_window 10d" in kept[anchor["backup_id"]][0]
    assert sorted(kept) == sorted([anchor["backup_id"], history.manifests[-1]["backup_id"]])
    # Point-in-time restore to the cutoff (and to every hour since) is still possible.
    remaining = assert_consistent(repo)
    archive_end = parse_time(done["windows_after"][-1]["end"])
    assert archive_end == parse_time(done["windows_before"][-1]["end"])
    target = cutoff
    while target <= archive_end:
        base, needed = pgwal.plan_pitr(repo, "pg", remaining, target)
        assert needed
        target += datetime.timedelta(hours=7)
    assert base["backup_id"] in kept


def test_min_window_across_a_gap_keeps_a_base_on_each_side(repo_dir, repo):
    # WAL archiving stopped for a day 20 days before NOW: windows split there.
    gap = ("2026-08-12T06:00:00Z", "2026-08-13T06:00:00Z")
    history = pg_history(repo, gaps=[gap])
    dummy, done = apply(repo_dir, repo, keep_last=1, min_window="25d")
    assert len(done["windows_before"]) == 2
    kept = set(ids(done["kept"]))
    cutoff = NOW - datetime.timedelta(days=25)
    before_gap = max((m for m in history.manifests if parse_time(m["end_time"]) <= cutoff), key=lambda m: m["end_time"])
    after_gap = min((m for m in history.manifests if parse_time(m["end_time"]) >= parse_time(gap[1])), key=lambda m: m["end_time"])
    assert before_gap["backup_id"] in kept and after_gap["backup_id"] in kept
    assert len(done["windows_after"]) == 2
    assert done["windows_after"][0]["start"] == before_gap["end_time"]
    assert done["windows_after"][0]["end"] == done["windows_before"][0]["end"]
    assert done["windows_after"][1]["end"] == done["windows_before"][1]["end"]


def test_min_window_has_no_effect_without_a_log_archive(repo_dir, repo):
    gen = Generator(repo, "cache")
    for day in range(5):
        gen.backup("redis", "datafile", "2026-08-%02dT00:00:00Z" % (20 + day), {})
    dummy, done = apply(repo_dir, repo, cluster="cache", keep_last=2, min_window="30d")
    assert len(done["kept"]) == 2 and len(done["expired"]) == 3
    assert "min_window has no effect" in done["notes"][0]


def test_method_scope_leaves_other_methods_alone_but_they_anchor_wal(repo_dir, repo):
    history = pg_history(repo)
    segno = 30 * 24 + 3 + 1  # the hourly segment written at 2026-07-01T03:00
    snapshot_like = history.backup("postgresql", "volume-snapshot", "2026-07-01T03:00:00Z",
                                   {"start_wal": wal_name(1, segno), "stop_wal": wal_name(1, segno)})
    dummy, done = apply(repo_dir, repo, keep_last=3, engine="postgresql", method="pg-basebackup")
    assert snapshot_like["backup_id"] not in ids(done["expired"]) + ids(done["kept"])
    remaining = ids(assert_consistent(repo))
    assert snapshot_like["backup_id"] in remaining and len(remaining) == 4
    # WAL from the out-of-scope backup's start on stays, since it still needs it.
    assert min(pgwal.load(repo, "pg")[1]) == segno


def test_snapshot_backups_are_kept_until_a_provider_can_delete_them(repo_dir, repo):
    gen = Generator(repo, "vol")
    old = gen.backup("redis", "volume-snapshot", "2026-07-01T00:00:00Z", {}, snapshots=[{"provider": "zfs", "id": "tank/data@snap"}])
    for day in range(3):
        gen.backup("redis", "datafile", "2026-08-%02dT00:00:00Z" % (20 + day), {})
    dummy, done = apply(repo_dir, repo, cluster="vol", keep_last=1)
    assert ids(done["blocked"]) == [old["backup_id"]] and "zfs" in done["blocked"][0]["reason"]
    assert old["backup_id"] in ids(assert_consistent(repo, "vol"))
    assert len(done["expired"]) == 2


# MySQL binary logs -------------------------------------------------------------

def test_binlogs_before_the_oldest_kept_backup_go_per_basename(repo_dir, repo):
    gen = Generator(repo, "my")
    gen.mysql("2026-07-01T00:00:00Z", 40, binlog_minutes=60, basename="old-bin")
    gen.mysql("2026-08-10T00:00:00Z", 20, binlog_minutes=60, basename="mysql-bin")
    dummy, done = apply(repo_dir, repo, cluster="my", keep_last=10)
    remaining = assert_consistent(repo, "my")
    index = binlog.load(repo, "my")
    oldest = min(remaining, key=lambda m: m["end_time"])
    assert oldest["positions"]["binlog_file"].startswith("mysql-bin.")
    assert min(index["mysql-bin"]) == binlog.sequence(oldest["positions"]["binlog_file"])[1]
    # A basename no kept backup uses: only what ended before the oldest kept backup goes; here all of it.
    assert "old-bin" not in index
    assert sorted(row["kind"] for row in done["logs"]) == ["binlog"]
    assert done["windows_after"][-1]["end"] == done["windows_before"][-1]["end"]


# Interrupted runs and leftovers --------------------------------------------------

def test_interrupted_runs_and_uncommitted_writes_go_after_the_grace_period(repo_dir, repo):
    gen = pg_history(repo, days=3)
    old = "pg/backups/pg-pg-basebackup-20260801000000/base.tar.zst"
    young = "pg/backups/pg-pg-basebackup-20260901115900/base.tar.zst"
    repo.put_bytes(old, b"partial")
    repo.put_bytes(young, b"partial")
    os.utime(repo.path_of(old), (NOW.timestamp() - 3 * 86400,) * 2)
    os.utime(repo.path_of(young), (NOW.timestamp() - 60,) * 2)
    corrupt = "pg/backups/pg-pg-basebackup-20260701000000/manifest.json"
    repo.put_bytes(corrupt, b"{not json")
    tmp = os.path.join(os.path.dirname(repo.path_of(old)), ".base.tar.zst.tmp-0123456789ab")
    with open(tmp, "wb") as handle:
        handle.write(b"half")
    os.utime(tmp, (NOW.timestamp() - 3 * 86400,) * 2)
    dummy, done = apply(repo_dir, repo, keep_last=3)
    assert ids(done["incomplete"]) == ["pg-pg-basebackup-20260801000000"]
    left = dict((row["backup_id"], row["reason"]) for row in done["incomplete_left"])
    assert "incomplete_grace" in left["pg-pg-basebackup-20260901115900"]
    assert "cannot be read" in left["pg-pg-basebackup-20260701000000"]
    assert [p["key"] for p in done["partial_uploads"]] == ["pg/backups/pg-pg-basebackup-20260801000000/base.tar.zst"]
    assert not os.path.exists(tmp) and not repo.exists(old)
    assert repo.exists(young) and repo.exists(corrupt)
    assert len(gen.manifests) == 3 and len(assert_consistent(repo)) == 3


def test_a_running_writer_blocks_retention_and_nothing_changes(repo_dir, repo):
    pg_history(repo, days=10)
    before = listing(repo)
    with Lease(repo, "pg", "backup pg-pg-basebackup-20260901120000"):
        with pytest.raises(LeaseHeld, match="busy: backup pg-pg-basebackup"):
            retention.run_retention(spec(repo_dir), "pg", retention.Policy(keep_last=2), now=NOW)
        planned = retention.run_retention(spec(repo_dir), "pg", retention.Policy(keep_last=2), check_mode=True, now=NOW)
        assert "is busy now" in planned["notes"][0]
    # The lease is not part of the listing once released; the rest is untouched.
    assert [k for k in listing(repo) if "/locks/" not in k[0]] == [k for k in before if "/locks/" not in k[0]]


@pytest.mark.parametrize("fail_after", [1, 3, 26])  # 26 backups go, one delete per backup, then the WAL
def test_an_interrupted_run_leaves_a_consistent_repository_and_a_rerun_finishes(repo_dir, repo, monkeypatch, fail_after):
    pg_history(repo, days=30)
    real = LocalRepo.delete_many
    calls = {"n": 0}

    def failing(self, keys):
        calls["n"] += 1
        if calls["n"] > fail_after:
            raise OSError("disk went away")
        return real(self, keys)

    monkeypatch.setattr(LocalRepo, "delete_many", failing)
    with pytest.raises(OSError):
        retention.run_retention(spec(repo_dir), "pg", retention.Policy(keep_last=4), now=NOW)
    monkeypatch.setattr(LocalRepo, "delete_many", real)
    assert_consistent(repo)
    assert not repo.exists("pg/locks/writer.lease")  # a failing run releases its lease
    # The remnants were written just now (real clock): a rerun an hour later removes them.
    done = retention.run_retention(spec(repo_dir), "pg", retention.Policy(keep_last=4, incomplete_grace="1m"), now=utcnow() + datetime.timedelta(hours=1))
    assert len(assert_consistent(repo)) == 4
    assert not done["incomplete_left"]
    windows = engines.windows("postgresql", repo, "pg", catalog.scan_cluster(repo, "pg")[0])
    assert len(windows) == 1


def test_a_pruning_that_would_shorten_a_kept_window_is_refused(repo_dir, repo, monkeypatch):
    pg_history(repo, days=10)
    before = listing(repo)
    real = pgwal.prunable

    def greedy(repo_, cluster, index, kept):
        found = real(repo_, cluster, index, kept)
        newest = max(index[1])
        return found + [index[1][newest - 10]]

    monkeypatch.setattr(pgwal, "prunable", greedy)
    with pytest.raises(IntegrityError, match="would shorten a window"):
        retention.run_retention(spec(repo_dir), "pg", retention.Policy(keep_last=3), now=NOW)
    assert [k for k in listing(repo) if "/locks/" not in k[0]] == before


def test_scheduled_run_reports_the_backup_when_retention_then_fails(tmp_path, monkeypatch, capsys):
    """The host command a timer runs: a committed backup is reported even when the retention after it fails (exit 4)."""
    import json

    from ansible_collections.dataprotection.databases.plugins.module_utils import backup, cli

    def fake_backup(spec_, request, check_mode=False, lease_ttl=None):
        assert request.method == "pg-basebackup" and request.labels == {"schedule": "n"}
        return {"changed": True, "backup": {"backup_id": "c-pg-basebackup-20261125020000", "status": "completed"}, "manifest": {}}

    def busy(*args, **kwargs):
        raise LeaseHeld("cluster c is busy: retention by host h")

    monkeypatch.setattr(backup, "run_backup", fake_backup)
    monkeypatch.setattr(retention, "run_retention", busy)
    config = tmp_path / "schedule-n.json"
    config.write_text(json.dumps({"repo": {"type": "local", "path": str(tmp_path)}, "cluster": "c", "engine": "postgresql",
                                  "method": "pg-basebackup", "labels": {"schedule": "n"}, "retention": {"keep_last": 3, "retain_latest": True}}))
    assert cli.main(["--config", str(config), "scheduled-backup"]) == cli.EXIT_ERROR
    out, err = capsys.readouterr()
    report = json.loads(out)
    assert report["backup"]["backup_id"] == "c-pg-basebackup-20261125020000" and "busy" in report["retention_error"]
    assert "backup c-pg-basebackup-20261125020000 completed; retention failed" in err
    # A cluster's log_backup configuration is not a schedule's.
    config.write_text(json.dumps({"repo": {}, "cluster": "c", "engine": "postgresql"}))
    assert cli.main(["--config", str(config), "scheduled-backup"]) == cli.EXIT_CONFIG


def test_retention_on_s3_aborts_stale_multipart_uploads_and_deletes_through_the_s3_api(s3_server):
    """Against the S3 protocol server: the same policy, batched deletes, and a killed writer's pending upload aborted."""
    from ansible_collections.dataprotection.databases.plugins.module_utils.repository_s3 import S3Repo

    bucket = s3_server.make_bucket()
    s3_spec = s3_server.repo_spec(bucket, prefix="team")
    repo = S3Repo(s3_spec)
    try:
        write_config(repo, new_config()[0])
        Generator(repo, "pg").postgresql(START, 6, segment_minutes=240)
        client = s3_server.client()
        pending = client.create_multipart_upload(Bucket=bucket, Key="team/pg/backups/pg-pg-basebackup-20260604000010/base.tar.zst")
        other = client.create_multipart_upload(Bucket=bucket, Key="team/elsewhere/backups/x/base.tar.zst")
        later = utcnow() + datetime.timedelta(days=2)  # the uploads are older than the grace period then
        planned = retention.run_retention(s3_spec, "pg", retention.Policy(keep_last=2), check_mode=True, now=later)
        assert [p["id"] for p in planned["partial_uploads"]] == [pending["UploadId"]]
        assert len(client.list_multipart_uploads(Bucket=bucket)["Uploads"]) == 2
        done = retention.run_retention(s3_spec, "pg", retention.Policy(keep_last=2), now=later)
        assert len(done["expired"]) == 4 and done["logs"][0]["count"] > 0
        uploads = client.list_multipart_uploads(Bucket=bucket).get("Uploads") or []
        assert [u["UploadId"] for u in uploads] == [other["UploadId"]]
        assert len(assert_consistent(repo)) == 2
        # A user who may not list pending uploads still gets the retention, and a note saying what was skipped.
        policy = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Resource": "*", "Action": [
            "s3:GetObject", "s3:PutObject", "s3:DeleteObject", "s3:ListBucket", "s3:HeadBucket", "s3:GetBucketLocation"]}]}
        access, secret = s3_server.make_user("retention", policy)
        limited = dict(s3_spec, access_key=access, secret_key=secret)
        again = retention.run_retention(limited, "pg", retention.Policy(keep_last=1), now=later)
        assert len(again["expired"]) == 1 and "s3:ListBucketMultipartUploads" in again["notes"][0]
    finally:
        repo.close()


class _Provider(object):
    """A stand-in snapshot provider recording deletions (the real providers are tested against their own systems);
    it tests retention's side of the contract: the order, and a deletion that fails."""

    def __init__(self):
        self.existing = set()
        self.fail = False

    def delete(self, record):
        if self.fail:
            from ansible_collections.dataprotection.databases.plugins.module_utils.errors import EngineError
            raise EngineError("provider unreachable")
        if record["id"] in self.existing:
            self.existing.discard(record["id"])
            return True
        return False


def test_snapshot_backups_go_through_their_provider_and_a_failed_deletion_is_retried(repo_dir, repo, monkeypatch):
    from ansible_collections.dataprotection.databases.plugins.module_utils import snapshots

    fake = _Provider()
    monkeypatch.setitem(snapshots.REGISTRY, "stand-in", fake)
    gen = Generator(repo, "vol")
    olds = []
    for day in range(3):
        record = {"provider": "stand-in", "id": "snap-%d" % day, "source": "vol-1"}
        fake.existing.add(record["id"])
        olds.append(gen.backup("redis", "volume-snapshot", "2026-08-%02dT00:00:00Z" % (10 + day), {}, snapshots=[record]))
    gen.backup("redis", "datafile", "2026-08-20T00:00:00Z", {})
    dummy, done = apply(repo_dir, repo, cluster="vol", keep_last=2)
    assert ids(done["expired"]) == [olds[0]["backup_id"], olds[1]["backup_id"]] and not done["blocked"]
    assert [r["id"] for r in done["snapshots_deleted"]] == ["snap-0", "snap-1"] and fake.existing == {"snap-2"}
    # The provider fails after the un-commit: the backup is gone, its snapshot listed for the next run.
    gen.backup("redis", "datafile", "2026-08-21T00:00:00Z", {})
    fake.fail = True
    with pytest.raises(Exception, match="provider unreachable"):
        retention.run_retention(spec(repo_dir), "vol", retention.Policy(keep_last=2), now=NOW)
    assert olds[2]["backup_id"] not in ids(assert_consistent(repo, "vol"))
    assert repo.exists(retention.pending_key("vol", olds[2]["backup_id"])) and fake.existing == {"snap-2"}
    fake.fail = False
    done = retention.run_retention(spec(repo_dir), "vol", retention.Policy(keep_last=2), now=NOW)
    assert [r["id"] for r in done["snapshots_deleted"]] == ["snap-2"] and not fake.existing and done["changed"]
    assert not list(repo.list("vol/pending-deletions/"))
