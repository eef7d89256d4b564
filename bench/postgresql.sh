#!/usr/bin/env bash
# PostgreSQL benchmark of dataprotection.databases against pgBackRest and a
# raw "pg_basebackup | zstd" pipe, side by side on the same data.
#
# This is a benchmark, not a test: it measures and prints figures, and says
# which of the project's targets they meet.  It fails only when a step itself
# fails (a tool exits non-zero, a restored copy does not come up).
#
# What one run does, as root, on a Debian-like host with PostgreSQL 15,
# pgBackRest, zstd and GNU time installed (see bench/README.md):
#   1. initdb + start a throwaway PostgreSQL 15 in a work directory (Unix
#      socket only), load a pgbench database (SCALE 100 ~ 1.5 GB);
#   2. full backups, each timed with its peak RSS: ours (the host command),
#      pgBackRest, pg_basebackup | zstd;
#   3. restores of each into an empty directory, timed, then each restored
#      copy is started and its pgbench_accounts rows are counted;
#   4. archive_command latency: real 16 MiB WAL segments pushed one by one
#      with our wal-push and with pgbackrest archive-push;
#   5. a table of the figures and the targets; everything is stopped and the
#      work directory removed (unless KEEP=1).
#
# Settings (environment):
#   SCALE=100          pgbench scale factor (10 for a quick run)
#   ROUNDS=3           backup + restore rounds (tool order rotates); the report
#                      gives the median
#   WAL_PUSHES=30      WAL segments timed through each archive command
#   KEEP=0             1 keeps the work directory (data, repositories, logs)
#   WORK_PARENT=/var/tmp  where the work directory is made; the postgres user
#                      must be able to traverse it
#   PG_BIN=/usr/lib/postgresql/15/bin
#   PORT=55432         port number of the throwaway server (it listens on a
#                      socket in the work directory only; restored copies use PORT+1)
#   PYTHON             interpreter for our backup and restore (needs the
#                      collection's requirements); default: the checkout's
#                      .venv/bin/python, else python3
#   AGENT_PYTHON=/usr/bin/python3   interpreter of the host command launcher
#                      that archive_command runs (as the agent role installs it)
#   DROP_CACHES=0      1 drops the page cache before every timed step (cold reads)
set -euo pipefail
export LC_ALL=C   # decimal points in EPOCHREALTIME, stable tool output

BENCH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
CHECKOUT=$(cd "$BENCH_DIR/.." && pwd)

SCALE=${SCALE:-100}
ROUNDS=${ROUNDS:-3}
WAL_PUSHES=${WAL_PUSHES:-30}
ROUND=1
KEEP=${KEEP:-0}
WORK_PARENT=${WORK_PARENT:-/var/tmp}
PG_BIN=${PG_BIN:-/usr/lib/postgresql/15/bin}
PORT=${PORT:-55432}
VERIFY_PORT=$((PORT + 1))
AGENT_PYTHON=${AGENT_PYTHON:-/usr/bin/python3}
DROP_CACHES=${DROP_CACHES:-0}
if [[ -z ${PYTHON:-} ]]; then
    if [[ -x $CHECKOUT/.venv/bin/python ]]; then PYTHON=$CHECKOUT/.venv/bin/python; else PYTHON=$(command -v python3); fi
fi
# Our root-run Python must not leave __pycache__ directories in the checkout.
export PYTHONDONTWRITEBYTECODE=1

CLI_MODULE=ansible_collections.dataprotection.databases.plugins.module_utils.cli
CLUSTER=bench

# ---------------------------------------------------------------------------
# Helpers

# shellcheck disable=SC2034  # read by lib/common.sh
SERVICE_USER=postgres
# shellcheck source=bench/lib/common.sh
. "$BENCH_DIR/lib/common.sh"
as_pg() { as_service "$@"; }

# psql as the postgres superuser over the throwaway server's socket.
psql_pg() {
    local db=$1; shift
    as_pg "$PG_BIN/psql" -X -q -A -t -v ON_ERROR_STOP=1 -h "$SOCK" -p "$PORT" -U postgres -d "$db" "$@"
}

# pg_ctl as postgres; the server listens on its socket directory only.
pg_ctl_start() {
    local data=$1 port=$2 logfile=$3
    shift 3
    as_pg "$PG_BIN/pg_ctl" -D "$data" -l "$logfile" -w -t 900 \
        -o "-p $port -c listen_addresses='' -c unix_socket_directories='$SOCK' $*" start >/dev/null
}

