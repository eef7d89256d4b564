# -*- coding: utf-8 -*-
# Copyright: contributors to the dataprotection.databases collection
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Five-field cron schedules, always in UTC.

``parse`` validates an expression such as ``30 2 * * 1-5`` and returns a
CronSpec that knows its next runs, its shortest period and the systemd
OnCalendar expressions that fire at exactly the same times.  Day matching
follows classic cron: when both day-of-month and day-of-week are restricted a
day matches when either matches, otherwise both must.  ``verify_on_calendar``
asks ``systemd-analyze calendar`` (when installed) to confirm the conversion.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import bisect
import datetime
import re

from ansible_collections.dataprotection.databases.plugins.module_utils import tools
from ansible_collections.dataprotection.databases.plugins.module_utils.errors import ConfigError, ToolError
from ansible_collections.dataprotection.databases.plugins.module_utils.timeutil import UTC, format_time, utcnow

FORM = "five fields in UTC: minute hour day-of-month month day-of-week, e.g. '0 2 * * *'"
HINT = "Write the schedule as " + FORM

DESCRIPTORS = {
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
    "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@hourly": "0 * * * *",
}

MONTH_NAMES = ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec")
WEEKDAY_NAMES = ("sun", "mon", "tue", "wed", "thu", "fri", "sat")
SYSTEMD_WEEKDAYS = ("Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat")
MONTH_DAYS = (31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)  # February at its longest

# (name, low, high, names); names[i] stands for low + i.
FIELDS = (
    ("minute", 0, 59, None),
    ("hour", 0, 23, None),
    ("day-of-month", 1, 31, None),
    ("month", 1, 12, MONTH_NAMES),
    ("day-of-week", 0, 7, WEEKDAY_NAMES),
)

# The longest wait between two runs of a schedule that runs at all: February
# 29th on one weekday (only expressible with a day-of-week like ``*/7``) can
# be 40 years apart across a century year that is not a leap year.
SEARCH_YEARS = 41

SYSTEMD_LAST_YEAR = 2199

# period_seconds() looks at the runs after this fixed time, so that its
# answer does not depend on the clock.
PERIOD_REFERENCE = datetime.datetime(2026, 1, 1, tzinfo=UTC)
PERIOD_DAYS = 400
PERIOD_RUNS = 5000

_NUMBER = re.compile(r"^[0-9]+$")
_ITEM = re.compile(r"^(?:(?P<star>\*)|(?P<low>[0-9a-z]+)(?:-(?P<high>[0-9a-z]+))?)(?:/(?P<step>[^/]*))?$")
_ELAPSE = re.compile(r"^\s*(Next elapse|Iter\. #\d+|\(in UTC\)):\s*(.*?)\s*$")
_ELAPSE_TIME = re.compile(r"(\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2})\s+(\S+)$")
_NORMALIZED = re.compile(r"^\s*Normalized form:\s*(.*?)\s*$")


def _refuse(expr, problem, hint=HINT):
    return ConfigError("cron '%s': %s" % (expr, problem), hint=hint)


def _value(expr, field, text):
    """One value of a field: a number or, for month and day-of-week, a name."""
    name, low, high, names = field
    if _NUMBER.match(text):
        number = int(text)
    elif names and text in names:
        number = low + names.index(text)
    elif names:
        raise _refuse(expr, "%s %s is neither a number %d-%d nor a name %s..%s" % (name, text, low, high, names[0], names[-1]))
    else:
        raise _refuse(expr, "%s %s is not a number" % (name, text))
    if not low <= number <= high:
        raise _refuse(expr, "%s %s is outside %d-%d" % (name, text, low, high))
    return number


