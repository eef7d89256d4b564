#!/usr/bin/env bash
# Redis benchmark of dataprotection.databases against the raw
# "redis-cli --rdb - | zstd" pipe, side by side on the same data.
#
# This is a benchmark, not a test: it measures and prints figures, and says
# which of the project's targets they meet.  It fails only when a step itself
# fails (a tool exits non-zero, a restored copy does not load or holds other
# data than the source).
#
# What one run does, as root, on a Debian-like host with Redis 7
# (redis-server, redis-tools), zstd and GNU time installed (see
# bench/README.md):
#   1. start a throwaway redis-server as the redis user in a work directory
#      (Unix socket only, no save points, appendonly no), load order-like
#      strings, hashes, lists, sorted sets and sets through redis-cli --pipe
#      (SIZE_MB=1000 ~ a 1 GB RDB);
#   2. full backups, each timed with its peak RSS: ours (the host command:
#      BGSAVE, the RDB read while the child writes it, sha256, zstd 3, local
#      repository) and redis-cli --rdb - | zstd -T0 -3 > file;
#   3. restores of ours and of the raw pipe's file into empty directories,
#      timed: ours is the host command's restore, the raw one
#      zstd -d > dump.rdb and a sync of that file; then each restored copy is
#      loaded by a redis-server and its key count and DEBUG DIGEST compared
#      with the source's;
#   4. a table of the figures and the targets; everything is stopped and the
#      work directory removed (unless KEEP=1).
#
# Settings (environment):
#   SIZE_MB=1000       about how many MB (10^6 bytes) the RDB should have
#                      (100 for a quick run)
#   RECORDS            order records to load instead of SIZE_MB (about 276 RDB
#                      bytes a record, the hashes, lists, sets and sorted sets
#                      that come with every 10th and 50th record included)
#   LOADERS=2          generator processes loading in parallel
#   ROUNDS=3           backup + restore rounds (tool order rotates); the report
#                      gives the median
#   KEEP=0             1 keeps the work directory (data, repository, logs)
#   WORK_PARENT=/var/tmp  where the work directory is made; the redis user
#                      must be able to traverse it
#   PYTHON             interpreter for our backup and restore (needs the
#                      collection's requirements); default: the checkout's
#                      .venv/bin/python, else python3
#   DROP_CACHES=0      1 drops the page cache before every timed step (cold reads)
set -euo pipefail
export LC_ALL=C   # decimal points in EPOCHREALTIME, stable tool output

BENCH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
CHECKOUT=$(cd "$BENCH_DIR/.." && pwd)

SIZE_MB=${SIZE_MB:-1000}
RDB_BYTES_PER_RECORD=276   # measured: 1,023 MB of RDB for 3.7 million records of the generator below
RECORDS=${RECORDS:-$((SIZE_MB * 1000000 / RDB_BYTES_PER_RECORD))}
LOADERS=${LOADERS:-2}
ROUNDS=${ROUNDS:-3}
ROUND=1
KEEP=${KEEP:-0}
WORK_PARENT=${WORK_PARENT:-/var/tmp}
DROP_CACHES=${DROP_CACHES:-0}
if [[ -z ${PYTHON:-} ]]; then
    if [[ -x $CHECKOUT/.venv/bin/python ]]; then PYTHON=$CHECKOUT/.venv/bin/python; else PYTHON=$(command -v python3); fi
fi
# Our root-run Python must not leave __pycache__ directories in the checkout.
export PYTHONDONTWRITEBYTECODE=1

CLUSTER=bench

# ---------------------------------------------------------------------------
# Helpers

# shellcheck disable=SC2034  # read by lib/common.sh
SERVICE_USER=redis
# shellcheck source=bench/lib/common.sh
. "$BENCH_DIR/lib/common.sh"
as_redis() { as_service "$@"; }

# cli SOCKET ARG...: redis-cli on a server's socket.
cli() { local socket=$1; shift; redis-cli -s "$socket" "$@"; }

