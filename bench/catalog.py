#!/usr/bin/env python
"""Catalog benchmark: backup_info and retention on a local repository of 1,000 backups and 100,000 WAL segments.

This is a benchmark, not a test: it measures and prints figures, and says
which of the project's targets they meet (backup_info and retention each in
2 seconds or less).  It fails only when a step itself fails (an operation
raises, or finds other counts than the repository holds).

No other tool reads this repository format, so the peer run beside ours on
the same tree is the floor any catalog must pay: a plain walk that lists
every file with its size and reads and parses every manifest; for the real
retention run also the walk plus deleting the same files.

What one run does (standard library and the checkout only; no root, no
servers):
  1. writes one PostgreSQL cluster's history into a local repository with the
     test suite's generator (tests/harness/synthetic.py): a base backup every
     day and a WAL segment every 24 h / (segments / backups), so by default
     1,000 daily bases and 100,000 segments (one every 14.4 minutes).  Two
     copies a repeat, all written before anything is deleted: one for our
     steps, one for the floor's deletions;
  2. each repeat, every measurement in a new Python process (the core's
     imports are timed apart), after a sync, with the page cache warm (the
     trees were just written and walked):
       floor: walk        os.scandir of every file with its size, every
                          manifest read and parsed
       backup_info        repoadmin.repository_info for the cluster
       retention --check  retention.run_retention(check_mode=True), policy
                          keep_last=30, min_window=7d
       retention          the same run for real: deletes 970 of the 1,000
                          backups and 97,000 of the segments
       floor: delete      the walk, then unlinking the same files (manifest
                          first), on the other copy
     the read-only ones in an order that rotates from repeat to repeat, all
     on the copy the real run then prunes, so that every repeat does the
     same work on the same tree;
  3. once, on a full copy: ansible-playbook on localhost running the
     backup_info module, and the same play with ansible.builtin.ping, for the
     figure a user sees, Ansible's own overhead included;
  4. a table: median seconds, the target, met or missed, the ratio to the
     floor walk.

Usage:
  bench/catalog.py [--backups 1000] [--segments 100000] [--repeat 3]
                   [--workdir DIR] [--keep]

--workdir must be absent or empty (default: a new temporary directory);
it is removed at the end, also after a failure, unless --keep.  Disk: about
420 MB and 102,000 inodes per copy with the defaults (six copies).
"""

import argparse
import datetime
import json
import math
import os
import platform
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

BENCH_DIR = os.path.dirname(os.path.abspath(__file__))
CHECKOUT = os.path.dirname(BENCH_DIR)
CLUSTER = "bench"
START = "2023-01-01T00:00:00Z"
KEEP_LAST = 30
MIN_WINDOW = "7d"
TARGET_SECONDS = 2.0
MB = 1e6
CORE = "ansible_collections.dataprotection.databases.plugins.module_utils"

# Nothing of this run may leave __pycache__ directories in the checkout.
sys.dont_write_bytecode = True


def log(message):
    sys.stderr.write("[%s] %s\n" % (time.strftime("%H:%M:%S"), message))
    sys.stderr.flush()


# ---------------------------------------------------------------------------
# The floors: what any catalog of this tree pays, without the collection


def walk(root):
    """Every file under ``root`` with its size, every manifest.json read and parsed.

    Returns (files, bytes, manifests, [(path, size)], {path of a manifest: parsed manifest})."""
    found, parsed = [], {}
    total = 0
    pending = [root]
    while pending:
        with os.scandir(pending.pop()) as entries:
            for entry in entries:
                if entry.is_dir(follow_symlinks=False):
                    pending.append(entry.path)
                    continue
                size = entry.stat(follow_symlinks=False).st_size
                found.append((entry.path, size))
                total += size
                if entry.name == "manifest.json":
                    with open(entry.path, "rb") as handle:
                        parsed[entry.path] = json.loads(handle.read())
    return len(found), total, len(parsed), found, parsed


def segment_number(name):
    """A WAL segment's number from its 24 hex digit name (16 MiB segments)."""
    return int(name[8:16], 16) * 256 + int(name[16:24], 16)