def _field_values(expr, field, text):
    """The set of values one field stands for."""
    name, low, high, dummy = field
    values = set()
    for item in text.lower().split(","):
        if not item:
            raise _refuse(expr, "%s field '%s' has an empty list item" % (name, text),
                          hint="Separate values with single commas and no spaces, e.g. '1,15'. " + HINT)
        match = _ITEM.match(item)
        if not match:
            raise _refuse(expr, "%s field item '%s' is not a value, a range a-b or a step */n" % (name, item))
        if match.group("star"):
            first, last = low, high
        else:
            first = _value(expr, field, match.group("low"))
            if match.group("high") is not None:
                last = _value(expr, field, match.group("high"))
                if last < first:
                    raise _refuse(
                        expr, "%s range %s is reversed" % (name, item.split("/")[0]),
                        hint="Write ranges low-high, e.g. '10-30'; for one that wraps around list both parts, e.g. '50-59,0-10'"
                             " (Sunday is 0 or 7, so 'sat-sun' is written 'sat,sun' or '6-7')",
                    )
            elif match.group("step") is not None:
                last = high
            else:
                last = first
        step = 1
        if match.group("step") is not None:
            step_text = match.group("step")
            if not _NUMBER.match(step_text):
                raise _refuse(expr, "%s step '%s' is not a number" % (name, step_text))
            step = int(step_text)
            if step == 0:
                raise _refuse(expr, "%s step 0 in '%s' is not allowed" % (name, item),
                              hint="A step is 1 or more, e.g. '*/15' in the minute field for every 15 minutes")
        values.update(range(first, last + 1, step))
    return values


class CronSpec(object):
    """A parsed schedule; every time it deals in is UTC."""

    def __init__(self, expr, minutes, hours, days, months, weekdays, dom_restricted, dow_restricted):
        self.expr = expr
        self.minutes = tuple(sorted(minutes))
        self.hours = tuple(sorted(hours))
        self.days = tuple(sorted(days))
        self.months = tuple(sorted(months))
        self.weekdays = tuple(sorted(weekdays))
        self.dom_restricted = dom_restricted
        self.dow_restricted = dow_restricted
        self._minute_set = frozenset(self.minutes)
        self._hour_set = frozenset(self.hours)
        self._day_set = frozenset(self.days)
        self._month_set = frozenset(self.months)
        self._weekday_set = frozenset(self.weekdays)

    def __repr__(self):
        return "CronSpec(%r)" % self.expr

    @property
    def day_rule_or(self):
        """True when a day matches on day-of-month OR day-of-week (both restricted)."""
        return self.dom_restricted and self.dow_restricted

    def day_matches(self, day):
        """Whether the date ``day`` is a run day (month, day-of-month, day-of-week)."""
        if day.month not in self._month_set:
            return False
        dom = day.day in self._day_set
        dow = day.isoweekday() % 7 in self._weekday_set
        if self.day_rule_or:
            return dom or dow
        return dom and dow

    def matches(self, dt):
        """Whether the schedule fires in the minute that contains ``dt`` (naive means UTC)."""
        dt = _utc(dt)
        return dt.minute in self._minute_set and dt.hour in self._hour_set and self.day_matches(dt.date())

    def _next_month_start(self, day):
        """The first day of the next month in ``months`` after the month of ``day``."""
        index = bisect.bisect_right(self.months, day.month)
        if index < len(self.months):
            return datetime.date(day.year, self.months[index], 1)
        if day.year >= datetime.MAXYEAR:
            return None
        return datetime.date(day.year + 1, self.months[0], 1)

    def iter_runs(self, after):
        """Run times strictly after ``after``, in order, as aware UTC datetimes.

        Stops when no run follows within SEARCH_YEARS years (which parse()
        rules out) or at the end of the calendar.
        """
        after = _utc(after).replace(second=0, microsecond=0)
        try:
            start = after + datetime.timedelta(minutes=1)
        except OverflowError:
            return
        first_day = start.date()
        day = first_day
        give_up = _add_years(day, SEARCH_YEARS)
        while day is not None and day < give_up:
            if day.month not in self._month_set:
                day = self._next_month_start(day)
                continue
            if self.day_matches(day):
                hours = self.hours
                if day == first_day:
                    hours = hours[bisect.bisect_left(hours, start.hour):]
                found = False
                for hour in hours:
                    minutes = self.minutes
                    if day == first_day and hour == start.hour:
                        minutes = minutes[bisect.bisect_left(minutes, start.minute):]
                    for minute in minutes:
                        found = True
                        yield datetime.datetime(day.year, day.month, day.day, hour, minute, tzinfo=UTC)
                if found:
                    give_up = _add_years(day, SEARCH_YEARS)
            if day == datetime.date.max:
                return
            day += datetime.timedelta(days=1)

    def next_runs(self, after, count):
        """The next ``count`` run times strictly after ``after`` (aware UTC datetimes, second 0)."""
        runs = []
        if count <= 0:
            return runs
        for run in self.iter_runs(after):
            runs.append(run)
            if len(runs) >= count:
                break
        return runs

    def period_seconds(self):
        """The shortest gap in seconds between two consecutive runs.

        Looks at the runs in the PERIOD_DAYS days (at most PERIOD_RUNS runs)
        after PERIOD_REFERENCE, and further when fewer than two fall in them.
        """
        window_end = PERIOD_REFERENCE + datetime.timedelta(days=PERIOD_DAYS)
        previous = None
        shortest = None
        seen = 0
        for run in self.iter_runs(PERIOD_REFERENCE):
            if seen >= 2 and (run > window_end or seen >= PERIOD_RUNS):
                break
            if previous is not None:
                gap = int((run - previous).total_seconds())
                shortest = gap if shortest is None else min(shortest, gap)
            previous = run
            seen += 1
        if shortest is None:
            raise _refuse(self.expr, "never runs twice")
        return shortest

    def on_calendar(self):
        """systemd OnCalendar expressions (in UTC) that together fire exactly when the cron does."""
        clock = "%s:%s:00 UTC" % (_systemd_list(self.hours, 0, 23), _systemd_list(self.minutes, 0, 59))
        months = _systemd_list(self.months, 1, 12)
        days = _systemd_list(self.days, 1, 31)
        weekdays = _systemd_weekdays(self.weekdays)
        prefix = weekdays + " " if weekdays else ""
        if self.day_rule_or:
            # systemd needs every component to match where cron accepts
            # either day field: one expression per day field.
            return ["*-%s-%s %s" % (months, days, clock), "%s*-%s-* %s" % (prefix, months, clock)]
        return ["%s*-%s-%s %s" % (prefix, months, days, clock)]