# server_start NAME DIR [OPTION...]
# Starts redis-server as the redis user on DIR, on the Unix socket
# SOCK/NAME.sock only, and waits until it answers PING (a server loading an
# RDB answers LOADING until it is done).  Its pid goes to WORK/pids/NAME.
server_start() {
    local name=$1 dir=$2 pid deadline=$((SECONDS + 900))
    shift 2
    (cd "$WORK" && exec runuser -u redis -- redis-server --port 0 --unixsocket "$SOCK/$name.sock" --unixsocketperm 777 --dir "$dir" \
        --save "" --appendonly no --daemonize no --logfile "$WORK/logs/$name.log" "$@") </dev/null >>"$WORK/logs/$name.out" 2>&1 &
    pid=$!
    echo "$pid" >"$WORK/pids/$name"
    until [[ $(cli "$SOCK/$name.sock" PING 2>/dev/null) == PONG ]]; do
        alive "$pid" || die "the $name server exited: $(tail -n 5 "$WORK/logs/$name.log")"
        ((SECONDS < deadline)) || die "the $name server did not answer in 900 s"
        sleep 0.2
    done
}

server_stop() {
    local name=$1 pid
    [[ -f $WORK/pids/$name ]] || return 0
    pid=$(<"$WORK/pids/$name")
    cli "$SOCK/$name.sock" SHUTDOWN NOSAVE >/dev/null 2>&1 || kill "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
    rm -f "$WORK/pids/$name"
}

# ---------------------------------------------------------------------------
# Steps

check_prerequisites() {
    [[ $(id -u) == 0 ]] || die "run as root: the servers run as the redis user, our commands as root"
    id redis >/dev/null 2>&1 || die "no redis OS user (install redis-server)"
    local tool
    for tool in redis-server redis-cli zstd runuser; do
        command -v "$tool" >/dev/null || die "$tool is missing (Debian: redis-server, redis-tools, zstd)"
    done
    [[ -x /usr/bin/time ]] || die "/usr/bin/time is missing (Debian: time)"
    [[ -x $PYTHON ]] || die "no Python interpreter for our command ($PYTHON)"
    "$PYTHON" -c "import zstandard" 2>/dev/null || die "$PYTHON lacks the collection's requirements (zstandard)"
    [[ $RECORDS =~ ^[0-9]+$ && $RECORDS -ge $LOADERS && $LOADERS -ge 1 ]] || die "RECORDS ($RECORDS) must be a number of at least LOADERS ($LOADERS)"
}

make_workdir() {
    WORK=$(mktemp -d "$WORK_PARENT/dp-bench-redis.XXXXXX")
    chmod 0755 "$WORK"   # the redis user must traverse it
    RESULTS=$WORK/results
    SOCK=$WORK/sock
    DATA=$WORK/data
    mkdir -p "$WORK"/{data,sock,results,logs,raw,restore,pids,etc}
    chown redis:redis "$WORK"/{data,sock,logs,restore,results}
    chmod 0700 "$WORK"/{pids,etc}
    : >"$RESULTS/figures.tsv"
    log "work directory $WORK"
}

