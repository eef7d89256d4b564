# -*- coding: utf-8 -*-
# Copyright: contributors to the dataprotection.databases collection
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Times: UTC ISO-8601 out, ISO-8601 with or without an offset in."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import datetime
import re

from ansible_collections.dataprotection.databases.plugins.module_utils.errors import ConfigError

UTC = datetime.timezone.utc

_ISO = re.compile(
    r"^(?P<date>\d{4}-\d{2}-\d{2})"
    r"(?:[T ](?P<time>\d{2}:\d{2}(?::\d{2}(?:[.,]\d{1,9})?)?))?"
    r"\s*(?P<tz>Z|z|UTC|[+-]\d{2}(?::?\d{2})?)?$"
)


def utcnow():
    return datetime.datetime.now(UTC)


def parse_time(value, name="time"):
    """Parse an ISO-8601 time; a time without an offset is taken as UTC.

    Returns an aware datetime in UTC.  Raises ConfigError naming ``name``.
    """
    if isinstance(value, datetime.datetime):
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
    text = str(value).strip() if value is not None else ""
    match = _ISO.match(text)
    if not match:
        raise ConfigError(
            "%s %r is not an ISO-8601 time" % (name, value),
            hint="Write it like 2026-11-25T10:00:00Z (UTC) or 2026-11-25T11:00:00+01:00",
        )
    clock = match.group("time") or "00:00:00"
    if clock.count(":") == 1:
        clock += ":00"
    clock = clock.replace(",", ".")
    if "." in clock:
        main, frac = clock.split(".")
        clock = "%s.%s" % (main, (frac + "000000")[:6])
        fmt = "%Y-%m-%dT%H:%M:%S.%f"
    else:
        fmt = "%Y-%m-%dT%H:%M:%S"
    try:
        parsed = datetime.datetime.strptime("%sT%s" % (match.group("date"), clock), fmt)
    except ValueError as exc:
        raise ConfigError("%s %r is not a valid time: %s" % (name, value, exc))
    tz = match.group("tz")
    if tz and tz not in ("Z", "z", "UTC"):
        sign = -1 if tz[0] == "-" else 1
        digits = tz[1:].replace(":", "")
        hours, minutes = int(digits[:2]), int(digits[2:4] or 0)
        if hours > 23 or minutes > 59:
            raise ConfigError("%s %r has an invalid UTC offset" % (name, value))
        offset = datetime.timedelta(hours=hours, minutes=minutes) * sign
        return (parsed - offset).replace(tzinfo=UTC)
    return parsed.replace(tzinfo=UTC)


def format_time(value):
    """Format an aware (or UTC-naive) datetime as ``2026-11-25T10:00:00Z``."""
    if value is None:
        return None
    if value.tzinfo is not None:
        value = value.astimezone(UTC)
    text = value.strftime("%Y-%m-%dT%H:%M:%S")
    if value.microsecond:
        text += (".%06d" % value.microsecond).rstrip("0")
    return text + "Z"


def compact(value):
    """``yyyymmddHHMMSS`` in UTC, as used in backup ids."""
    return value.astimezone(UTC).strftime("%Y%m%d%H%M%S")