def walk_and_delete(root, keep_last):
    """The walk, then the deletions of a keep_last policy: the backups not among the newest ``keep_last``
    (manifest first, then the rest of its directory), and the WAL segments before the start segment of the oldest
    kept base; directories left empty are removed."""
    files, dummy, manifests, found, parsed = walk(root)
    newest = sorted(parsed.items(), key=lambda item: (item[1]["end_time"], item[1]["backup_id"]), reverse=True)
    kept, expired = newest[:keep_last], newest[keep_last:]
    floor = min(segment_number(m["positions"]["start_wal"]) for dummy, m in kept)
    deleted = 0
    for path, dummy in expired:
        directory = os.path.dirname(path)
        os.unlink(path)
        deleted += 1
        for name in os.listdir(directory):
            os.unlink(os.path.join(directory, name))
            deleted += 1
        os.rmdir(directory)
    emptied = set()
    for path, dummy in found:
        name = os.path.basename(path)
        if "/logs/wal/" in path and len(name) > 24 and name[24] == "-" and segment_number(name[:24]) < floor:
            os.unlink(path)
            deleted += 1
            emptied.add(os.path.dirname(path))
    for directory in emptied:
        if not os.listdir(directory):
            os.rmdir(directory)
    return {"files": files, "manifests": manifests, "deleted": deleted}


# ---------------------------------------------------------------------------
# One measurement, in its own process (``--measure``)


def floor_call(operation, repo_path):
    """The floor ``operation`` as a function returning its summary."""
    if operation == "walk":
        def call():
            files, size, manifests, dummy, dummy = walk(repo_path)
            return {"files": files, "bytes": size, "manifests": manifests}
        return call
    return lambda: walk_and_delete(repo_path, KEEP_LAST)


def core_call(operation, repo_path, collections, now):
    """Our ``operation`` as a function returning its summary; the core is imported here."""
    sys.path.insert(0, collections)
    # pylint: disable=import-outside-toplevel
    from ansible_collections.dataprotection.databases.plugins.module_utils import repoadmin, retention
    from ansible_collections.dataprotection.databases.plugins.module_utils.timeutil import parse_time

    spec = {"type": "local", "path": repo_path}
    if operation == "backup_info":
        def call():
            result = repoadmin.repository_info(spec, cluster=CLUSTER)
            windows = result["clusters"][0]["windows"]
            return {"backups": len(result["backups"]), "windows": len(windows),
                    "window": [windows[0]["start"], windows[-1]["end"]] if windows else None,
                    "result_bytes": len(json.dumps(result))}
        return call
    policy = retention.Policy(keep_last=KEEP_LAST, min_window=MIN_WINDOW)

    def apply():
        result = retention.run_retention(spec, CLUSTER, policy, check_mode=operation == "retention-check", now=parse_time(now))
        return {"expired": len(result["expired"]), "kept": len(result["kept"]),
                "logs": sum(row["count"] for row in result["logs"]), "windows_after": len(result["windows_after"])}
    return apply


def measure(operation, repo_path, collections, now):
    """Time one operation in this (new) process; return its figures."""
    began = time.perf_counter()
    if operation in ("walk", "walk+delete"):
        call = floor_call(operation, repo_path)
    else:
        call = core_call(operation, repo_path, collections, now)
    imported = time.perf_counter() - began
    usage = resource.getrusage(resource.RUSAGE_SELF)
    start = time.perf_counter()
    summary = call()
    seconds = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_SELF)
    return dict(summary, seconds=seconds, imported=imported,
                cpu=(after.ru_utime - usage.ru_utime) + (after.ru_stime - usage.ru_stime),
                rss_mb=after.ru_maxrss * 1024 / MB)


# ---------------------------------------------------------------------------
# The driver


def load_average():
    try:
        with open("/proc/loadavg") as handle:
            return float(handle.read().split()[0])
    except (IOError, ValueError, IndexError):
        return None


