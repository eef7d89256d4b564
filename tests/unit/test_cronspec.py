# -*- coding: utf-8 -*-
# Copyright: contributors to the dataprotection.databases collection
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Cron schedules: parsing, refusals, next runs, periods and systemd OnCalendar."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import datetime

import pytest

from ansible_collections.dataprotection.databases.plugins.module_utils import cronspec, tools
from ansible_collections.dataprotection.databases.plugins.module_utils.errors import ConfigError
from ansible_collections.dataprotection.databases.plugins.module_utils.timeutil import UTC, parse_time

ALL_MINUTES = tuple(range(60))
ALL_HOURS = tuple(range(24))
ALL_DAYS = tuple(range(1, 32))
ALL_MONTHS = tuple(range(1, 13))
ALL_WEEKDAYS = tuple(range(7))


def t(text):
    return parse_time(text)


def times(*texts):
    return [t(text) for text in texts]


@pytest.mark.parametrize("expr,minutes,hours,days,months,weekdays,dom_restricted,dow_restricted", [
    ("* * * * *", ALL_MINUTES, ALL_HOURS, ALL_DAYS, ALL_MONTHS, ALL_WEEKDAYS, False, False),
    ("*/15 * * * *", (0, 15, 30, 45), ALL_HOURS, ALL_DAYS, ALL_MONTHS, ALL_WEEKDAYS, False, False),
    ("5,10-12,50-59/3 * * * *", (5, 10, 11, 12, 50, 53, 56, 59), ALL_HOURS, ALL_DAYS, ALL_MONTHS, ALL_WEEKDAYS, False, False),
    ("30/10 9-17/2 * * *", (30, 40, 50), (9, 11, 13, 15, 17), ALL_DAYS, ALL_MONTHS, ALL_WEEKDAYS, False, False),
    ("0 0 * jan,MAR-may *", (0,), (0,), ALL_DAYS, (1, 3, 4, 5), ALL_WEEKDAYS, False, False),
    ("0 0 * Dec/2 *", (0,), (0,), ALL_DAYS, (12,), ALL_WEEKDAYS, False, False),
    ("0 0 * * MON-fri", (0,), (0,), ALL_DAYS, ALL_MONTHS, (1, 2, 3, 4, 5), False, True),
    ("0 0 * * 7", (0,), (0,), ALL_DAYS, ALL_MONTHS, (0,), False, True),
    ("0 0 * * sun,7,0", (0,), (0,), ALL_DAYS, ALL_MONTHS, (0,), False, True),
    ("0 0 * * 5-7", (0,), (0,), ALL_DAYS, ALL_MONTHS, (0, 5, 6), False, True),
    ("0 0 * * fri-7", (0,), (0,), ALL_DAYS, ALL_MONTHS, (0, 5, 6), False, True),
    ("0 0 * * 1/2", (0,), (0,), ALL_DAYS, ALL_MONTHS, (0, 1, 3, 5), False, True),  # 1,3,5,7 as in cron
    ("0 0 * * */2", (0,), (0,), ALL_DAYS, ALL_MONTHS, (0, 2, 4, 6), False, False),
    ("0 0 */10 * *", (0,), (0,), (1, 11, 21, 31), ALL_MONTHS, ALL_WEEKDAYS, False, False),
    ("0 0 1,15 * 5", (0,), (0,), (1, 15), ALL_MONTHS, (5,), True, True),
    ("0 0 1-31 * 0-6", (0,), (0,), ALL_DAYS, ALL_MONTHS, ALL_WEEKDAYS, True, True),
    ("0 0 31 2 1", (0,), (0,), (31,), (2,), (1,), True, True),
    ("  0\t2 * *   *  ", (0,), (2,), ALL_DAYS, ALL_MONTHS, ALL_WEEKDAYS, False, False),
    ("@yearly", (0,), (0,), (1,), (1,), ALL_WEEKDAYS, True, False),
    ("@annually", (0,), (0,), (1,), (1,), ALL_WEEKDAYS, True, False),
    ("@monthly", (0,), (0,), (1,), ALL_MONTHS, ALL_WEEKDAYS, True, False),
    ("@weekly", (0,), (0,), ALL_DAYS, ALL_MONTHS, (0,), False, True),
    ("@daily", (0,), (0,), ALL_DAYS, ALL_MONTHS, ALL_WEEKDAYS, False, False),
    ("@midnight", (0,), (0,), ALL_DAYS, ALL_MONTHS, ALL_WEEKDAYS, False, False),
    ("@HOURLY", (0,), ALL_HOURS, ALL_DAYS, ALL_MONTHS, ALL_WEEKDAYS, False, False),
])
def test_parse(expr, minutes, hours, days, months, weekdays, dom_restricted, dow_restricted):
    spec = cronspec.parse(expr)
    assert spec.expr == expr.strip()
    assert (spec.minutes, spec.hours, spec.days, spec.months, spec.weekdays) == (minutes, hours, days, months, weekdays)
    assert (spec.dom_restricted, spec.dow_restricted) == (dom_restricted, dow_restricted)


