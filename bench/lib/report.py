#!/usr/bin/env python
"""Print the benchmark's figures and its targets from a results directory.

    report.py RESULTS_DIR

RESULTS_DIR holds what bench/postgresql.sh or bench/mysql.sh recorded:

  figures.tsv           "key<TAB>value" lines; a key recorded once a round has
                        one value a round, and the report uses their median;
                        "engine" (postgresql when absent) picks the report's
                        rows, notes and targets
  <step>.<round>.time   GNU time -v reports of the timed steps (peak RSS, CPU)
  <name>.ms             archive command latencies, one number (ms) a line

Standard library only.  Units: MB = 10^6 bytes; seconds are wall clock.
"""

import glob
import math
import os
import re
import statistics
import sys

BACKUPS = (
    ("ours-backup", "ours (host command)"),
    ("pgbackrest-backup", "pgBackRest"),
    ("raw-backup", "raw pg_basebackup | zstd"),
)
RESTORES = (
    ("ours-restore", "ours (host command)"),
    ("pgbackrest-restore", "pgBackRest"),
    ("raw-restore", "raw zstd -d | tar -x"),
)
LATENCIES = (
    ("walpush", "ours: host command wal-push"),
    ("pgbackrest-archive-push", "pgbackrest archive-push"),
)
MYSQL_BACKUPS = (
    ("ours-backup", "ours (host command)"),
    ("ours-p2-backup", "ours --parallel=2 (driver)"),
    ("raw-backup", "raw mariabackup | zstd"),
    ("raw-p2-backup", "raw pipe, --parallel=2"),
)
MYSQL_RESTORES = (
    ("ours-restore", "ours (host command)"),
    ("raw-restore", "raw extract/prepare/move"),
)
MB = 1e6


def read_figures(results):
    figures = {}
    with open(os.path.join(results, "figures.tsv")) as handle:
        for line in handle:
            if "\t" in line:
                key, value = line.rstrip("\n").split("\t", 1)
                figures.setdefault(key, []).append(value)
    return figures


def time_reports(results, step):
    """(peak RSS in MB, CPU seconds user+sys) of each round of a step."""
    reports = []
    for path in sorted(glob.glob(os.path.join(results, step + ".*.time"))):
        with open(path) as handle:
            text = handle.read()
        rss = re.search(r"Maximum resident set size \(kbytes\): (\d+)", text)
        user = re.search(r"User time \(seconds\): ([\d.]+)", text)
        system = re.search(r"System time \(seconds\): ([\d.]+)", text)
        reports.append((int(rss.group(1)) * 1024 / MB if rss else None,
                        float(user.group(1)) + float(system.group(1)) if user and system else None))
    return reports


def median_of(values):
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def latencies(results, name):
    try:
        with open(os.path.join(results, name + ".ms")) as handle:
            return sorted(float(line) for line in handle if line.strip())
    except IOError:
        return []


def nearest_rank(values, fraction):
    """Percentile by nearest rank of sorted values (p90 of 30 values is the 27th)."""
    return values[max(int(math.ceil(fraction * len(values))) - 1, 0)]


def number(value, digits=1):
    return "-" if value is None else "%.*f" % (digits, value)


def verdict(value, target, higher_is_better):
    """'met' or 'MISSED by N%' against the target."""
    if value is None:
        return "not measured"
    if target is None:
        return "(no target)"
    if (value >= target) if higher_is_better else (value <= target):
        return "met"
    miss = (target - value) / target if higher_is_better else (value - target) / target
    return "MISSED by %.1f%%" % (miss * 100)


def postgresql_heading(fig, first):
    return ["PostgreSQL %s, pgbench scale %s: %s MB backed up (the pg_basebackup tar stream; databases: %s MB)"
            % (first("server.version"), first("scale"), number(fig("data.bytes") and fig("data.bytes") / MB, 0),
               number(fig("cluster.bytes") and fig("cluster.bytes") / MB, 0))]


