#!/usr/bin/env bash
# Volume-snapshot benchmark: a btrfs snapshot backup of PostgreSQL taken in
# backup mode, side by side with a full copy of the same data by
# pg_basebackup (ours, and the raw "pg_basebackup | zstd" pipe), and the raw
# btrfs snapshot alone as the floor.
#
# This is a benchmark, not a test: it measures and prints figures.  It fails
# only when a step itself fails (a tool exits non-zero, a restored copy does
# not come up with the loaded rows).
#
# What one run does, as root, on a Debian-like host with PostgreSQL 15,
# btrfs-progs, zstd and GNU time installed (see bench/README.md):
#   1. a btrfs file system on a loop device (a sparse file of FS_GB GiB);
#      initdb into a subvolume on it, start PostgreSQL, load pgbench (SCALE);
#   2. ROUNDS rounds, the order rotating, each timed with its peak RSS:
#        snapshot      ours, method volume-snapshot, provider btrfs (kept)
#        snapshot+copy ours, the same with stream: true (files into the repository)
#        basebackup    ours, method pg-basebackup
#        raw-bb        pg_basebackup -F tar -X fetch | zstd -3 > file
#        raw-snap      psql pg_backup_start; btrfs subvolume snapshot -r; pg_backup_stop (the floor of snapshot)
#        raw-snap-copy the same, then tar | zstd -3 of the snapshot into a file (the floor of snapshot+copy)
#   3. restores of the last round: ours from the snapshot (a new subvolume and
#      the finishing steps), ours from the pg_basebackup backup, raw
#      zstd -d | tar -x; each restored copy is started and its
#      pgbench_accounts rows are counted;
#   4. a table with medians and the ratios, then everything is stopped, the
#      file system unmounted and the work directory removed (unless KEEP=1).
#
# Settings (environment):
#   SCALE=30          pgbench scale factor (~15 MB a unit)
#   ROUNDS=3          backup rounds; the report gives the median
#   FS_GB=8           size of the btrfs image (sparse)
#   KEEP=0            1 keeps the work directory, mounted
#   WORK_PARENT=/var/tmp
#   PG_BIN=/usr/lib/postgresql/15/bin
#   PORT=56432        the throwaway server's port (socket only); restored copies use PORT+1
#   PYTHON            interpreter for our backups and restores; default the checkout's .venv
#   DROP_CACHES=0     1 drops the page cache before every timed step
set -euo pipefail
export LC_ALL=C

BENCH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
CHECKOUT=$(cd "$BENCH_DIR/.." && pwd)

SCALE=${SCALE:-30}
ROUNDS=${ROUNDS:-3}
FS_GB=${FS_GB:-8}
ROUND=1
KEEP=${KEEP:-0}
WORK_PARENT=${WORK_PARENT:-/var/tmp}
PG_BIN=${PG_BIN:-/usr/lib/postgresql/15/bin}
PORT=${PORT:-56432}
VERIFY_PORT=$((PORT + 1))
DROP_CACHES=${DROP_CACHES:-0}
if [[ -z ${PYTHON:-} ]]; then
    if [[ -x $CHECKOUT/.venv/bin/python ]]; then PYTHON=$CHECKOUT/.venv/bin/python; else PYTHON=$(command -v python3); fi
fi
export PYTHONDONTWRITEBYTECODE=1

# shellcheck disable=SC2034  # read by lib/common.sh
SERVICE_USER=postgres
# shellcheck source=bench/lib/common.sh
. "$BENCH_DIR/lib/common.sh"
as_pg() { as_service "$@"; }

psql_pg() {
    as_pg "$PG_BIN/psql" -X -q -A -t -v ON_ERROR_STOP=1 -h "$SOCK" -p "$1" -U postgres -d postgres -c "$2"
}

pg_ctl_start() {
    as_pg "$PG_BIN/pg_ctl" -D "$1" -l "$3" -w -t 900 -o "-p $2 -c listen_addresses='' -c unix_socket_directories='$SOCK'" start >/dev/null
}

pg_ctl_stop() {
    if [[ -f $1/postmaster.pid ]]; then
        as_pg "$PG_BIN/pg_ctl" -D "$1" -m fast -w -t 120 stop >/dev/null || as_pg "$PG_BIN/pg_ctl" -D "$1" -m immediate -w stop >/dev/null || true
    fi
}