@pytest.mark.parametrize("expr,message,hint", [
    ("61 * * * *", "cron '61 * * * *': minute 61 is outside 0-59", cronspec.FORM),
    ("0 24 * * *", "hour 24 is outside 0-23", cronspec.FORM),
    ("0 0 0 * *", "day-of-month 0 is outside 1-31", cronspec.FORM),
    ("0 0 32 * *", "day-of-month 32 is outside 1-31", cronspec.FORM),
    ("0 0 * 13 *", "month 13 is outside 1-12", cronspec.FORM),
    ("0 0 * * 8", "day-of-week 8 is outside 0-7", cronspec.FORM),
    ("0 0 * foo *", "month foo is neither a number 1-12 nor a name jan..dec", cronspec.FORM),
    ("0 0 * * monday", "day-of-week monday is neither a number 0-7 nor a name sun..sat", cronspec.FORM),
    ("x * * * *", "minute x is not a number", cronspec.FORM),
    ("? * * * *", "minute field item '?' is not a value", cronspec.FORM),
    ("0 0 L * *", "day-of-month l is not a number", cronspec.FORM),
    ("0 0 * * 1#2", "day-of-week field item '1#2' is not a value", cronspec.FORM),
    ("*/x * * * *", "minute step 'x' is not a number", cronspec.FORM),
    ("0 0 * *", "cron '0 0 * *': has 4 fields instead of five", cronspec.FORM),
    ("0 0 * * * * 2026", "has 7 fields instead of five", cronspec.FORM),
    ("", "cron '' is empty", cronspec.FORM),
    ("   ", "cron '' is empty", cronspec.FORM),
    (None, "cron '' is empty", cronspec.FORM),
    ("0 0 2 * * *", "cron '0 0 2 * * *': has six fields; seconds are not supported", "Drop the seconds field"),
    ("@every 1h", "cron '@every 1h': @every is not a calendar schedule", "'0 * * * *' for hourly"),
    ("@reboot", "@reboot is not a calendar schedule", "Give calendar times"),
    ("@fortnightly", "unknown descriptor '@fortnightly'", "@daily"),
    ("@daily 5", "unknown descriptor '@daily 5'", "@daily"),
    ("*/0 * * * *", "cron '*/0 * * * *': minute step 0 in '*/0' is not allowed", "A step is 1 or more"),
    ("0 0 1-10/0 * *", "day-of-month step 0 in '1-10/0' is not allowed", "A step is 1 or more"),
    ("30-10 * * * *", "cron '30-10 * * * *': minute range 30-10 is reversed", "'50-59,0-10'"),
    ("0 0 * nov-feb *", "month range nov-feb is reversed", "low-high"),
    ("0 0 * * sat-sun", "day-of-week range sat-sun is reversed", "'sat,sun'"),
    ("1,,2 * * * *", "minute field '1,,2' has an empty list item", "single commas"),
    ("0 0 1, * *", "day-of-month field '1,' has an empty list item", "single commas"),
    ("0 0 ,5 * *", "has an empty list item", "single commas"),
    ("0 0 30 2 *", "cron '0 0 30 2 *': never runs", "February has 29 days at most"),
    ("0 0 31 4,6,9,11 *", "cron '0 0 31 4,6,9,11 *': never runs", "April, June, September and November have 30"),
    ("0 0 30,31 feb *", "never runs", "February"),
    ("0 0 31 2 */2", "never runs", "February"),
])
def test_parse_refusals(expr, message, hint):
    with pytest.raises(ConfigError) as caught:
        cronspec.parse(expr)
    assert message in caught.value.message
    assert hint in caught.value.hint


def test_parse_refusal_hint_shows_the_form():
    with pytest.raises(ConfigError) as caught:
        cronspec.parse("61 * * * *")
    assert caught.value.message == "cron '61 * * * *': minute 61 is outside 0-59"
    assert "five fields in UTC: minute hour day-of-month month day-of-week, e.g. '0 2 * * *'" in caught.value.hint