def postgresql_notes(figures, fig, first):
    return ["pgBackRest's stored size excludes the WAL its backup needs (kept in its archive); ours and raw include it (-X fetch)."]


def postgresql_targets(speed_ratio, our_rss, latency, fig):
    return (
        ("backup speed, ours / pgBackRest", speed_ratio("ours-backup", "pgbackrest-backup"), 1.0, True, "%.3f", ">="),
        ("backup speed, ours / raw pipe", speed_ratio("ours-backup", "raw-backup"), 0.95, True, "%.3f", ">="),
        ("restore speed, ours / pgBackRest", speed_ratio("ours-restore", "pgbackrest-restore"), 1.0, True, "%.3f", ">="),
        ("our peak RSS, MB (backup and restore, max)", max(our_rss) if our_rss else None, 150.0, False, "%.1f", "<="),
        ("archive_command median, ms (ours)", latency.get("walpush"), 20.0, False, "%.1f", "<="),
    )


def mysql_heading(fig, first):
    return ["MariaDB %s, %s InnoDB tables, %s rows: %s MB backed up (the mbstream stream; tables on disk: %s MB, ibdata1: %s MB)"
            % (first("server.version"), first("tables"), first("rows"), number(fig("data.bytes") and fig("data.bytes") / MB, 0),
               number(fig("tables.bytes") and fig("tables.bytes") / MB, 0), number(fig("ibdata.bytes") and fig("ibdata.bytes") / MB, 0))]


def mysql_notes(figures, fig, first):
    notes = []
    own = []
    for step, label in (("ours-backup", "backup"), ("ours-p2-backup", "backup --parallel=2"), ("ours-restore", "restore")):
        value = fig(step + ".self_rss")
        if value is not None:
            own.append("%s %s" % (label, number(value * 1024 / MB, 1)))
    if own:
        notes.append("our Python process alone (getrusage, without its mariabackup/mbstream children), peak RSS MB: %s" % ", ".join(own))
    parts = [(label, fig("raw-restore.%s.seconds" % key)) for key, label in
             (("extract", "zstd -d | mbstream -x"), ("prepare", "mariabackup --prepare"), ("move", "mariabackup --move-back"))]
    if any(value is not None for dummy, value in parts):
        notes.append("raw restore steps, median seconds: %s" % ", ".join("%s %s" % (label, number(value, 2)) for label, value in parts))
    return notes


def mysql_targets(speed_ratio, our_rss, latency, fig):
    own = [fig(step + ".self_rss") for step in ("ours-backup", "ours-p2-backup", "ours-restore")]
    own = [value * 1024 / MB for value in own if value is not None]
    return (
        ("backup speed, ours / raw pipe", speed_ratio("ours-backup", "raw-backup"), 0.95, True, "%.3f", ">="),
        ("backup speed, ours / raw, both --parallel=2", speed_ratio("ours-p2-backup", "raw-p2-backup"), 0.95, True, "%.3f", ">="),
        ("backup speed, ours --parallel=2 / raw pipe", speed_ratio("ours-p2-backup", "raw-backup"), None, True, "%.3f", ""),
        ("restore speed, ours / raw", speed_ratio("ours-restore", "raw-restore"), None, True, "%.3f", ""),
        ("our peak RSS, MB (Python process, max)", max(own) if own else None, 150.0, False, "%.1f", "<="),
        ("peak RSS of our steps, MB (GNU time, max)", max(our_rss) if our_rss else None, None, False, "%.1f", ""),
    )


PROFILES = {
    "postgresql": {"backups": BACKUPS, "restores": RESTORES, "latencies": LATENCIES, "heading": postgresql_heading,
                   "notes": postgresql_notes, "targets": postgresql_targets, "our_steps": ("ours-backup", "ours-restore")},
    "mysql": {"backups": MYSQL_BACKUPS, "restores": MYSQL_RESTORES, "latencies": (), "heading": mysql_heading,
              "notes": mysql_notes, "targets": mysql_targets, "our_steps": ("ours-backup", "ours-p2-backup", "ours-restore")},
}


