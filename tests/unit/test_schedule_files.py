# -*- coding: utf-8 -*-
# Copyright: contributors to the dataprotection.databases collection
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The files a schedule writes, without a database (validate off): content, idempotence, switching
scheduler, and the refusals.  tests/integration/test_schedule.py runs what the files say against a
real PostgreSQL."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os

import pytest

from ansible_collections.dataprotection.databases.plugins.module_utils import schedule, tools
from ansible_collections.dataprotection.databases.plugins.module_utils.errors import ConfigError, UnsupportedError


def request(tmp_path, **overrides):
    args = dict(repo_spec={"type": "local", "path": str(tmp_path / "repo")}, name="nightly", cluster="orders", engine="postgresql",
                cron="30 2 * * *", retention={"keep_last": 7},
                options={"scheduler": "systemd", "scheduler_dir": str(tmp_path / "units"), "config_dir": str(tmp_path / "etc"),
                         "agent_command": "/bin/true"})
    options = dict(args["options"], **overrides.pop("options", {}))
    args.update(overrides)
    args["options"] = options
    return schedule.ScheduleRequest(**args)


def test_check_mode_then_write_then_nothing_to_do(tmp_path):
    planned = schedule.ensure_present(request(tmp_path), check_mode=True, validate=False)
    assert planned["changed"] and not (tmp_path / "units").exists() and not (tmp_path / "etc").exists()
    assert [os.path.basename(p) for p in planned["plan"]["write"]] == [
        "dataprotection-backup-nightly.service", "dataprotection-backup-nightly.timer", "schedule-nightly.json"]
    made = schedule.ensure_present(request(tmp_path), validate=False)
    assert made["changed"] and made["on_calendar"] == ["*-*-* 02:30:00 UTC"] and made["period_seconds"] == 86400
    timer = (tmp_path / "units" / "dataprotection-backup-nightly.timer").read_text()
    assert "OnCalendar=*-*-* 02:30:00 UTC\n" in timer and "Persistent=true" in timer
    service = (tmp_path / "units" / "dataprotection-backup-nightly.service").read_text()
    assert "ExecStart=/bin/true --config %s scheduled-backup\n" % (tmp_path / "etc" / "schedule-nightly.json") in service
    assert oct(os.stat(made["config_path"]).st_mode & 0o777) == "0o600"
    assert schedule.ensure_present(request(tmp_path), validate=False)["changed"] is False
    changed = schedule.ensure_present(request(tmp_path, cron="0 3 1,15 * 5"), validate=False)
    assert changed["changed"] and [d["before_header"] for d in changed["diff"]] == [
        str(tmp_path / "units" / "dataprotection-backup-nightly.timer"), changed["config_path"]]
    # The configuration holds credentials: its diff says only that it changes.
    assert changed["diff"][1]["after"].startswith("(configuration with repository credentials")
    # cron ORs the two day fields; OnCalendar needs two lines for that.
    assert "OnCalendar=*-*-01,15 03:00:00 UTC\nOnCalendar=Fri *-*-* 03:00:00 UTC\n" in changed["diff"][0]["after"]


def test_switching_to_cron_removes_the_units(tmp_path):
    schedule.ensure_present(request(tmp_path), validate=False)
    cron = schedule.ensure_present(request(tmp_path, options={"scheduler": "cron"}), validate=False)
    assert cron["changed"] and sorted(os.listdir(str(tmp_path / "units"))) == ["dataprotection-backup-nightly"]
    text = (tmp_path / "units" / "dataprotection-backup-nightly").read_text()
    assert "CRON_TZ=UTC\n30 2 * * * root /bin/true --config" in text
    gone = schedule.ensure_absent("nightly", request(tmp_path).options)
    assert gone["changed"] and not os.listdir(str(tmp_path / "units")) and not os.listdir(str(tmp_path / "etc"))


def test_cron_on_a_host_not_in_utc_needs_a_cron_that_honours_cron_tz(tmp_path, monkeypatch):
    monkeypatch.setattr(schedule, "host_in_utc", lambda: False)
    monkeypatch.setattr(tools, "find_tool", lambda name, **kwargs: None)
    with pytest.raises(ConfigError) as err:
        schedule.ensure_present(request(tmp_path, options={"scheduler": "cron"}), validate=False)
    assert "local time is not UTC" in err.value.message and "cronie" in err.value.hint
    assert not (tmp_path / "units").exists()
    monkeypatch.setattr(tools, "find_tool", lambda name, **kwargs: "/usr/sbin/crond" if name == "crond" else None)
    assert schedule.ensure_present(request(tmp_path, options={"scheduler": "cron"}), validate=False)["changed"]


@pytest.mark.parametrize("overrides, error, text", [
    ({"name": "a/b"}, ConfigError, "schedule name"),
    ({"engine": "redis", "method": "binlog-archive"}, UnsupportedError, "binlog-archive"),
    ({"method": "wal-archive"}, ConfigError, "retention applies to full-backup schedules"),
    ({"retention": {"retention_period": "fortnight"}}, ConfigError, "is not a retention period"),
    ({"cron": "*/0 * * * *"}, ConfigError, "step"),
    ({"options": {"user": "no-such-user-here"}}, ConfigError, "does not exist"),
])
def test_refusals_write_nothing(tmp_path, overrides, error, text):
    with pytest.raises(error) as err:
        schedule.ensure_present(request(tmp_path, **overrides), validate=False)
    assert text in str(err.value)
    assert not (tmp_path / "units").exists() and not (tmp_path / "etc").exists()