@pytest.mark.parametrize("expr,after,expected", [
    ("*/15 * * * *", "2026-03-10T10:07:30Z",
     ["2026-03-10T10:15:00Z", "2026-03-10T10:30:00Z", "2026-03-10T10:45:00Z", "2026-03-10T11:00:00Z"]),
    ("*/15 * * * *", "2026-03-10T10:15:00Z", ["2026-03-10T10:30:00Z", "2026-03-10T10:45:00Z"]),
    ("*/15 * * * *", "2026-03-10T10:14:59.999Z", ["2026-03-10T10:15:00Z"]),
    ("30 2 * * 1-5", "2026-11-27T03:00:00Z",  # a Friday after the run: on to Monday
     ["2026-11-30T02:30:00Z", "2026-12-01T02:30:00Z", "2026-12-02T02:30:00Z"]),
    ("30 2 * * mon-fri", "2026-11-27T02:29:00Z", ["2026-11-27T02:30:00Z", "2026-11-30T02:30:00Z"]),
    ("0 0 1,15 * 5", "2026-01-01T00:00:00Z",  # the 1st, the 15th or any Friday
     ["2026-01-02T00:00:00Z", "2026-01-09T00:00:00Z", "2026-01-15T00:00:00Z", "2026-01-16T00:00:00Z",
      "2026-01-23T00:00:00Z", "2026-01-30T00:00:00Z", "2026-02-01T00:00:00Z", "2026-02-06T00:00:00Z"]),
    ("0 0 */10 * 5", "2026-01-01T00:00:00Z",  # day field starts with *: the 1st/11th/21st/31st that is a Friday
     ["2026-05-01T00:00:00Z", "2026-07-31T00:00:00Z", "2026-08-21T00:00:00Z"]),
    ("0 0 29 2 *", "2026-01-01T00:00:00Z", ["2028-02-29T00:00:00Z", "2032-02-29T00:00:00Z", "2036-02-29T00:00:00Z"]),
    ("0 0 29 2 *", "2096-03-01T00:00:00Z", ["2104-02-29T00:00:00Z"]),  # 2100 is not a leap year
    ("0 0 29 2 */7", "2026-01-01T00:00:00Z",  # February 29th on a Sunday: 40 years between 2088 and 2128
     ["2032-02-29T00:00:00Z", "2060-02-29T00:00:00Z", "2088-02-29T00:00:00Z", "2128-02-29T00:00:00Z", "2156-02-29T00:00:00Z"]),
    ("0 12 31 * *", "2026-01-31T12:00:00Z", ["2026-03-31T12:00:00Z", "2026-05-31T12:00:00Z", "2026-07-31T12:00:00Z"]),
    ("0 0 1 * *", "2026-12-15T08:00:00Z", ["2027-01-01T00:00:00Z", "2027-02-01T00:00:00Z"]),
    ("45 23 28-31 * *", "2026-02-28T23:45:00Z", ["2026-03-28T23:45:00Z", "2026-03-29T23:45:00Z"]),
    ("59 23 31 12 *", "2026-12-31T23:59:00Z", ["2027-12-31T23:59:00Z", "2028-12-31T23:59:00Z"]),
    ("59 23 31 12 *", "2026-12-31T23:58:59Z", ["2026-12-31T23:59:00Z"]),
    ("0 0 * * 0", "2026-11-25T10:00:00Z", ["2026-11-29T00:00:00Z", "2026-12-06T00:00:00Z"]),
    ("0 0 31 2 1", "2026-01-31T00:00:00Z", ["2026-02-02T00:00:00Z", "2026-02-09T00:00:00Z"]),  # OR rule: February Mondays
])
def test_next_runs(expr, after, expected):
    runs = cronspec.parse(expr).next_runs(t(after), len(expected))
    assert runs == times(*expected)
    assert all(run.tzinfo is not None and run.utcoffset() == datetime.timedelta(0) and run.second == 0 for run in runs)


def test_next_runs_every_minute_is_fast():
    runs = cronspec.parse("* * * * *").next_runs(t("2026-01-01T00:00:00Z"), 2000)
    assert len(runs) == 2000
    assert runs[0] == t("2026-01-01T00:01:00Z")
    assert runs[-1] == t("2026-01-02T09:20:00Z")
    assert all(b - a == datetime.timedelta(minutes=1) for a, b in zip(runs, runs[1:]))


