# -*- coding: utf-8 -*-
# Copyright: contributors to the dataprotection.databases collection
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Schedules and retention against a real PostgreSQL 15, through ansible-playbook.

The unit files a schedule writes pass ``systemd-analyze verify``; the exact
command line in them (and in the cron entry) is run by the test and takes a
real backup, then applies retention.  systemd does not run as init on the test
machines and no cron daemon is installed, so the timers themselves never fire
here: what they would run is run instead, and ``systemd-analyze calendar``
checks when they would run.  Retention also runs on real backups with real
archived WAL, and the point-in-time window of the kept backup is asserted
intact and usable (a restore plan to a time inside it).
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json
import os
import shlex
import subprocess
import time

import pytest

from ansible_collections.dataprotection.databases.plugins.module_utils.repository import LocalRepo
from harness.playbook import iso, now, run_tasks, task
from harness.synthetic import Generator


def local_repo(base):
    return {"type": "local", "path": str(base / "repo")}


def exec_start(path):
    for line in open(path).read().splitlines():
        if line.startswith("ExecStart="):
            return line[len("ExecStart="):]
    raise AssertionError("no ExecStart in %s" % path)


def run_command(command):
    proc = subprocess.run(shlex.split(command), stdout=subprocess.PIPE, stderr=subprocess.PIPE, universal_newlines=True, timeout=300, check=False)
    assert proc.returncode == 0, (command, proc.stdout, proc.stderr)
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_systemd_schedule_runs_a_real_backup_then_retention(tmp_path, postgres_factory, agent):
    pg = postgres_factory()
    pg.psql("CREATE TABLE t(id int); INSERT INTO t SELECT generate_series(1, 1000)")
    repo = local_repo(tmp_path)
    assert run_tasks([task("backup_repo", "repo", repo=repo)])["repo"]["changed"]
    # Months of older backups of the same cluster and method, generated.
    old = Generator(LocalRepo(repo), "orders")
    for month in range(3, 9):
        old.backup("postgresql", "pg-basebackup", "2026-%02d-01T02:30:40Z" % month, {})
    units = tmp_path / "units"
    sched = dict(repo=repo, name="orders-nightly", cluster="orders", engine="postgresql", connection=pg.connection, cron="30 2 * * 1-5",
                 keep_last=2, scheduler="systemd", scheduler_dir=str(units), **agent)

    run = run_tasks([task("backup_schedule", "planned", **sched)], check=True, diff=True)
    planned = run["planned"]
    assert planned["changed"] and not units.exists() and not os.path.exists(planned["config_path"]), run
    assert planned["on_calendar"] == ["Mon..Fri *-*-* 02:30:00 UTC"] and planned["on_calendar_normalized"] == planned["on_calendar"]
    assert len(planned["next_runs"]) == 5 and all(t.endswith("T02:30:00Z") for t in planned["next_runs"])
    assert sorted(os.path.basename(p) for p in planned["plan"]["write"]) == [
        "dataprotection-backup-orders-nightly.service", "dataprotection-backup-orders-nightly.timer", "schedule-orders-nightly.json"]
    assert "OnCalendar=Mon..Fri *-*-* 02:30:00 UTC" in run.stdout  # the diff shows the timer

    run = run_tasks([task("backup_schedule", "made", **sched), task("backup_schedule", "again", **sched)])
    made = run["made"]
    assert made["changed"] and run["again"]["changed"] is False, run
    assert "systemd is not running" in made["notes"][0]
    service, timer = str(units / "dataprotection-backup-orders-nightly.service"), str(units / "dataprotection-backup-orders-nightly.timer")
    config = json.load(open(made["config_path"]))
    assert oct(os.stat(made["config_path"]).st_mode & 0o777) == "0o600"
    assert config["retention"]["keep_last"] == 2 and config["retention"]["method"] == "pg-basebackup"
    assert pg.connection["password"] not in run.stdout
    verify = subprocess.run(["systemd-analyze", "verify", timer, service], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            universal_newlines=True, check=False)
    assert verify.returncode == 0, verify.stdout
    assert exec_start(service) == made["command"]

    # What the timer runs, run twice: two real backups; retention keeps the newest two of this method.
    first = run_command(exec_start(service))
    time.sleep(1.1)
    second = run_command(exec_start(service))
    assert second["backup"]["status"] == "completed"
    assert sorted(second["retention"]["kept"]) == sorted([first["backup"]["backup_id"], second["backup"]["backup_id"]])
    assert len(first["retention"]["expired"]) == 5 and second["retention"]["expired"] == [first["retention"]["kept"][-1]]
    run = run_tasks([task("backup_info", "info", repo=repo, cluster="orders", verify=True)])
    info = run["info"]
    assert [b["backup_id"] for b in info["backups"]] == [second["backup"]["backup_id"], first["backup"]["backup_id"]], run
    assert info["verification"]["ok"] and info["backups"][0]["labels"]["schedule"] == "orders-nightly"

    # Disabled keeps the files; absent removes them all.
    # Disabling a systemd timer changes no file (systemd holds the enablement; it does not run here).
    run = run_tasks([task("backup_schedule", "off", enabled=False, **sched)])
    assert run["off"]["enabled"] is False and run["off"]["changed"] is False and os.path.exists(timer), run
    absent = dict(repo=repo, name="orders-nightly", cluster="orders", engine="postgresql", state="absent", scheduler_dir=str(units),
                  config_dir=agent["config_dir"])
    run = run_tasks([task("backup_schedule", "check", **absent)], check=True)
    assert run["check"]["changed"] and os.path.exists(service), run
    run = run_tasks([task("backup_schedule", "gone", **absent), task("backup_schedule", "gone_again", **absent)])
    assert sorted(run["gone"]["removed"]) == sorted([service, timer, made["config_path"]]) and run["gone_again"]["changed"] is False, run
    assert not os.listdir(str(units))