pg_ctl_stop() {
    local data=$1
    if [[ -f $data/postmaster.pid ]]; then
        as_pg "$PG_BIN/pg_ctl" -D "$data" -m fast -w -t 120 stop >/dev/null ||
            as_pg "$PG_BIN/pg_ctl" -D "$data" -m immediate -w stop >/dev/null || true
    fi
}

cleanup() {
    local status=$?
    set +e
    if [[ -n ${WORK:-} && -d $WORK ]]; then
        for data in "$WORK"/restore/*/* "$WORK/pg/data"; do
            [[ -d $data ]] && pg_ctl_stop "$data"
        done
        if [[ $KEEP == 1 ]]; then
            log "work directory kept: $WORK"
        else
            rm -rf "$WORK"
        fi
    fi
    exit "$status"
}

# ---------------------------------------------------------------------------
# Steps

check_prerequisites() {
    [[ $(id -u) == 0 ]] || die "run as root: servers run as the postgres user (runuser), our commands as root"
    id postgres >/dev/null 2>&1 || die "no postgres OS user (install postgresql-15)"
    local tool
    for tool in "$PG_BIN/initdb" "$PG_BIN/pg_basebackup" "$PG_BIN/pgbench" "$PG_BIN/pg_waldump" /usr/bin/time; do
        [[ -x $tool ]] || die "$tool is missing (Debian: postgresql-15, time)"
    done
    for tool in pgbackrest zstd tar runuser; do
        command -v "$tool" >/dev/null || die "$tool is missing"
    done
    [[ -x $PYTHON ]] || die "no Python interpreter for our command ($PYTHON)"
    "$PYTHON" -c "import zstandard" 2>/dev/null || die "$PYTHON lacks the collection's requirements (zstandard)"
    "$AGENT_PYTHON" -s -c "import zstandard" 2>/dev/null || die "$AGENT_PYTHON lacks zstandard (Debian: python3-zstandard)"
}

make_workdir() {
    WORK=$(mktemp -d "$WORK_PARENT/dp-bench.XXXXXX")
    chmod 0755 "$WORK"   # the postgres user must traverse it
    [[ $WORK =~ ^[A-Za-z0-9_./-]+$ ]] || die "work directory $WORK has characters this script does not quote for SQL"
    RESULTS=$WORK/results
    SOCK=$WORK/sock
    DATA=$WORK/pg/data
    mkdir -p "$WORK"/{pg,sock,results,logs,raw,restore,walsrc,pgbackrest/{repo,lock,log,spool}}
    chown -R postgres:postgres "$WORK"/{pg,sock,results,logs,raw,restore,walsrc,pgbackrest}
    chmod 0700 "$WORK"/{pg,sock,restore}
    : >"$RESULTS/figures.tsv"
    chown postgres:postgres "$RESULTS/figures.tsv"
    log "work directory $WORK"
}

# Two layouts of our code.  For the backups and restores, run as root with
# PYTHON: the collection as Python imports it (ansible_collections/<ns>/<name>),
# a symlink to this checkout.  For archive_command, run as postgres: the host
# command as the agent role installs it, a root-owned copy of the core
# (plugins/module_utils) byte-compiled for the distribution's Python, and a
# launcher running it with that Python.
install_command() {
    mkdir -p "$WORK/collections/ansible_collections/dataprotection"
    ln -s "$CHECKOUT" "$WORK/collections/ansible_collections/dataprotection/databases"

    local agent_lib=$WORK/agent/lib
    local core=$agent_lib/ansible_collections/dataprotection/databases/plugins/module_utils
    mkdir -p "$(dirname "$core")" "$WORK/agent/bin" "$WORK/etc"
    cp -r "$CHECKOUT/plugins/module_utils" "$core"
    find "$core" -name __pycache__ -prune -exec rm -rf {} +
    "$AGENT_PYTHON" -s -m compileall -q "$agent_lib/ansible_collections" >/dev/null
    LAUNCHER=$WORK/agent/bin/dataprotection
    cat >"$LAUNCHER" <<LAUNCHER_EOF
#!$AGENT_PYTHON -s
# The dataprotection.databases host command, laid out as the agent role does.
import sys

sys.path.insert(0, "$agent_lib")

from $CLI_MODULE import main

if __name__ == "__main__":
    sys.exit(main())
LAUNCHER_EOF
    chmod -R u=rwX,go=rX "$WORK/collections" "$WORK/agent" "$WORK/etc"
    chmod 0755 "$LAUNCHER"
}

start_server() {
    log "initdb + start PostgreSQL ($PG_BIN)"
    as_pg "$PG_BIN/initdb" -D "$DATA" -U postgres -E UTF8 --locale C --auth-local=trust --auth-host=scram-sha-256 >"$WORK/logs/initdb.log"
    cat >>"$DATA/postgresql.conf" <<EOF

# benchmark settings
listen_addresses = ''
port = $PORT
unix_socket_directories = '$SOCK'
wal_level = replica
max_wal_senders = 4
archive_mode = on
archive_command = '/bin/true'   # replaced by pgBackRest's before the backups
shared_buffers = 256MB
max_wal_size = 4GB
checkpoint_timeout = 30min
EOF
    pg_ctl_start "$DATA" "$PORT" "$WORK/logs/server.log"
    record server.version "$(psql_pg postgres -c "SHOW server_version" | cut -d' ' -f1)"
}

load_data() {
    log "pgbench -i -s $SCALE"
    as_pg "$PG_BIN/createdb" -h "$SOCK" -p "$PORT" -U postgres pgbench
    as_pg "$PG_BIN/pgbench" -h "$SOCK" -p "$PORT" -U postgres -i -s "$SCALE" -q pgbench 2>"$WORK/logs/pgbench-init.log"
    psql_pg postgres -c "CHECKPOINT"
    record scale "$SCALE"
    record code "$(code_version)"
    record rounds "$ROUNDS"
    record cluster.bytes "$(psql_pg postgres -c "SELECT sum(pg_database_size(oid)) FROM pg_database")"
    SYSTEM_ID=$(psql_pg postgres -c "SELECT system_identifier FROM pg_control_system()")
}

# Our repository (owned by postgres, as log_backup requires for archive_command)
# and one configuration file per cluster name, as log_backup writes them.
setup_ours() {
    REPO=$WORK/repo
    "$PYTHON" - "$WORK/collections" "$REPO" <<'EOF'
import sys
sys.path.insert(0, sys.argv[1])
from ansible_collections.dataprotection.databases.plugins.module_utils.repoadmin import ensure_present
ensure_present({"type": "local", "path": sys.argv[2]}, owner="postgres")
EOF
    local cluster
    for cluster in "$CLUSTER" wal-agent wal-warmup; do
        cat >"$WORK/etc/$cluster.json" <<EOF
{
  "repo": {"type": "local", "path": "$REPO"},
  "cluster": "$cluster",
  "engine": "postgresql",
  "connection": {"socket": "$SOCK", "port": $PORT, "user": "postgres", "database": "postgres"},
  "compression": "zstd",
  "compression_level": 3,
  "system_identifier": "$SYSTEM_ID",
  "waldump": "$PG_BIN/pg_waldump"
}
EOF
        chown postgres:postgres "$WORK/etc/$cluster.json"
        chmod 0600 "$WORK/etc/$cluster.json"
    done
}

# pgBackRest: a posix repository in the work directory, zstd level 3, two
# processes, and WAL archiving into it so that its backups run as usual
# (archive-check on).
setup_pgbackrest() {
    PGBR_CONF=$WORK/pgbackrest/pgbackrest.conf
    cat >"$PGBR_CONF" <<EOF
[global]
repo1-path=$WORK/pgbackrest/repo
repo1-retention-full=1
compress-type=zst
compress-level=3
process-max=2
start-fast=y
lock-path=$WORK/pgbackrest/lock
log-path=$WORK/pgbackrest/log
spool-path=$WORK/pgbackrest/spool
log-level-console=warn
log-level-file=info

[$CLUSTER]
pg1-path=$DATA
pg1-socket-path=$SOCK
pg1-port=$PORT
pg1-user=postgres
EOF
    chown postgres:postgres "$PGBR_CONF"
    PGBR=(pgbackrest "--config=$PGBR_CONF" "--stanza=$CLUSTER")
    set_archive_command "pgbackrest --config=$PGBR_CONF --stanza=$CLUSTER archive-push %p"
    as_pg "${PGBR[@]}" stanza-create
    as_pg "${PGBR[@]}" check
}

set_archive_command() {
    psql_pg postgres -c "ALTER SYSTEM SET archive_command = '$1'" -c "SELECT pg_reload_conf()" >/dev/null
}

# One round: the three backups, then the three restores of what they wrote.
# The order of the three tools rotates from round to round, so that none is
# always first or last (page cache, memory and background writeback state).
METHODS=(ours pgbackrest raw)

in_round_order() {
    local i n=${#METHODS[@]}
    for ((i = 0; i < n; i++)); do
        printf '%s\n' "${METHODS[(i + ROUND - 1) % n]}"
    done
}

backup_ours() {
    measure ours-backup root env PYTHONPATH="$WORK/collections" \
        "$PYTHON" -m "$CLI_MODULE" --config "$WORK/etc/$CLUSTER.json" backup >"$RESULTS/ours-backup.$ROUND.json"
    OUR_BACKUP_ID=$(json_field backup_id <"$RESULTS/ours-backup.$ROUND.json")
    record data.bytes "$(json_field size <"$RESULTS/ours-backup.$ROUND.json")"
    record ours-backup.stored "$(json_field stored_size <"$RESULTS/ours-backup.$ROUND.json")"
}

backup_pgbackrest() {
    measure pgbackrest-backup postgres "${PGBR[@]}" --type=full backup
    as_pg "${PGBR[@]}" --output=json info >"$RESULTS/pgbackrest-info.$ROUND.json"
    # What the backup itself stored (its WAL stays in the archive).
    record pgbackrest-backup.stored "$("$PYTHON" -c 'import json, sys; print(json.load(sys.stdin)[0]["backup"][-1]["info"]["repository"]["delta"])' \
        <"$RESULTS/pgbackrest-info.$ROUND.json")"
}

backup_raw() {
    measure raw-backup postgres bash -c "set -o pipefail; \"\$1/pg_basebackup\" -h \"\$2\" -p \"\$3\" -U postgres -w -D - -F t -X fetch -c fast | zstd -q -T0 -3 >\"\$4\"" \
        _ "$PG_BIN" "$SOCK" "$PORT" "$WORK/raw/base.tar.zst"
    record raw-backup.stored "$(stat -c %s "$WORK/raw/base.tar.zst")"
}

restore_ours() {
    measure ours-restore root env PYTHONPATH="$WORK/collections" \
        "$PYTHON" -m "$CLI_MODULE" --config "$WORK/etc/$CLUSTER.json" restore \
        --backup-id "$OUR_BACKUP_ID" --data-dir "$1/ours" --owner postgres >"$RESULTS/ours-restore.$ROUND.json"
}

restore_pgbackrest() {
    measure pgbackrest-restore postgres "${PGBR[@]}" --pg1-path="$1/pgbackrest" restore
}

restore_raw() {
    measure raw-restore postgres bash -c "set -o pipefail; zstd -q -d -c \"\$1\" | tar -x -f - -C \"\$2\"" \
        _ "$WORK/raw/base.tar.zst" "$1/raw"
}

run_backups() {
    local method
    for method in $(in_round_order); do
        psql_pg postgres -c "CHECKPOINT"   # each backup starts from a clean checkpoint
        "backup_$method"
    done
}

run_restores() {
    local method into=$WORK/restore/$ROUND
    as_pg install -d -m 0700 "$into" "$into/pgbackrest" "$into/raw"
    for method in $(in_round_order); do
        "restore_$method" "$into"
    done
}

# Each restored copy must be a data directory that starts and holds every
# pgbench_accounts row.  Archiving stays off on the copies.
check_restores() {
    local name dir files rows expected=$((SCALE * 100000))
    for name in ours pgbackrest raw; do
        dir=$WORK/restore/$ROUND/$name
        [[ -f $dir/PG_VERSION ]] || die "$name restore: no PG_VERSION in $dir"
        files=$(find "$dir" -path "$dir/pg_wal" -prune -o -type f -print | wc -l)
        log "starting the $name copy to count rows"
        pg_ctl_start "$dir" "$VERIFY_PORT" "$WORK/logs/verify-$name.log" "-c archive_mode=off"
        rows=$(as_pg "$PG_BIN/psql" -X -A -t -h "$SOCK" -p "$VERIFY_PORT" -U postgres -d pgbench -c "SELECT count(*) FROM pgbench_accounts")
        pg_ctl_stop "$dir"
        [[ $rows == "$expected" ]] || die "$name restore: $rows pgbench_accounts rows, expected $expected"
        record "$name-restore.check" "round $ROUND: starts, $rows pgbench_accounts rows, $files files outside pg_wal"
    done
}

# Real WAL for the archive command timings: an OLTP load (pgbench's TPC-B-like
# script) while archive_command copies each completed segment aside.  A
# checkpoint before each 5-second round makes the first change of every page
# write a full-page image, as after any checkpoint in production; without it a
# small SCALE yields under 2 MB of WAL a second here.
generate_wal() {
    local wanted=$((WAL_PUSHES + 1)) rounds=0   # one more for the warm-up push
    log "generating $wanted WAL segments with pgbench"
    set_archive_command "test ! -f $WORK/walsrc/%f && cp %p $WORK/walsrc/.%f.tmp && mv $WORK/walsrc/.%f.tmp $WORK/walsrc/%f"
    while (($(find "$WORK/walsrc" -name '[0-9A-F]*' | wc -l) < wanted)); do
        ((rounds++ < 200)) || die "pgbench did not produce $wanted WAL segments"
        psql_pg postgres -c "CHECKPOINT"
        as_pg env PGOPTIONS="-c synchronous_commit=off" "$PG_BIN/pgbench" -h "$SOCK" -p "$PORT" -U postgres \
            -n -c 4 -j 2 -T 5 pgbench >>"$WORK/logs/pgbench-run.log" 2>&1
    done
    set_archive_command /bin/true
    find "$WORK/walsrc" -name '[0-9A-F]*' | sort | head -n "$wanted" >"$WORK/walsrc.list"
    # How much work a segment holds for our wal-push, which reads the commit
    # times of every transaction in it.
    local segment commits=()
    while IFS= read -r segment; do
        commits+=("$(as_pg "$PG_BIN/pg_waldump" -r Transaction "$segment" 2>/dev/null | grep -c 'desc: COMMIT' || true)")
    done <"$WORK/walsrc.list"
    record wal.commits "$(printf '%s\n' "${commits[@]}" | sort -n | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }')"
}

# Push the segments one by one as the postgres user, as archive_command does;
# one untimed push first of each (page cache for the interpreter and libraries).
time_archive_commands() {
    local warmup timed_list=$WORK/walsrc.timed
    warmup=$(head -n 1 "$WORK/walsrc.list")
    tail -n +2 "$WORK/walsrc.list" >"$timed_list"
    chmod a+r "$WORK/walsrc.list" "$timed_list"

    log "timing $WAL_PUSHES wal-push runs of the host command"
    as_pg "$LAUNCHER" --config "$WORK/etc/wal-warmup.json" wal-push "$warmup"
    as_pg bash "$BENCH_DIR/lib/time-each.sh" "$RESULTS/walpush.ms" \
        "$LAUNCHER" --config "$WORK/etc/wal-agent.json" wal-push <"$timed_list"

    log "timing $WAL_PUSHES pgbackrest archive-push runs"
    as_pg "${PGBR[@]}" archive-push "$warmup"
    as_pg bash "$BENCH_DIR/lib/time-each.sh" "$RESULTS/pgbackrest-archive-push.ms" \
        "${PGBR[@]}" archive-push <"$timed_list"
}

# ---------------------------------------------------------------------------

main() {
    local began=$EPOCHREALTIME
    check_prerequisites
    trap cleanup EXIT
    make_workdir
    install_command
    start_server
    load_data
    setup_ours
    setup_pgbackrest
    for ((ROUND = 1; ROUND <= ROUNDS; ROUND++)); do
        run_backups
        run_restores
        check_restores
        # A round's copies are checked, then dropped for disk space (KEEP=1 keeps the last).
        if ((ROUND < ROUNDS)) || [[ $KEEP != 1 ]]; then rm -rf "$WORK/restore/$ROUND"; fi
    done
    generate_wal
    time_archive_commands
    pg_ctl_stop "$DATA"
    record total.seconds "$(seconds_between "$began" "$EPOCHREALTIME")"
    echo
    "$AGENT_PYTHON" "$BENCH_DIR/lib/report.py" "$RESULTS"
    echo
    echo "machine: $(nproc) cores ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')), $(free -g | awk '/^Mem:/ {print $2}') GiB RAM; whole run $(awk -v s="$(seconds_between "$began" "$EPOCHREALTIME")" 'BEGIN { printf "%d min %d s", s / 60, s % 60 }')"
}

main "$@"