def code_version():
    """The commit, and whether plugins/ differs from it (as bench/lib/common.sh prints it)."""
    env = dict(os.environ, GIT_OPTIONAL_LOCKS="0")
    try:
        commit = subprocess.run(["git", "-C", CHECKOUT, "rev-parse", "--short", "HEAD"], env=env, stdout=subprocess.PIPE,
                                stderr=subprocess.DEVNULL, universal_newlines=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown (not a git checkout)"
    clean = subprocess.run(["git", "-C", CHECKOUT, "diff-index", "--quiet", "HEAD", "--", "plugins"], env=env,
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False).returncode == 0
    return commit if clean else "%s with uncommitted changes under plugins/" % commit


def machine():
    model = "?"
    try:
        with open("/proc/cpuinfo") as handle:
            for line in handle:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
    except IOError:
        pass
    memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 1024.0 ** 3
    return "%d cores (%s), %.1f GiB RAM, Python %s" % (os.cpu_count() or 0, model, memory, platform.python_version())


def file_system(path):
    """The type of the file system holding ``path`` (from /proc/mounts), or '?'."""
    best, kind = "", "?"
    path = os.path.realpath(path)
    try:
        with open("/proc/mounts") as handle:
            for line in handle:
                fields = line.split()
                if len(fields) > 2 and (path == fields[1] or path.startswith(fields[1].rstrip("/") + "/")) and len(fields[1]) > len(best):
                    best, kind = fields[1], fields[2]
    except IOError:
        pass
    return kind


def collections_root(work):
    """A directory holding ansible_collections/dataprotection/databases -> this checkout."""
    parent = os.path.dirname(CHECKOUT)
    if os.path.basename(parent) == "dataprotection" and os.path.basename(os.path.dirname(parent)) == "ansible_collections":
        return os.path.dirname(os.path.dirname(parent))
    root = os.path.join(work, "collections")
    os.makedirs(os.path.join(root, "ansible_collections", "dataprotection"))
    os.symlink(CHECKOUT, os.path.join(root, "ansible_collections", "dataprotection", "databases"))
    return root


def segment_minutes(backups, segments):
    """Minutes between segments so that ``backups`` days hold ``segments`` segments.

    The generator floors days * 1440 / minutes in floating point; 14.4 is stored a little above 14.4, so
    1440 // 14.4 == 99.  The float just below it gives the intended count and, rounded to microseconds, the
    same step (864 s)."""
    minutes = 1440.0 * backups / segments
    for dummy in range(4):
        if backups * 1440 // minutes >= segments:
            break
        minutes = math.nextafter(minutes, 0)
    return minutes


class Trees(object):
    """Copies of the generated cluster, each written by the generator into its own directory.

    Every destructive step (our retention for real, the floor's deletions) gets a tree of its own, and all of
    them are written before anything is deleted: on some file systems creating files right after a mass
    deletion is much slower than otherwise, which would only lengthen the run."""

    def __init__(self, work, backups, segments, collections):
        self.work = work
        self.days = backups
        self.minutes = segment_minutes(backups, segments)
        self.collections = collections
        self.counts = None
        self.write_seconds = []

    def write(self, name):
        # pylint: disable=import-outside-toplevel
        from harness.synthetic import Generator
        from ansible_collections.dataprotection.databases.plugins.module_utils.repoconfig import new_config, write_config
        from ansible_collections.dataprotection.databases.plugins.module_utils.repository import LocalRepo

        path = os.path.join(self.work, name)
        os.makedirs(path)
        began = time.perf_counter()
        repo = LocalRepo({"path": path})
        write_config(repo, new_config()[0])
        generator = Generator(repo, CLUSTER, fast=True).postgresql(START, self.days, backup_every_hours=24, segment_minutes=self.minutes)
        self.write_seconds.append(time.perf_counter() - began)
        counts = {
            "backups": len(generator.manifests),
            "segments": sum(1 for key in generator.log_keys if "/logs/wal/history/" not in key),
            "other_logs": sum(1 for key in generator.log_keys if "/logs/wal/history/" in key),
        }
        files, size, manifests, dummy, dummy = walk(path)
        counts.update(files=files, bytes=size, manifests=manifests)
        # (dataprotection.json holds its creation time, whose length may vary: bytes are not compared.)
        if self.counts is not None and dict(counts, bytes=None) != dict(self.counts, bytes=None):
            raise RuntimeError("tree %s differs from the first: %r, first %r" % (name, counts, self.counts))
        self.counts = counts
        return path

    @property
    def now(self):
        """The end of the generated history: retention runs right after it."""
        start = datetime.datetime.strptime(START, "%Y-%m-%dT%H:%M:%SZ")
        return (start + datetime.timedelta(days=self.days)).strftime("%Y-%m-%dT%H:%M:%SZ")


def run_child(operation, trees, path):
    """One measurement in a new interpreter; its figures and the 1-min load average before it.

    Dirty pages are written back first (sync), so that no step pays for the previous one's writes."""
    os.sync()
    load = load_average()
    env = dict(os.environ, PYTHONDONTWRITEBYTECODE="1")
    proc = subprocess.run([sys.executable, os.path.abspath(__file__), "--measure", operation, "--repo", path,
                           "--collections", trees.collections, "--now", trees.now],
                          env=env, stdout=subprocess.PIPE, universal_newlines=True, check=False)
    if proc.returncode != 0:
        raise RuntimeError("%s failed (exit %d)" % (operation, proc.returncode))
    figures = json.loads(proc.stdout.strip().splitlines()[-1])
    figures["load"] = load
    return figures


def ansible_playbook(work, collections, module_task, check):
    """Wall seconds of one ansible-playbook run of a two-task play on localhost: ``module_task``, then a debug
    task printing ``check`` (a Jinja expression over the registered ``out``)."""
    play = [{
        "name": "catalog benchmark", "hosts": "localhost", "connection": "local", "gather_facts": False,
        "tasks": [dict(module_task, name="timed module", register="out"),
                  {"name": "what it returned", "ansible.builtin.debug": {"msg": "result: {{ %s }}" % check}}],
    }]
    path = os.path.join(work, "play.yml")
    with open(path, "w") as handle:
        json.dump(play, handle, indent=2)   # YAML reads JSON
    env = dict(os.environ, PYTHONDONTWRITEBYTECODE="1", ANSIBLE_COLLECTIONS_PATH=collections, ANSIBLE_COLLECTIONS_SCAN_SYS_PATH="false",
               ANSIBLE_LOCALHOST_WARNING="false", ANSIBLE_INVENTORY_UNPARSED_WARNING="false", ANSIBLE_PYTHON_INTERPRETER=sys.executable,
               ANSIBLE_NOCOLOR="1", ANSIBLE_RETRY_FILES_ENABLED="false", ANSIBLE_HOME=os.path.join(work, "ansible-home"))
    command = os.path.join(os.path.dirname(sys.executable), "ansible-playbook")
    if not os.path.exists(command):
        command = shutil.which("ansible-playbook")
        if command is None:
            return None, "ansible-playbook not found"
    load = load_average()
    began = time.perf_counter()
    proc = subprocess.run([command, "-i", "localhost,", path], env=env, cwd=work, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                          universal_newlines=True, check=False)
    seconds = time.perf_counter() - began
    if proc.returncode != 0:
        raise RuntimeError("ansible-playbook failed (exit %d):\n%s" % (proc.returncode, proc.stdout[-3000:]))
    said = [line.split("result: ", 1)[1].strip().rstrip('"') for line in proc.stdout.splitlines() if "result: " in line]
    return {"seconds": seconds, "load": load}, said[0] if said else "?"


def number(value, digits=2):
    return "-" if value is None else "%.*f" % (digits, value)


def verdict(value, target):
    if target is None:
        return "-"
    if value <= target:
        return "met"
    return "MISSED by %.0f%%" % ((value - target) / target * 100)


def report(rows, figures, repeats, trees, code, playbook, total_seconds, import_seconds):
    counts = trees.counts
    lines = []
    out = lines.append
    out("code measured: %s" % code)
    out("repository: local (%s), 1 PostgreSQL cluster: %d base backups (one a day for %d days), %d WAL segments (one every %g min),"
        % (file_system(trees.work), counts["backups"], trees.days, counts["segments"], round(trees.minutes * 60, 3) / 60))
    out("%d timeline history file; %d files in all, %.1f MB; %d copies written by tests/harness/synthetic.py, %.1f s each (median)"
        % (counts["other_logs"], counts["files"], counts["bytes"] / MB, len(trees.write_seconds), statistics.median(trees.write_seconds)))
    out("retention policy: keep_last=%d, min_window=%s, now = the end of the history (%s)" % (KEEP_LAST, MIN_WINDOW, trees.now))
    out("median of %d repeats, range in brackets; each measurement in a new Python process, the core's imports not counted (median %.2f s);"
        % (repeats, import_seconds))
    out("page cache warm (the trees were just written and walked), sync before each step; CPU s = user + system of the measuring process;")
    out("RSS MB = its peak; load = 1-min load average before the step; x walk = seconds / the floor walk's seconds")
    out("")
    header = "%-46s %8s %15s %7s %9s %6s %8s  %-15s %7s" % ("", "seconds", "(range)", "CPU s", "RSS MB", "load", "target", "verdict", "x walk")
    out(header)
    out("-" * len(header))
    walk_median = statistics.median(f["seconds"] for f in figures["walk"])
    for key, label, target in rows:
        runs = figures[key]
        seconds = [f["seconds"] for f in runs]
        median = statistics.median(seconds)
        loads = [f["load"] for f in runs if f["load"] is not None]
        out("%-46s %8s %15s %7s %9s %6s %8s  %-15s %7s" % (
            label, number(median), "(%.2f-%.2f)" % (min(seconds), max(seconds)) if len(seconds) > 1 else "",
            number(statistics.median(f["cpu"] for f in runs)), number(statistics.median(f["rss_mb"] for f in runs), 1),
            number(statistics.median(loads) if loads else None), "<= %.1f" % target if target else "-", verdict(median, target),
            "%.1f" % (median / walk_median)))
    out("")
    first = dict((key, figures[key][0]) for key, dummy, dummy in rows)
    info = first["backup_info"]
    out("backup_info: %d backups, %d window(s) %s; result %.1f MB of JSON"
        % (info["backups"], info["windows"], " .. ".join(info["window"] or []), info["result_bytes"] / MB))
    run = first["retention"]
    out("retention: expires %d backups, keeps %d, prunes %d WAL segments; the floor deleted the same %d files (%d left, as after ours)"
        % (run["expired"], run["kept"], run["logs"], first["walk+delete"]["deleted"], counts["files"] - first["walk+delete"]["deleted"]))
    delete_median = statistics.median(f["seconds"] for f in figures["walk+delete"])
    run_median = statistics.median(f["seconds"] for f in figures["retention"])
    out("retention for real / its own floor (walk + delete the same files): %.1f" % (run_median / delete_median))
    out("")
    if playbook:
        header = "%-62s %8s %6s  %s" % ("ansible-playbook -i localhost, (one run each, a new process)", "seconds", "load", "the play printed")
        out(header)
        out("-" * len(header))
        for label, (figure, said) in playbook:
            out("%-62s %8s %6s  %s" % (label, number(figure["seconds"]), number(figure["load"]), said))
        out("%-62s %8s" % ("difference: backup_info's own cost in a play", number(playbook[1][1][0]["seconds"] - playbook[0][1][0]["seconds"])))
        out("")
    out("machine: %s; whole run %d min %d s" % (machine(), total_seconds // 60, total_seconds % 60))
    return "\n".join(lines)


def check(condition, message):
    if not condition:
        raise RuntimeError(message)


def bench(args, work):
    began = time.perf_counter()
    collections = collections_root(work)
    sys.path.insert(0, collections)
    sys.path.insert(0, os.path.join(CHECKOUT, "tests"))
    code = code_version()
    trees = Trees(work, args.backups, args.segments, collections)
    paths = []
    for repeat in range(1, args.repeat + 1):
        for kind in ("ours", "floor"):
            log("writing tree %d of %d" % (len(paths) + 1, 2 * args.repeat))
            paths.append(trees.write("%s-%d" % (kind, repeat)))
            if len(paths) == 1:
                log("%d backups, %d WAL segments, %d files" % (trees.counts["backups"], trees.counts["segments"], trees.counts["files"]))
    figures = dict((key, []) for key in ("walk", "backup_info", "retention-check", "retention", "walk+delete"))
    readers = ["walk", "backup_info", "retention-check"]
    playbook = None
    for repeat in range(1, args.repeat + 1):
        ours, floor = paths[2 * repeat - 2], paths[2 * repeat - 1]
        shift = (repeat - 1) % len(readers)
        for operation in readers[shift:] + readers[:shift]:
            log("repeat %d of %d: timing %s" % (repeat, args.repeat, operation))
            figures[operation].append(run_child(operation, trees, ours))
        check(figures["walk"][-1]["files"] == trees.counts["files"], "the walk found other files than were written")
        check(figures["backup_info"][-1]["backups"] == trees.counts["backups"], "backup_info lists %d backups" % figures["backup_info"][-1]["backups"])
        if repeat == args.repeat:
            playbook = end_to_end(work, collections, trees, ours)
        log("repeat %d of %d: timing retention (for real)" % (repeat, args.repeat))
        figures["retention"].append(run_child("retention", trees, ours))
        check(figures["retention"][-1]["expired"] == figures["retention-check"][-1]["expired"], "check mode and the real run expire different backups")
        log("repeat %d of %d: timing walk+delete" % (repeat, args.repeat))
        figures["walk+delete"].append(run_child("walk+delete", trees, floor))
        left = (walk(ours)[0], walk(floor)[0])
        check(left[0] == left[1], "retention left %d files, the floor %d" % left)
    rows = (
        ("walk", "floor: walk, every manifest parsed", None),
        ("backup_info", "backup_info (repoadmin.repository_info)", TARGET_SECONDS),
        ("retention-check", "retention, check mode (plan)", TARGET_SECONDS),
        ("retention", "retention, for real (plan + deletions)", TARGET_SECONDS),
        ("walk+delete", "floor: walk + delete the same files", None),
    )
    imports = [f["imported"] for key in ("backup_info", "retention-check", "retention") for f in figures[key]]
    print("")
    print(report(rows, figures, args.repeat, trees, code, playbook, int(time.perf_counter() - began), statistics.median(imports)))


def end_to_end(work, collections, trees, path):
    """backup_info through ansible-playbook, and the same play with ansible.builtin.ping."""
    os.sync()
    log("ansible-playbook: ansible.builtin.ping (Ansible's own overhead)")
    ping = ansible_playbook(work, collections, {"ansible.builtin.ping": {}}, "out.ping")
    if ping[0] is None:
        log("%s: the end-to-end figures are not measured" % ping[1])
        return None
    log("ansible-playbook: dataprotection.databases.backup_info")
    info = ansible_playbook(work, collections, {"dataprotection.databases.backup_info": {"repo": {"type": "local", "path": path}, "cluster": CLUSTER}},
                            "(out.backups | length) ~ ' backups, ' ~ (out.clusters[0].windows | length) ~ ' window(s)'")
    check(info[1].startswith("%d backups" % trees.counts["backups"]), "the backup_info play printed %r" % info[1])
    return [("ansible.builtin.ping, then debug (Ansible's own overhead)", ping),
            ("dataprotection.databases.backup_info, then debug", info)]


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--backups", type=int, default=1000, help="daily base backups (default 1000)")
    parser.add_argument("--segments", type=int, default=100000, help="WAL segments over those days (default 100000)")
    parser.add_argument("--repeat", type=int, default=3, help="repeats; the table gives the median (default 3)")
    parser.add_argument("--workdir", help="work directory, absent or empty (default: a new one under /var/tmp)")
    parser.add_argument("--keep", action="store_true", help="keep the work directory")
    parser.add_argument("--measure", help=argparse.SUPPRESS)
    parser.add_argument("--repo", help=argparse.SUPPRESS)
    parser.add_argument("--collections", help=argparse.SUPPRESS)
    parser.add_argument("--now", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.measure:
        print(json.dumps(measure(args.measure, args.repo, args.collections, args.now)))
        return 0
    if args.backups < KEEP_LAST + 1 or args.segments < args.backups or args.repeat < 1:
        parser.error("need --backups > %d, --segments >= --backups and --repeat >= 1" % KEEP_LAST)
    if args.workdir:
        work = os.path.abspath(args.workdir)
        if os.path.exists(work) and os.listdir(work):
            parser.error("--workdir %s is not empty" % work)
        os.makedirs(work, exist_ok=True)
    else:
        work = tempfile.mkdtemp(prefix="dp-bench-catalog.")
    log("work directory %s" % work)
    try:
        bench(args, work)
    finally:
        if args.keep:
            log("work directory kept: %s" % work)
        else:
            shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