def test_cron_schedule_line_runs_the_backup(tmp_path, postgres_factory, agent):
    pg = postgres_factory()
    repo = local_repo(tmp_path)
    run_tasks([task("backup_repo", "repo", repo=repo)])
    cron_dir = tmp_path / "cron.d"
    sched = dict(repo=repo, name="orders.hourly", cluster="orders", engine="postgresql", connection=pg.connection, cron="@hourly",
                 retention_period="30d", scheduler="cron", scheduler_dir=str(cron_dir), **agent)
    run = run_tasks([task("backup_schedule", "made", **sched)])
    made = run["made"]
    assert made["changed"] and made["period_seconds"] == 3600 and made["on_calendar"] == [], run
    path = str(cron_dir / "dataprotection-backup-orders_hourly")
    lines = [line for line in open(path).read().splitlines() if line and not line.startswith("#")]
    assert lines[0] == "CRON_TZ=UTC"
    fields = lines[1].split(None, 2)
    assert fields[0] == "@hourly" and fields[1] == "root" and fields[2] == made["command"]
    report = run_command(fields[2])
    assert report["backup"]["status"] == "completed" and report["retention"]["expired"] == []
    run = run_tasks([task("backup_schedule", "off", **dict(sched, enabled=False))])
    assert run["off"]["changed"] and "# disabled: @hourly root " in open(path).read(), run


def test_bad_schedules_are_refused_and_write_nothing(tmp_path, postgres_factory, agent):
    pg = postgres_factory()
    repo = local_repo(tmp_path)
    run_tasks([task("backup_repo", "repo", repo=repo)])
    units = tmp_path / "units"
    base = dict(repo=repo, name="n", cluster="orders", engine="postgresql", connection=pg.connection, cron="0 2 * * *",
                scheduler="systemd", scheduler_dir=str(units), **agent)
    run = run_tasks([
        task("backup_schedule", "cron", **dict(base, cron="0 25 * * *")),
        task("backup_schedule", "seconds", **dict(base, cron="0 0 2 * * *")),
        task("backup_schedule", "never", **dict(base, cron="0 0 30 2 *")),
        task("backup_schedule", "period", **dict(base, retention_period="7days")),
        task("backup_schedule", "method", **dict(base, engine="redis", method="binlog-archive")),
        task("backup_schedule", "logretention", **dict(base, method="wal-archive", keep_last=3)),
        task("backup_schedule", "password", **dict(base, connection=dict(pg.connection, password="not-the-password"))),
        task("backup_schedule", "name", **dict(base, name="../etc/x")),
    ])
    assert "hour 25 is outside 0-23" in run["cron"]["msg"], run
    assert "six fields" in run["seconds"]["msg"] or "seconds" in run["seconds"]["msg"], run["seconds"]
    assert "never runs" in run["never"]["msg"]
    assert "is not a retention period" in run["period"]["msg"] and "30d12h" in run["period"]["msg"]
    assert "binlog-archive" in run["method"]["msg"] and "redis" in run["method"]["msg"]
    assert "retention applies to full-backup schedules" in run["logretention"]["msg"]
    assert run["password"]["failed"] and "password" in run["password"]["msg"].lower(), run["password"]
    assert "schedule name" in run["name"]["msg"]
    assert all(run[name]["failed"] for name in ("cron", "seconds", "never", "period", "method", "logretention", "password", "name"))
    assert not units.exists() and not [n for n in os.listdir(agent["config_dir"]) if n.startswith("schedule-")]