cleanup() {
    local status=$?
    set +e
    if [[ -n ${WORK:-} && -d $WORK ]]; then
        local data
        for data in "$MNT"/restored-* "$WORK"/restore/* "$MNT/pgdata"; do
            [[ -d $data ]] && pg_ctl_stop "$data"
        done
        if [[ $KEEP == 1 ]]; then
            log "work directory kept: $WORK (btrfs mounted at $MNT on $LOOP)"
        else
            mountpoint -q "$MNT" && umount "$MNT"
            [[ -n ${LOOP:-} ]] && losetup -d "$LOOP"
            rm -rf "$WORK"
        fi
    fi
    exit "$status"
}

check_prerequisites() {
    [[ $(id -u) == 0 ]] || die "run as root: loop devices, mounts, and servers run as the postgres user"
    local tool
    for tool in "$PG_BIN/initdb" "$PG_BIN/pg_basebackup" "$PG_BIN/pgbench" /usr/bin/time; do
        [[ -x $tool ]] || die "$tool is missing (Debian: postgresql-15, time)"
    done
    for tool in btrfs mkfs.btrfs losetup zstd tar runuser; do
        command -v "$tool" >/dev/null || die "$tool is missing"
    done
    "$PYTHON" -c "import zstandard" 2>/dev/null || die "$PYTHON lacks the collection's requirements (zstandard)"
}

make_workdir() {
    WORK=$(mktemp -d "$WORK_PARENT/dp-bench-snap.XXXXXX")
    chmod 0755 "$WORK"
    RESULTS=$WORK/results
    SOCK=$WORK/sock
    MNT=$WORK/mnt
    mkdir -p "$WORK"/{sock,results,logs,raw,restore,repo,mnt}
    chown postgres:postgres "$WORK"/{sock,logs,raw,restore,results}
    : >"$RESULTS/figures.tsv"
    truncate -s "${FS_GB}G" "$WORK/btrfs.img"
    LOOP=$(losetup --find --show "$WORK/btrfs.img")
    mkfs.btrfs -q -f "$LOOP"
    mount -t btrfs "$LOOP" "$MNT"
    chmod 0755 "$MNT"
    btrfs subvolume create "$MNT/pgdata" >/dev/null
    chown postgres:postgres "$MNT/pgdata"
    chmod 0700 "$MNT/pgdata"
    DATA=$MNT/pgdata
    mkdir -p "$WORK/collections/ansible_collections/dataprotection"
    ln -s "$CHECKOUT" "$WORK/collections/ansible_collections/dataprotection/databases"
    log "work directory $WORK, btrfs on $LOOP at $MNT"
}

start_server() {
    log "initdb + start PostgreSQL on btrfs, pgbench -i -s $SCALE"
    as_pg "$PG_BIN/initdb" -D "$DATA" -U postgres -E UTF8 --locale C --auth-local=trust >"$WORK/logs/initdb.log"
    cat >>"$DATA/postgresql.conf" <<EOF

# benchmark settings
wal_level = replica
max_wal_senders = 4
shared_buffers = 256MB
max_wal_size = 4GB
checkpoint_timeout = 30min
EOF
    pg_ctl_start "$DATA" "$PORT" "$WORK/logs/server.log"
    as_pg "$PG_BIN/pgbench" -i -q -s "$SCALE" -h "$SOCK" -p "$PORT" -U postgres postgres >"$WORK/logs/pgbench.log" 2>&1
    record server.version "$(psql_pg "$PORT" "SHOW server_version" | cut -d' ' -f1)"
    record data.bytes "$(psql_pg "$PORT" "SELECT pg_database_size('postgres')")"
    record rows "$(psql_pg "$PORT" "SELECT count(*) FROM pgbench_accounts")"
}

# The two Python drivers: ours.py runs our backup or restore through the core, as the modules call it, and prints
# its JSON result; raw_snap.py is the floor: backup mode on one psql session around a btrfs snapshot, nothing else.
write_drivers() {
    cat >"$WORK/ours.py" <<'PY'
import json
import sys

from ansible_collections.dataprotection.databases.plugins.module_utils.backup import BackupRequest, run_backup
from ansible_collections.dataprotection.databases.plugins.module_utils.restore import RestoreRequest, run_restore

work, sock, port, mode = sys.argv[1:5]
repo = {"type": "local", "path": work + "/repo"}
connection = {"socket": sock, "port": int(port), "user": "postgres"}
if mode == "init":
    from ansible_collections.dataprotection.databases.plugins.module_utils.repoadmin import ensure_present

    result = ensure_present(repo)
elif mode == "restore":
    request = RestoreRequest("postgresql", "bench", sys.argv[6], backup_id=sys.argv[5], options={"owner": "postgres"})
    result = run_restore(repo, request)
else:
    snapshot = {"provider": "btrfs", "stream": mode == "snapshot+copy"} if mode.startswith("snapshot") else None
    method = "volume-snapshot" if snapshot else "pg-basebackup"
    result = run_backup(repo, BackupRequest("postgresql", method, "bench", connection=connection, snapshot=snapshot))
    result.pop("manifest", None)
print(json.dumps(result, default=str))
PY
    cat >"$WORK/raw_snap.py" <<'PY'
import subprocess
import sys

psql, sock, port, data, target = sys.argv[1:6]
session = subprocess.Popen(["runuser", "-u", "postgres", "--", psql, "-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-h", sock, "-p", port,
                            "-U", "postgres", "-d", "postgres"], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, bufsize=1)
session.stdin.write("SELECT pg_backup_start('raw', true);\n\\echo started\n")
while session.stdout.readline().strip() != "started":
    pass
subprocess.run(["btrfs", "subvolume", "snapshot", "-r", data, target], check=True, stdout=subprocess.DEVNULL)
session.stdin.write("SELECT 1 FROM pg_backup_stop(false);\n\\echo stopped\n")
while session.stdout.readline().strip() != "stopped":
    pass
session.stdin.close()
if session.wait() != 0:
    sys.exit("psql failed")
if len(sys.argv) > 6:
    # raw-snap-copy: the snapshot's files, as tar | zstd, into a file.
    subprocess.run("tar -c -f - -C '%s' --numeric-owner . | zstd -q -3 -T0 > '%s'" % (target, sys.argv[6]), shell=True, check=True)
PY
}

# field FILE KEY: a field of the backup in one of ours.py's results.
field() { "$PYTHON" -c 'import json, sys; print(json.load(open(sys.argv[1]))["backup"][sys.argv[2]])' "$1" "$2"; }

backup_round() {
    local step out
    local steps=(snapshot snapshot+copy basebackup raw-bb raw-snap raw-snap-copy)
    local count=${#steps[@]} i
    for ((i = 0; i < count; i++)); do
        step=${steps[$(((i + ROUND - 1) % count))]}
        out=$RESULTS/$step.$ROUND.json
        case $step in
            snapshot | snapshot+copy | basebackup)
                measure "$step" root bash -c "PYTHONPATH='$WORK/collections' '$PYTHON' '$WORK/ours.py' '$WORK' '$SOCK' '$PORT' '$step' >'$out'" ;;
            raw-bb)
                measure raw-bb postgres bash -c "'$PG_BIN/pg_basebackup' -h '$SOCK' -p '$PORT' -U postgres -D - -F tar -X fetch -c fast \
                    | zstd -q -3 -T0 >'$WORK/raw/base.$ROUND.tar.zst'" ;;
            raw-snap)
                measure raw-snap root "$PYTHON" "$WORK/raw_snap.py" "$PG_BIN/psql" "$SOCK" "$PORT" "$DATA" "$MNT/raw-$ROUND" ;;
            raw-snap-copy)
                measure raw-snap-copy root "$PYTHON" "$WORK/raw_snap.py" "$PG_BIN/psql" "$SOCK" "$PORT" "$DATA" "$MNT/raw-copy-$ROUND" \
                    "$WORK/raw/snap.$ROUND.tar.zst" ;;
        esac
        if [[ $step == snapshot* ]]; then
            record "$step.quiesce" "$(field "$out" quiesce_seconds)"
        fi
        sleep 1.1   # backup ids are per second
    done
}

count_rows() {
    local data=$1 step=$2 rows
    pg_ctl_start "$data" "$VERIFY_PORT" "$WORK/logs/$step.verify.log"
    local deadline=$((SECONDS + 300))
    until [[ $(psql_pg "$VERIFY_PORT" "SELECT pg_is_in_recovery()" 2>/dev/null) == f ]]; do
        ((SECONDS < deadline)) || die "$step: the restored server did not finish recovery"
        sleep 0.2
    done
    rows=$(psql_pg "$VERIFY_PORT" "SELECT count(*) FROM pgbench_accounts")
    pg_ctl_stop "$data"
    [[ $rows == $((SCALE * 100000)) ]] || die "$step: restored copy has $rows rows, not $((SCALE * 100000))"
    record "$step.rows" "$rows"
}

restores() {
    ROUND=1
    local snap base
    snap=$(field "$RESULTS/snapshot.$ROUNDS.json" backup_id)
    base=$(field "$RESULTS/basebackup.$ROUNDS.json" backup_id)
    measure restore-snapshot root bash -c "PYTHONPATH='$WORK/collections' '$PYTHON' '$WORK/ours.py' '$WORK' '$SOCK' '$PORT' restore '$snap' '$MNT/restored-snap' >/dev/null"
    count_rows "$MNT/restored-snap" restore-snapshot
    measure restore-basebackup root bash -c "PYTHONPATH='$WORK/collections' '$PYTHON' '$WORK/ours.py' '$WORK' '$SOCK' '$PORT' restore '$base' '$WORK/restore/base' >/dev/null"
    count_rows "$WORK/restore/base" restore-basebackup
    mkdir -p "$WORK/restore/raw"
    chown postgres:postgres "$WORK/restore/raw"
    chmod 0700 "$WORK/restore/raw"
    measure restore-raw postgres bash -c "zstd -q -d -c '$WORK/raw/base.$ROUNDS.tar.zst' | tar -x -f - -C '$WORK/restore/raw'"
    count_rows "$WORK/restore/raw" restore-raw
}

report() {
    CODE=$(code_version) "$PYTHON" - "$RESULTS/figures.tsv" "$RESULTS" <<'PY'
import glob
import os
import re
import statistics
import sys

figures = {}
for line in open(sys.argv[1]):
    key, value = line.rstrip("\n").split("\t")
    figures.setdefault(key, []).append(value)


def median(key):
    values = [float(v) for v in figures.get(key, [])]
    return statistics.median(values) if values else None


def rss(step):
    found = []
    for path in glob.glob(os.path.join(sys.argv[2], "%s.*.time" % step)):
        match = re.search(r"Maximum resident set size \(kbytes\): (\d+)", open(path).read())
        if match:
            found.append(int(match.group(1)) / 1024.0)
    return max(found) if found else None


size = float(figures["data.bytes"][0])
print("PostgreSQL %s, %.0f MB database (%s pgbench_accounts rows), code %s" % (
    figures["server.version"][0], size / 1e6, figures["rows"][0], os.environ.get("CODE")))
print()
print("| step | median s | peak RSS MB | x its raw peer | x raw pg_basebackup|zstd | quiesce s |")
print("|---|---|---|---|---|---|")
raw = median("raw-bb.seconds")
peers = {"snapshot": "raw-snap", "snapshot+copy": "raw-snap-copy", "basebackup": "raw-bb"}
for step in ("snapshot", "snapshot+copy", "basebackup", "raw-bb", "raw-snap", "raw-snap-copy"):
    seconds = median(step + ".seconds")
    quiesce = median(step + ".quiesce")
    peer = median(peers[step] + ".seconds") if step in peers else seconds
    print("| %s | %.2f | %s | %.2f | %.2f | %s |" % (step, seconds, "%.0f" % rss(step) if rss(step) else "-", seconds / peer, seconds / raw,
                                                    "%.2f" % quiesce if quiesce is not None else "-"))
print()
print("| restore (then started, rows counted) | s | x raw zstd -d pipe tar |")
print("|---|---|---|")
raw_restore = median("restore-raw.seconds")
for step in ("restore-snapshot", "restore-basebackup", "restore-raw"):
    seconds = median(step + ".seconds")
    print("| %s | %.2f | %.2f |" % (step, seconds, seconds / raw_restore))
PY
}

check_prerequisites
trap cleanup EXIT
make_workdir
write_drivers
start_server
PYTHONPATH=$WORK/collections "$PYTHON" "$WORK/ours.py" "$WORK" "$SOCK" "$PORT" init >/dev/null
for ((ROUND = 1; ROUND <= ROUNDS; ROUND++)); do
    backup_round
done
restores
report | tee "$RESULTS/report.md"