def _utc(dt):
    if dt.tzinfo is None:
        return dt.replace(tzinfo=UTC)
    return dt.astimezone(UTC)


def _add_years(day, years):
    if day.year + years > datetime.MAXYEAR:
        return datetime.date.max
    return datetime.date(day.year + years, day.month, min(day.day, 28))


def _runs(values):
    """Split sorted values into runs of consecutive numbers."""
    runs = []
    for value in values:
        if runs and runs[-1][-1] + 1 == value:
            runs[-1].append(value)
        else:
            runs.append([value])
    return runs


def _systemd_list(values, low, high, name=None):
    """``*`` for the whole range, else a comma list with a..b for runs of three or more."""
    if list(values) == list(range(low, high + 1)):
        return "*"
    name = name or (lambda number: "%02d" % number)
    parts = []
    for run in _runs(values):
        if len(run) >= 3:
            parts.append("%s..%s" % (name(run[0]), name(run[-1])))
        else:
            parts.extend(name(value) for value in run)
    return ",".join(parts)


def _systemd_weekdays(weekdays):
    """Weekday names Mon..Sun for cron weekdays (0 = Sunday); empty for every day."""
    # systemd's week starts on Monday: number Monday 0 .. Sunday 6.
    ordered = sorted((value - 1) % 7 for value in weekdays)
    listed = _systemd_list(ordered, 0, 6, name=lambda number: SYSTEMD_WEEKDAYS[(number + 1) % 7])
    return "" if listed == "*" else listed


def parse(expr):
    """Parse a five-field cron expression (or an @ descriptor) into a CronSpec; raise ConfigError."""
    text = ("" if expr is None else str(expr)).strip()
    if not text:
        raise ConfigError("cron '%s' is empty" % text, hint=HINT)
    fields_text = text
    if text.startswith("@"):
        word = text.split()[0].lower()
        if word in ("@every", "@reboot"):
            raise _refuse(text, "%s is not a calendar schedule" % word,
                          hint="Give calendar times instead, e.g. '0 * * * *' for hourly or '0 2 * * *' for daily at 02:00 UTC")
        if word not in DESCRIPTORS or len(text.split()) != 1:
            raise _refuse(text, "unknown descriptor '%s'" % text,
                          hint="Use one of %s, or %s" % (", ".join(sorted(DESCRIPTORS)), FORM))
        fields_text = DESCRIPTORS[word]
    parts = fields_text.split()
    if len(parts) == 6:
        raise _refuse(text, "has six fields; seconds are not supported",
                      hint="Drop the seconds field (runs start on a whole minute): " + FORM)
    if len(parts) != 5:
        raise _refuse(text, "has %d fields instead of five" % len(parts))
    values = [_field_values(text, field, part) for field, part in zip(FIELDS, parts)]
    weekdays = set(value % 7 for value in values[4])
    dom_restricted = not parts[2].startswith("*")
    dow_restricted = not parts[4].startswith("*")
    spec = CronSpec(text, values[0], values[1], values[2], values[3], weekdays, dom_restricted, dow_restricted)
    if not spec.day_rule_or:
        # Every date recurs on every weekday, so the schedule runs unless
        # none of its days exists in any of its months.
        if not any(day <= MONTH_DAYS[month - 1] for month in spec.months for day in spec.days):
            raise _refuse(text, "never runs: day-of-month %s does not exist in month %s" % (parts[2], parts[3]),
                          hint="Pick days that exist in the chosen months: February has 29 days at most, "
                               "April, June, September and November have 30")
    return spec