# Our code, run as root with PYTHON: the collection as Python imports it
# (ansible_collections/<ns>/<name>), a symlink to this checkout, and a small
# driver that runs the host command in-process and writes the process's own
# peak RSS (without children) when it ends.
install_command() {
    mkdir -p "$WORK/collections/ansible_collections/dataprotection"
    ln -s "$CHECKOUT" "$WORK/collections/ansible_collections/dataprotection/databases"
    DRIVER=$WORK/driver.py
    cat >"$DRIVER" <<'DRIVER_EOF'
"""driver.py RSS_FILE ARG...: the host command (cli.py) with ARG...; this process's own peak RSS (KiB) goes to RSS_FILE."""
import resource
import runpy
import sys

CLI = "ansible_collections.dataprotection.databases.plugins.module_utils.cli"
rss_file = sys.argv[1]
try:
    sys.argv = [CLI] + sys.argv[2:]
    runpy.run_module(CLI, run_name="__main__", alter_sys=True)
finally:
    with open(rss_file, "w") as handle:
        handle.write("%d\n" % resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
DRIVER_EOF
    chmod -R u=rwX,go=rX "$WORK/collections" "$DRIVER"
}

# The server: no save points and appendonly no, so that nothing but the
# benchmark forks; repl-diskless-sync-delay 0, so that the raw pipe's
# redis-cli --rdb is served at once (Redis 7 otherwise waits 5 seconds for
# more replicas before a diskless transfer).  DEBUG DIGEST is allowed on the
# socket for the restore check.
start_server() {
    log "start redis-server"
    server_start server "$DATA" --repl-diskless-sync-delay 0 --enable-debug-command local
    record server.version "$(cli "$SOCK/server.sock" INFO server | tr -d '\r' | awk -F: '$1 == "redis_version" { print $2 }')"
}

# Order-like records: a JSON document a record (random hex, words, amounts,
# 1 to 5 items), with a hash of 8 fields every 10th record and a list of 20
# events, a sorted set of 20 scores and a set of 10 tags every 50th: zstd
# level 3 stores about a third of the RDB, unlike all-zero filler.  LOADERS
# generators each load their own key range through redis-cli --pipe.
load_data() {
    local i per=$(((RECORDS + LOADERS - 1) / LOADERS)) from to pids=() pid
    cat >"$WORK/generate.py" <<'GEN_EOF'
import os
import random
import sys

WORDS = ("express delivery gift wrap requested leave at the door call before delivery standard shipping pick up in store "
         "paid shipped delivered returned new pending cancelled refunded warehouse north south east west").split()


def resp(*args):
    out = [b"*%d\r\n" % len(args)]
    for arg in args:
        data = arg if isinstance(arg, bytes) else str(arg).encode()
        out.append(b"$%d\r\n%s\r\n" % (len(data), data))
    return b"".join(out)


first, last = int(sys.argv[1]), int(sys.argv[2])
rnd = random.Random(first)
out = sys.stdout.buffer
batch = []
for i in range(first, last):
    items = ",".join('{"sku":"SKU-%05d","qty":%d}' % (rnd.randrange(99999), rnd.randrange(1, 9)) for _ in range(rnd.randrange(1, 6)))
    doc = ('{"id":%d,"customer":%d,"status":"%s","amount":%.2f,"ref":"%s","note":"%s %s %s","items":[%s],'
           '"created":"2026-%02d-%02dT%02d:%02d:%02dZ"}'
           % (i, rnd.randrange(200000), rnd.choice(WORDS), rnd.random() * 500, os.urandom(8).hex(), rnd.choice(WORDS), rnd.choice(WORDS),
              rnd.choice(WORDS), items, rnd.randrange(1, 13), rnd.randrange(1, 29), rnd.randrange(24), rnd.randrange(60), rnd.randrange(60)))
    batch.append(resp("SET", "order:%d" % i, doc))
    if i % 10 == 0:
        fields = []
        for name in ("name", "email", "city", "plan", "since", "visits", "last_ip", "token"):
            fields += [name, "%s-%s" % (name, os.urandom(6).hex())]
        batch.append(resp("HSET", "customer:%d" % i, *fields))
    if i % 50 == 0:
        batch.append(resp("RPUSH", "events:%d" % i, *["%s:%d:%s" % (rnd.choice(WORDS), rnd.randrange(10 ** 6), os.urandom(4).hex())
                                                      for _ in range(20)]))
        batch.append(resp("ZADD", "scores:%d" % i, *[x for _ in range(20) for x in (rnd.randrange(10 ** 6), "player:%d" % rnd.randrange(10 ** 6))]))
        batch.append(resp("SADD", "tags:%d" % i, *[rnd.choice(WORDS) + str(rnd.randrange(100)) for _ in range(10)]))
    if len(batch) >= 5000:
        out.write(b"".join(batch))
        batch = []
out.write(b"".join(batch))
GEN_EOF
    log "loading $RECORDS records with $LOADERS generators"
    for ((i = 0; i < LOADERS; i++)); do
        from=$((i * per))
        to=$(((i + 1) * per < RECORDS ? (i + 1) * per : RECORDS))
        (python3 "$WORK/generate.py" "$from" "$to" | cli "$SOCK/server.sock" --pipe >"$WORK/logs/load.$i.log" 2>&1) &
        pids+=($!)
    done
    for pid in "${pids[@]}"; do
        wait "$pid" || die "loading failed: $(tail -n 3 "$WORK"/logs/load.*.log)"
    done
    grep -q "errors: 0," "$WORK"/logs/load.*.log || die "redis-cli --pipe reported errors: $(tail -n 3 "$WORK"/logs/load.*.log)"
    SOURCE_KEYS=$(cli "$SOCK/server.sock" DBSIZE)
    log "computing the source's DEBUG DIGEST"
    SOURCE_DIGEST=$(cli "$SOCK/server.sock" DEBUG DIGEST)
    record engine redis
    record code "$(code_version)"
    record rounds "$ROUNDS"
    record records "$RECORDS"
    record keys "$SOURCE_KEYS"
    record used_memory "$(cli "$SOCK/server.sock" INFO memory | tr -d '\r' | awk -F: '$1 == "used_memory" { print $2 }')"
}

# Our repository and the cluster's configuration file, as the host command reads it.
setup_ours() {
    REPO=$WORK/repo
    "$PYTHON" - "$WORK/collections" "$REPO" <<'EOF'
import sys
sys.path.insert(0, sys.argv[1])
from ansible_collections.dataprotection.databases.plugins.module_utils.repoadmin import ensure_present
ensure_present({"type": "local", "path": sys.argv[2]})
EOF
    CONFIG=$WORK/etc/$CLUSTER.json
    cat >"$CONFIG" <<EOF
{
  "repo": {"type": "local", "path": "$REPO"},
  "cluster": "$CLUSTER",
  "engine": "redis",
  "connection": {"socket": "$SOCK/server.sock"},
  "compression": "zstd",
  "compression_level": 3
}
EOF
    chmod 0600 "$CONFIG"
}

# One untimed save first, so that the first timed backup does not write the
# first dump.rdb of the run.
warm_up() {
    log "untimed warm-up save"
    cli "$SOCK/server.sock" BGSAVE >/dev/null
    until cli "$SOCK/server.sock" INFO persistence | tr -d '\r' | grep -q '^rdb_bgsave_in_progress:0$'; do sleep 0.2; done
    cli "$SOCK/server.sock" INFO persistence | tr -d '\r' | grep -q '^rdb_last_bgsave_status:ok$' || die "the warm-up save failed"
}

# One round: the backups, then the restores of what each wrote.  The order
# of the tools rotates from round to round.
BACKUP_METHODS=(ours raw)
RESTORE_METHODS=(ours raw)

in_round_order() {
    local i n=$#
    local methods=("$@")
    for ((i = 0; i < n; i++)); do
        printf '%s\n' "${methods[(i + ROUND - 1) % n]}"
    done
}

backup_ours() {
    measure ours-backup root env PYTHONPATH="$WORK/collections" \
        "$PYTHON" "$DRIVER" "$RESULTS/ours-backup.$ROUND.rss" --config "$CONFIG" backup >"$RESULTS/ours-backup.$ROUND.json"
    OUR_BACKUP_ID=$(json_field backup_id <"$RESULTS/ours-backup.$ROUND.json")
    record data.bytes "$(json_field size <"$RESULTS/ours-backup.$ROUND.json")"
    record ours-backup.stored "$(json_field stored_size <"$RESULTS/ours-backup.$ROUND.json")"
    record ours-backup.self_rss "$(<"$RESULTS/ours-backup.$ROUND.rss")"
}

# Each round writes a new file, as ours writes a new backup.
backup_raw() {
    local file=$WORK/raw/backup.$ROUND.rdb.zst
    # shellcheck disable=SC2016 # the inner bash expands them
    measure raw-backup root bash -c 'set -o pipefail; redis-cli -s "$1" --rdb - 2>"$2" | zstd -q -T0 -3 >"$3"' \
        _ "$SOCK/server.sock" "$WORK/logs/raw-backup.$ROUND.log" "$file"
    grep -q "Transfer finished with success" "$WORK/logs/raw-backup.$ROUND.log" || die "redis-cli --rdb did not report success"
    record raw-backup.stored "$(stat -c %s "$file")"
}

restore_ours() {
    measure ours-restore root env PYTHONPATH="$WORK/collections" \
        "$PYTHON" "$DRIVER" "$RESULTS/ours-restore.$ROUND.rss" --config "$CONFIG" restore \
        --backup-id "$OUR_BACKUP_ID" --data-dir "$1/ours" --owner redis --force >"$RESULTS/ours-restore.$ROUND.json"
    record ours-restore.self_rss "$(<"$RESULTS/ours-restore.$ROUND.rss")"
}

# As the redis user: decompress into dump.rdb and make it durable, as ours
# does (it fsyncs what it writes).
restore_raw() {
    as_redis install -d -m 0750 "$1/raw"
    # shellcheck disable=SC2016 # the inner bash expands them
    measure raw-restore redis bash -c 'zstd -q -d -c "$1" >"$2/dump.rdb" && sync "$2/dump.rdb"' _ "$WORK/raw/backup.$ROUND.rdb.zst" "$1/raw"
}

run_backups() {
    local method
    for method in $(in_round_order "${BACKUP_METHODS[@]}"); do
        "backup_$method"
    done
}

run_restores() {
    local method into=$WORK/restore/$ROUND
    as_redis install -d -m 0750 "$into"
    for method in $(in_round_order "${RESTORE_METHODS[@]}"); do
        "restore_$method" "$into"
    done
}

# Each restored copy must load and hold the source's keys (DEBUG DIGEST: a
# digest of every key, value and TTL).
check_restores() {
    local name dir keys digest
    for name in "${RESTORE_METHODS[@]}"; do
        dir=$WORK/restore/$ROUND/$name
        [[ -f $dir/dump.rdb ]] || die "$name restore: no dump.rdb in $dir"
        log "loading the $name copy to compare its keys"
        server_start "verify-$name" "$dir" --enable-debug-command local
        keys=$(cli "$SOCK/verify-$name.sock" DBSIZE)
        digest=$(cli "$SOCK/verify-$name.sock" DEBUG DIGEST)
        server_stop "verify-$name"
        [[ $keys == "$SOURCE_KEYS" ]] || die "$name restore: $keys keys, expected $SOURCE_KEYS"
        [[ $digest == "$SOURCE_DIGEST" ]] || die "$name restore: DEBUG DIGEST $digest, the source's is $SOURCE_DIGEST"
        record "$name-restore.check" "round $ROUND: loads, $keys keys, DEBUG DIGEST as the source's"
    done
}

report() {
    "$PYTHON" - "$RESULTS" <<'REPORT_EOF'
"""The figures of bench/redis.sh and its targets (MB = 10^6 bytes; seconds are wall clock)."""
import glob
import os
import re
import statistics
import sys

results = sys.argv[1]
MB = 1e6
figures = {}
with open(os.path.join(results, "figures.tsv")) as handle:
    for line in handle:
        if "\t" in line:
            key, value = line.rstrip("\n").split("\t", 1)
            figures.setdefault(key, []).append(value)


def floats(key):
    return [float(v) for v in figures.get(key, [])]


def median(values):
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def time_reports(step):
    reports = []
    for path in sorted(glob.glob(os.path.join(results, step + ".*.time"))):
        text = open(path).read()
        rss = re.search(r"Maximum resident set size \(kbytes\): (\d+)", text)
        user = re.search(r"User time \(seconds\): ([\d.]+)", text)
        system = re.search(r"System time \(seconds\): ([\d.]+)", text)
        reports.append((int(rss.group(1)) * 1024 / MB if rss else None, float(user.group(1)) + float(system.group(1)) if user and system else None))
    return reports


data = median(floats("data.bytes"))
print("code measured: %s" % figures["code"][0])
print("Redis %s, %s keys (%s order records), used_memory %.0f MB: %.0f MB backed up (the RDB)"
      % (figures["server.version"][0], figures["keys"][0], figures["records"][0], float(figures["used_memory"][0]) / MB, data / MB))
print("median of %s rounds, seconds range in brackets; MB/s = RDB bytes / wall seconds on every row; CPU s = user + system of the step's "
      "processes (not the server's: its forked child writes the RDB in both backups); peak RSS = largest single process of the step; "
      "load = 1-min load average before the step" % figures["rounds"][0])
print()
header = "%-8s %-28s %8s %15s %8s %7s %12s %10s %6s" % ("", "", "seconds", "(range)", "MB/s", "CPU s", "peak RSS MB", "stored MB", "load")
print(header)
print("-" * len(header))
rows = (("backup", "ours-backup", "ours (host command)"), ("backup", "raw-backup", "raw redis-cli --rdb | zstd"),
        ("restore", "ours-restore", "ours (host command)"), ("restore", "raw-restore", "raw zstd -d > dump.rdb, sync"))
seconds = {}
for kind, step, title in rows:
    values = floats(step + ".seconds")
    reports = time_reports(step)
    seconds[step] = median(values)
    stored = median(floats(step + ".stored"))
    print("%-8s %-28s %8.2f %15s %8.1f %7.1f %12.1f %10s %6.2f" % (
        kind, title, seconds[step], "(%.2f-%.2f)" % (min(values), max(values)), data / seconds[step] / MB,
        median([r[1] for r in reports]), max(r[0] for r in reports), "%.1f" % (stored / MB) if stored else "-", median(floats(step + ".load"))))
print()
for name in ("ours-backup", "ours-restore"):
    own = [float(v) / 1024 for v in figures.get(name + ".self_rss", [])]
    print("our Python process alone (getrusage, without children), peak RSS MB, %s: %.1f" % (name, max(own)))
for name in ("ours-restore.check", "raw-restore.check"):
    for line in figures.get(name, []):
        print("restore check, %s: %s" % (name.split("-")[0], line))
print()
backup_ratio = seconds["raw-backup"] / seconds["ours-backup"]
restore_ratio = seconds["raw-restore"] / seconds["ours-restore"]
our_rss = max(float(v) / 1024 for v in figures.get("ours-backup.self_rss", []) + figures.get("ours-restore.self_rss", []))
line = "%-45s %10s %9s  %s"
print(line % ("target", "measured", "target", "verdict"))
print("-" * 77)
print(line % ("backup speed, ours / raw pipe", "%.3f" % backup_ratio, ">= 0.950", "met" if backup_ratio >= 0.95 else
              "MISSED by %.1f%%" % ((0.95 - backup_ratio) / 0.95 * 100)))
print(line % ("restore speed, ours / raw", "%.3f" % restore_ratio, "-", "(no target)"))
print(line % ("our peak RSS, MB (Python process, max)", "%.1f" % our_rss, "<= 150.0", "met" if our_rss <= 150 else "MISSED"))
REPORT_EOF
}

# ---------------------------------------------------------------------------

main() {
    local began=$EPOCHREALTIME
    check_prerequisites
    trap cleanup_servers EXIT
    make_workdir
    install_command
    start_server
    load_data
    setup_ours
    warm_up
    for ((ROUND = 1; ROUND <= ROUNDS; ROUND++)); do
        run_backups
        run_restores
        check_restores
        # A round's copies are checked, then dropped for disk space (KEEP=1 keeps the last).
        if ((ROUND < ROUNDS)) || [[ $KEEP != 1 ]]; then rm -rf "$WORK/restore/$ROUND"; fi
    done
    server_stop server
    record total.seconds "$(seconds_between "$began" "$EPOCHREALTIME")"
    echo
    report
    echo
    echo "machine: $(nproc) cores ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')), $(free -g | awk '/^Mem:/ {print $2}') GiB RAM; whole run $(awk -v s="$(seconds_between "$began" "$EPOCHREALTIME")" 'BEGIN { printf "%d min %d s", s / 60, s % 60 }')"
}

main "$@"