def main(results):
    figures = read_figures(results)

    def fig(key):
        return median_of(float(v) for v in figures.get(key, []) if v != "")

    def first(key, default="?"):
        return figures.get(key, [default])[0]

    profile = PROFILES[first("engine", "postgresql")]
    data_bytes = fig("data.bytes")
    rounds = int(first("rounds", "1"))
    lines = []
    out = lines.append

    out("code measured: %s" % first("code"))
    lines.extend(profile["heading"](fig, first))
    out("%s; MB/s = those bytes / wall seconds on every row; CPU s = user + system of the step's processes"
        % ("one round" if rounds == 1 else "median of %d rounds, seconds range in brackets" % rounds))
    out("(not the server's); peak RSS = largest single process of the step; load = 1-min load average before the step")
    out("")
    header = "%-8s %-26s %9s %15s %8s %7s %12s %10s %6s" % ("", "", "seconds", "(range)", "MB/s", "CPU s", "peak RSS MB", "stored MB", "load")
    out(header)
    out("-" * len(header))
    medians = {}
    for kind, rows in (("backup", profile["backups"]), ("restore", profile["restores"])):
        for step, label in rows:
            all_seconds = [float(v) for v in figures.get(step + ".seconds", [])]
            if not all_seconds:
                continue   # a step this run left out
            seconds = medians[step] = median_of(all_seconds)
            reports = time_reports(results, step)
            stored = fig(step + ".stored")
            spread = "(%.2f-%.2f)" % (min(all_seconds), max(all_seconds)) if len(all_seconds) > 1 else ""
            out("%-8s %-26s %9s %15s %8s %7s %12s %10s %6s" % (
                kind, label, number(seconds, 2), spread,
                number(data_bytes / MB / seconds if data_bytes and seconds else None, 1),
                number(median_of(r[1] for r in reports), 1),
                number(median_of(r[0] for r in reports), 1),
                number(stored / MB if stored is not None else None, 1),
                number(fig(step + ".load"), 2)))
    out("")
    lines.extend(profile["notes"](figures, fig, first))
    for step, label in profile["restores"]:
        for check in figures.get(step + ".check", []):
            out("restore check, %s: %s" % (label, check))
    out("")

    latency = {}
    if profile["latencies"]:
        if figures.get("wal.commits"):
            out("WAL segments from pgbench (TPC-B-like), median %s commits per segment" % first("wal.commits"))
        header = "%-46s %4s %10s %8s %8s %8s" % ("archive command, one WAL segment (16 MiB)", "n", "median ms", "p90 ms", "min ms", "max ms")
        out(header)
        out("-" * len(header))
        for name, label in profile["latencies"]:
            values = latencies(results, name)
            if not values:
                out("%-46s %4s %10s %8s %8s %8s" % (label, 0, "-", "-", "-", "-"))
                continue
            latency[name] = statistics.median(values)
            out("%-46s %4d %10.1f %8.1f %8.1f %8.1f" % (label, len(values), latency[name], nearest_rank(values, 0.9), values[0], values[-1]))
        out("")

    def speed_ratio(ours, other):
        a, b = medians.get(ours), medians.get(other)
        return b / a if a and b else None

    our_rss = [r[0] for step in profile["our_steps"] for r in time_reports(results, step) if r[0] is not None]
    header = "%-48s %9s %9s  %s" % ("target", "measured", "target", "verdict")
    out(header)
    out("-" * len(header))
    for label, value, target, higher, fmt, op in profile["targets"](speed_ratio, our_rss, latency, fig):
        out("%-48s %9s %9s  %s" % (label, "-" if value is None else fmt % value,
                                   "-" if target is None else "%s %s" % (op, fmt % target),
                                   verdict(value, target, higher)))
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