def _parse_elapses(output):
    """The normalized forms and the elapse times (aware UTC) in systemd-analyze calendar output."""
    normalized = []
    elapses = []
    for line in output.splitlines():
        match = _NORMALIZED.match(line)
        if match:
            normalized.append(match.group(1))
            continue
        match = _ELAPSE.match(line)
        if not match:
            continue
        label, value = match.groups()
        if value == "never":
            continue
        when = _ELAPSE_TIME.search(value)
        if not when:
            raise ToolError("cannot read the time in systemd-analyze output line %r" % line)
        moment = datetime.datetime.strptime(when.group(1), "%Y-%m-%d %H:%M:%S").replace(tzinfo=UTC)
        if label == "(in UTC)":
            if elapses:
                elapses[-1] = (moment, "UTC")
            continue
        elapses.append((moment, when.group(2)))
    for moment, zone in elapses:
        if zone != "UTC":
            raise ToolError("systemd-analyze printed the time %s in %s, not UTC" % (format_time(moment), zone))
    return normalized, sorted(set(moment for moment, dummy in elapses))


def verify_on_calendar(spec, analyze=None, iterations=12):
    """Check spec.on_calendar() against ``systemd-analyze calendar``.

    Returns None when systemd-analyze is not installed, else the normalized
    forms it printed.  Raises ConfigError when systemd's next elapses differ
    from the cron's next runs.
    """
    analyze = analyze or tools.find_tool("systemd-analyze", required=False)
    if not analyze:
        return None
    expressions = spec.on_calendar()
    argv = [analyze, "calendar", "--iterations=%d" % iterations] + list(expressions)
    elapses = expected = []
    before = None
    for attempt in (1, 2):
        before = utcnow()
        try:
            out, dummy = tools.run(argv, env={"TZ": "UTC"}, timeout=60, what="systemd-analyze calendar")
        except ToolError as exc:
            if exc.details.get("returncode") is None:
                raise
            raise ConfigError(
                "cron '%s': systemd does not accept the OnCalendar expressions %s: %s" % (spec.expr, "; ".join(expressions), exc.message),
                hint="This is a bug in the cron to OnCalendar conversion; report it with the cron expression",
            )
        after = utcnow()
        normalized, elapses = _parse_elapses(out)
        elapses = elapses[:iterations]
        # systemd's calendar ends with the year 2199.
        expected = [run for run in spec.next_runs(before, iterations) if run.year <= SYSTEMD_LAST_YEAR]
        if elapses == expected:
            return normalized
        same_minute = before.replace(second=0, microsecond=0) == after.replace(second=0, microsecond=0)
        if attempt == 1 and not same_minute:
            continue
        break
    index = systemd_time = cron_time = None
    for index in range(max(len(elapses), len(expected))):
        systemd_time = elapses[index] if index < len(elapses) else None
        cron_time = expected[index] if index < len(expected) else None
        if systemd_time != cron_time:
            break
    raise ConfigError(
        "cron '%s': the OnCalendar expressions %s fire at %s where the cron runs at %s (run #%d after %s)" % (
            spec.expr, "; ".join(expressions), format_time(systemd_time) or "no time", format_time(cron_time) or "no time",
            index + 1, format_time(before)),
        hint="This is a bug in the cron to OnCalendar conversion; report it with the cron expression",
    )