def test_retention_on_real_backups_keeps_the_kept_window_usable(tmp_path, postgres_factory, server_tmp_path, agent):
    pg = postgres_factory()
    repo = {"type": "local", "path": str(server_tmp_path / "repo")}  # archive_command runs as postgres
    common = dict(repo=repo, cluster="shop", engine="postgresql", connection=pg.connection)
    run = run_tasks([task("backup_repo", "repo", repo=repo, owner="postgres"),
                     task("log_backup", "enabled", archive_timeout=5, wait_timeout=30, **dict(common, **agent))])
    assert run["enabled"]["changed"], run
    pg.restart()
    pg.psql("CREATE TABLE orders(id int)")
    taken = []
    for round_ in range(3):
        pg.psql("INSERT INTO orders VALUES (%d)" % round_)
        run = run_tasks([task("backup", "b", **common)])
        taken.append(run["b"]["backup"]["backup_id"])
        pg.psql("INSERT INTO orders VALUES (%d)" % (round_ + 100))
        time.sleep(1.1)
    middle = now()
    time.sleep(1.1)
    pg.psql("INSERT INTO orders VALUES (999)")
    run = run_tasks([task("log_backup", "synced", state="synced", wait_timeout=30, **dict(common, **agent))])
    windows = run["synced"]["windows"]
    assert len(windows) == 1 and sorted(windows[0]["base_backups"]) == sorted(taken), run

    keep = dict(repo=repo, cluster="shop", keep_last=1)
    run = run_tasks([task("backup_retention", "plan", **keep)], check=True)
    plan = run["plan"]
    assert [row["backup_id"] for row in plan["expired"]] == taken[:2] and plan["logs"] and plan["logs"][0]["kind"] == "wal", run
    listed = sorted(os.listdir(os.path.join(repo["path"], "shop", "backups")))
    assert listed == sorted(taken), "check mode deleted something"
    run = run_tasks([task("backup_retention", "done", **keep), task("backup_info", "info", repo=repo, cluster="shop", verify=True),
                     task("restore", "pitr", repo=repo, cluster="shop", engine="postgresql", restore_time=iso(middle),
                          data_dir=str(server_tmp_path / "pitr"))], check=False)
    done, info = run["done"], run["info"]
    assert [b["backup_id"] for b in info["backups"]] == [taken[2]] and info["verification"]["ok"], run
    # The kept base's window is unshortened. The server keeps archiving (archive_timeout 5 s), so by the time
    # retention and then backup_info look, its end may only have moved later.
    after = done["windows_after"]
    assert len(after) == 1 and after[0]["base_backups"] == [taken[2]] and after[0]["start"] > windows[0]["start"], after
    assert windows[0]["end"] <= after[0]["end"] <= info["clusters"][0]["windows"][0]["end"]
    assert after[0]["end"] == done["windows_before"][0]["end"]  # the same run: pruning shortened nothing
    assert run["pitr"]["changed"] and run["pitr"]["restored"]["backup_id"] == taken[2], run["pitr"]
    # WAL before the kept base's start segment is gone.
    wal = sorted(name for dirpath, dummy, names in os.walk(os.path.join(repo["path"], "shop", "logs", "wal")) for name in names
                 if dirpath.endswith("0000000100000000"))
    kept_start = json.load(open(os.path.join(repo["path"], "shop", "backups", taken[2], "manifest.json")))["positions"]["start_wal"]
    assert wal and wal[0][:24] == kept_start, (wal[:3], kept_start)


@pytest.mark.parametrize("cron, expected, shown", [("*/5 * * * *", 300, "5min"), ("0 * * * *", 3600, "1h")])
def test_a_log_schedule_is_the_log_shipping_with_the_cron_period(tmp_path, postgres_factory, server_tmp_path, agent, cron, expected, shown):
    pg = postgres_factory()
    repo = {"type": "local", "path": str(server_tmp_path / "repo")}
    run_tasks([task("backup_repo", "repo", repo=repo, owner="postgres")])
    sched = dict(repo=repo, name="shop-wal", cluster="shop", engine="postgresql", method="wal-archive", connection=pg.connection,
                 cron=cron, **agent)
    run = run_tasks([task("backup_schedule", "made", **sched)])
    made = run["made"]
    assert made["changed"] and made["shipping_interval_seconds"] == expected and made["restart_required"], run
    assert pg.setting("archive_timeout") == shown
    run = run_tasks([task("backup_schedule", "gone", **dict(sched, state="absent"))])
    assert run["gone"]["changed"] and run["gone"]["log_backup"]["changed"], run