def test_next_runs_takes_other_offsets_and_naive_utc():
    spec = cronspec.parse("0 11 * * *")
    berlin = datetime.timezone(datetime.timedelta(hours=2))
    assert spec.next_runs(datetime.datetime(2026, 3, 10, 12, 0, tzinfo=berlin), 1) == times("2026-03-10T11:00:00Z")
    assert spec.next_runs(datetime.datetime(2026, 3, 10, 11, 0), 1) == times("2026-03-11T11:00:00Z")
    assert spec.next_runs(t("2026-03-10T00:00:00Z"), 0) == []
    assert spec.next_runs(datetime.datetime(9999, 12, 31, 12, 0, tzinfo=UTC), 3) == []


@pytest.mark.parametrize("expr,start", [
    ("*/7 1-3 * * *", "2026-02-26T00:00:00Z"),
    ("0 0 1,15 * 5", "2026-02-26T00:00:00Z"),
    ("15 */6 * * mon-fri", "2026-02-26T00:00:00Z"),
    ("0 0 */2 * 0", "2026-02-26T00:00:00Z"),
    ("45 23 28-31 * *", "2026-02-26T00:00:00Z"),
    ("0 0 29 2 *", "2028-02-27T00:00:00Z"),
    ("30 12 1 * sat,sun", "2026-02-26T00:00:00Z"),
    ("*/20 23,0 * mar *", "2026-02-26T00:00:00Z"),
])
def test_matches_agrees_with_next_runs(expr, start):
    spec = cronspec.parse(expr)
    begin = t(start)
    minutes = 4 * 24 * 60
    scanned = [begin + datetime.timedelta(minutes=offset) for offset in range(minutes)]
    expected = [moment for moment in scanned if spec.matches(moment)]
    assert expected, "the scan window should hold runs"
    runs = [run for run in spec.next_runs(begin - datetime.timedelta(minutes=1), len(expected) + 1) if run <= scanned[-1]]
    assert runs == expected


def test_matches_ignores_seconds_and_converts_offsets():
    spec = cronspec.parse("15 10 * * *")
    assert spec.matches(t("2026-03-10T10:15:42Z"))
    assert not spec.matches(t("2026-03-10T10:16:00Z"))
    assert spec.matches(t("2026-03-10T12:15:00+02:00"))
    assert spec.matches(datetime.datetime(2026, 3, 10, 10, 15))


@pytest.mark.parametrize("expr,seconds", [
    ("*/5 * * * *", 300),
    ("0,1 * * * *", 60),
    ("0 * * * *", 3600),
    ("0 9-17/4 * * *", 4 * 3600),
    ("0 2 * * *", 86400),
    ("0 0 1 * *", 28 * 86400),
    ("0 2 * * 1-5", 86400),
    ("0 0 1,15 * 5", 86400),
    ("@weekly", 7 * 86400),
    ("@yearly", 365 * 86400),
    ("0 0 29 2 *", 1461 * 86400),
])
def test_period_seconds(expr, seconds):
    assert cronspec.parse(expr).period_seconds() == seconds


@pytest.mark.parametrize("expr,expected", [
    ("0 2 * * *", ["*-*-* 02:00:00 UTC"]),
    ("@hourly", ["*-*-* *:00:00 UTC"]),
    ("*/15 * * * *", ["*-*-* *:00,15,30,45:00 UTC"]),
    ("30 2 * * 1-5", ["Mon..Fri *-*-* 02:30:00 UTC"]),
    ("0 0 * * 0,6", ["Sat,Sun *-*-* 00:00:00 UTC"]),
    ("0 0 * * 5-7", ["Fri..Sun *-*-* 00:00:00 UTC"]),
    ("0 0 * * 0-6", ["*-*-* 00:00:00 UTC"]),
    ("0 8-18 * 6-8 *", ["*-06..08-* 08..18:00:00 UTC"]),
    ("5 4 1-3,10 jan-mar,dec *", ["*-01..03,12-01..03,10 04:05:00 UTC"]),
    ("0 0 29 2 *", ["*-02-29 00:00:00 UTC"]),
    ("0 0 1,15 * 5", ["*-*-01,15 00:00:00 UTC", "Fri *-*-* 00:00:00 UTC"]),
    ("0 6 1 jan-jun mon,wed-fri", ["*-01..06-01 06:00:00 UTC", "Mon,Wed..Fri *-01..06-* 06:00:00 UTC"]),
    ("0 0 13 * */2", ["Tue,Thu,Sat,Sun *-*-13 00:00:00 UTC"]),
    ("0 0 */8 * mon", ["Mon *-*-01,09,17,25 00:00:00 UTC"]),
])
def test_on_calendar(expr, expected):
    assert cronspec.parse(expr).on_calendar() == expected


