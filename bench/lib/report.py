#!/usr/bin/env python
"""Print the benchmark's figures and its targets from a results directory.

    report.py RESULTS_DIR

RESULTS_DIR holds what bench/postgresql.sh recorded:

  figures.tsv           "key<TAB>value" lines; a key recorded once a round has
                        one value a round, and the report uses their median
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
    if (value >= target) if higher_is_better else (value <= target):
        return "met"
    miss = (target - value) / target if higher_is_better else (value - target) / target
    return "MISSED by %.1f%%" % (miss * 100)


def main(results):
    figures = read_figures(results)

    def fig(key):
        return median_of(float(v) for v in figures.get(key, []) if v != "")

    def first(key, default="?"):
        return figures.get(key, [default])[0]

    data_bytes = fig("data.bytes")
    rounds = int(first("rounds", "1"))
    lines = []
    out = lines.append

    out("code measured: %s" % first("code"))
    out("PostgreSQL %s, pgbench scale %s: %s MB backed up (the pg_basebackup tar stream; databases: %s MB)"
        % (first("server.version"), first("scale"), number(data_bytes and data_bytes / MB, 0), number(fig("cluster.bytes") and fig("cluster.bytes") / MB, 0)))
    out("%s; MB/s = those bytes / wall seconds on every row; CPU s = user + system of the step's processes"
        % ("one round" if rounds == 1 else "median of %d rounds, seconds range in brackets" % rounds))
    out("(not the server's); peak RSS = largest single process of the step; load = 1-min load average before the step")
    out("")
    header = "%-8s %-26s %9s %15s %8s %7s %12s %10s %6s" % ("", "", "seconds", "(range)", "MB/s", "CPU s", "peak RSS MB", "stored MB", "load")
    out(header)
    out("-" * len(header))
    medians = {}
    for kind, rows in (("backup", BACKUPS), ("restore", RESTORES)):
        for step, label in rows:
            all_seconds = [float(v) for v in figures.get(step + ".seconds", [])]
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
    out("pgBackRest's stored size excludes the WAL its backup needs (kept in its archive); ours and raw include it (-X fetch).")
    for step, label in RESTORES:
        for check in figures.get(step + ".check", []):
            out("restore check, %s: %s" % (label, check))
    out("")

    if figures.get("wal.commits"):
        out("WAL segments from pgbench (TPC-B-like), median %s commits per segment" % first("wal.commits"))
    header = "%-46s %4s %10s %8s %8s %8s" % ("archive command, one WAL segment (16 MiB)", "n", "median ms", "p90 ms", "min ms", "max ms")
    out(header)
    out("-" * len(header))
    latency = {}
    for name, label in LATENCIES:
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

    our_rss = [r[0] for step in ("ours-backup", "ours-restore") for r in time_reports(results, step) if r[0] is not None]
    targets = (
        ("backup speed, ours / pgBackRest", speed_ratio("ours-backup", "pgbackrest-backup"), 1.0, True, "%.3f", ">="),
        ("backup speed, ours / raw pipe", speed_ratio("ours-backup", "raw-backup"), 0.95, True, "%.3f", ">="),
        ("restore speed, ours / pgBackRest", speed_ratio("ours-restore", "pgbackrest-restore"), 1.0, True, "%.3f", ">="),
        ("our peak RSS, MB (backup and restore, max)", max(our_rss) if our_rss else None, 150.0, False, "%.1f", "<="),
        ("archive_command median, ms (ours)", latency.get("walpush"), 20.0, False, "%.1f", "<="),
    )
    header = "%-48s %9s %9s  %s" % ("target", "measured", "target", "verdict")
    out(header)
    out("-" * len(header))
    for label, value, target, higher, fmt, op in targets:
        out("%-48s %9s %9s  %s" % (label, "-" if value is None else fmt % value, "%s %s" % (op, fmt % target),
                                   verdict(value, target, higher)))
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