ELAPSE_OUTPUT = """  Original form: *-*-* 02:30:00 UTC
Normalized form: *-*-* 02:30:00 UTC
    Next elapse: Thu 2026-11-26 03:30:00 CET
       (in UTC): Thu 2026-11-26 02:30:00 UTC
       From now: 16h left
       Iter. #2: Fri 2026-11-27 02:30:00 UTC
       From now: 1 day 16h left

Normalized form: Fri *-*-* 02:30:00 UTC
    Next elapse: Fri 2026-11-27 02:30:00 UTC
       From now: 1 day 16h left
"""


def test_parse_elapses_merges_and_reads_utc():
    normalized, elapses = cronspec._parse_elapses(ELAPSE_OUTPUT)  # pylint: disable=protected-access
    assert normalized == ["*-*-* 02:30:00 UTC", "Fri *-*-* 02:30:00 UTC"]
    assert elapses == times("2026-11-26T02:30:00Z", "2026-11-27T02:30:00Z")


CORPUS = [
    "* * * * *",
    "*/5 * * * *",
    "*/7 * * * *",
    "5,10-12,50-59/3 * * * *",
    "0 * * * *",
    "30 */4 * * *",
    "0 9-17/2 * * 1-5",
    "30 2 * * *",
    "30 2 * * mon-fri",
    "0 0 * * 0",
    "0 0 * * 5-7",
    "0 0 * * 1/2",
    "0 0 1 * *",
    "0 0 1,15 * 5",
    "0 6 1 jan-jun mon,wed-fri",
    "0 0 31 * *",
    "0 0 30 2,3 *",
    "0 0 31 2 1",
    "0 0 29 2 *",
    "0 0 29 2 */7",
    "0 0 13 * */2",
    "0 0 */8 * mon",
    "59 23 31 12 *",
    "15 3 28-31 * *",
    "@yearly",
    "@weekly",
]


@pytest.fixture
def analyze():
    """The real systemd-analyze (it runs without systemd as init); the checks need it installed."""
    path = tools.find_tool("systemd-analyze", required=False)
    if not path:
        pytest.skip("systemd-analyze is not installed (Debian: systemd)")
    return path


@pytest.mark.parametrize("expr", CORPUS)
def test_verify_on_calendar_with_systemd(analyze, expr):
    normalized = cronspec.verify_on_calendar(cronspec.parse(expr), analyze=analyze)
    assert len(normalized) == len(cronspec.parse(expr).on_calendar())
    assert all(form.endswith(" UTC") for form in normalized)


def test_verify_on_calendar_detects_a_wrong_conversion(analyze, monkeypatch):
    spec = cronspec.parse("0 2 * * *")
    monkeypatch.setattr(spec, "on_calendar", lambda: ["*-*-* 03:00:00 UTC"])
    with pytest.raises(ConfigError) as caught:
        cronspec.verify_on_calendar(spec, analyze=analyze)
    message = caught.value.message
    assert "cron '0 2 * * *'" in message
    assert "*-*-* 03:00:00 UTC" in message
    assert "03:00:00Z where the cron runs at" in message and "02:00:00Z" in message


def test_verify_on_calendar_detects_a_missing_expression(analyze, monkeypatch):
    spec = cronspec.parse("0 0 1,15 * 5")
    monkeypatch.setattr(spec, "on_calendar", lambda: ["*-*-01,15 00:00:00 UTC"])
    with pytest.raises(ConfigError, match="0 0 1,15"):
        cronspec.verify_on_calendar(spec, analyze=analyze)


def test_verify_on_calendar_reports_a_rejected_expression(analyze, monkeypatch):
    spec = cronspec.parse("0 2 * * *")
    monkeypatch.setattr(spec, "on_calendar", lambda: ["*-*-* 25:00:00 UTC"])
    with pytest.raises(ConfigError, match="does not accept"):
        cronspec.verify_on_calendar(spec, analyze=analyze)


def test_verify_on_calendar_without_systemd(monkeypatch):
    monkeypatch.setattr(tools, "find_tool", lambda name, *args, **kwargs: None)
    assert cronspec.verify_on_calendar(cronspec.parse("0 2 * * *")) is None
