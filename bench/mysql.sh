#!/usr/bin/env bash
# MySQL/MariaDB benchmark of dataprotection.databases against the raw
# "mariabackup --backup --stream=mbstream | zstd" pipe, side by side on the
# same data.
#
# This is a benchmark, not a test: it measures and prints figures, and says
# which of the project's targets they meet.  It fails only when a step itself
# fails (a tool exits non-zero, a restored copy does not come up or holds
# other data than the source).
#
# What one run does, as root, on a Debian-like host with MariaDB 10.11
# (server, client, mariadb-backup), zstd and GNU time installed (see
# bench/README.md):
#   1. mariadb-install-db + start a throwaway MariaDB in a work directory
#      (Unix socket only, binary log on), load a few InnoDB tables of
#      order-like rows (SIZE_MB=1000 ~ 1 GB of .ibd files);
#   2. full backups, each timed with its peak RSS: ours (the host command),
#      mariabackup | zstd, and both again with mariabackup --parallel=2 (ours
#      through a small driver: the host command has no option for it);
#   3. restores of ours and of the raw pipe's file into empty directories,
#      timed: ours is the host command's restore (extract, --prepare,
#      --move-back, chown), the raw one zstd -d | mbstream -x, then
#      mariabackup --prepare and --move-back; then each restored copy is
#      started and its rows and CHECKSUM TABLE compared with the source;
#   4. a table of the figures and the targets; everything is stopped and the
#      work directory removed (unless KEEP=1).
#
# Settings (environment):
#   SIZE_MB=1000       about how many MB (10^6 bytes) of InnoDB table files to
#                      load (100 for a quick run)
#   ROWS               rows to load in all, instead of SIZE_MB (about 197 bytes
#                      on disk a row, secondary index included)
#   TABLES=4           InnoDB tables the rows are spread over (loaded in parallel)
#   ROUNDS=3           backup + restore rounds (tool order rotates); the report
#                      gives the median
#   PARALLEL=2         mariabackup --parallel of the extra pair of backups (ours
#                      and raw); 0 or 1 leaves that pair out
#   KEEP=0             1 keeps the work directory (data, repository, logs)
#   WORK_PARENT=/var/tmp  where the work directory is made; the mysql user
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
BYTES_PER_ROW=197   # measured: .ibd bytes per row of the tables below, secondary index included (4.3 million rows)
ROWS=${ROWS:-$((SIZE_MB * 1000000 / BYTES_PER_ROW))}
TABLES=${TABLES:-4}
ROUNDS=${ROUNDS:-3}
PARALLEL=${PARALLEL:-2}
ROUND=1
KEEP=${KEEP:-0}
WORK_PARENT=${WORK_PARENT:-/var/tmp}
DROP_CACHES=${DROP_CACHES:-0}
if [[ -z ${PYTHON:-} ]]; then
    if [[ -x $CHECKOUT/.venv/bin/python ]]; then PYTHON=$CHECKOUT/.venv/bin/python; else PYTHON=$(command -v python3); fi
fi
# Our root-run Python must not leave __pycache__ directories in the checkout.
export PYTHONDONTWRITEBYTECODE=1
export PATH=$PATH:/usr/sbin:/sbin   # mariadbd

CLUSTER=bench
DB=bench
# The server: 1 GiB buffer pool and 512 MiB redo log, so that the load runs
# in memory; the binary log on, as log_backup requires (the load itself is
# kept out of it: SET sql_log_bin = 0).
SERVER_OPTIONS=(--log-bin=mysql-bin --binlog-format=ROW --server-id=1 --innodb-buffer-pool-size=1G --innodb-log-file-size=512M)

# ---------------------------------------------------------------------------
# Helpers

# shellcheck disable=SC2034  # read by lib/common.sh
SERVICE_USER=mysql
# shellcheck source=bench/lib/common.sh
. "$BENCH_DIR/lib/common.sh"
as_mysql() { as_service "$@"; }

# sql_at SOCKET SQL: the client as root over a server's socket, one result
# row a line, tab-separated, no headers.
sql_at() {
    env MYSQL_PWD="$PASSWORD" mariadb --no-defaults --socket="$1" --user=root --batch --skip-column-names --raw -e "$2"
}
sql() { sql_at "$SOCK/server.sock" "$1"; }

# server_start NAME DATADIR SOCKET [OPTION...]
# Starts mariadbd on DATADIR in the background (as root, switching to the
# mysql user itself), listening on SOCKET only, and waits until it answers.
# Its process id goes to WORK/pids/NAME for server_stop and cleanup.
server_start() {
    local name=$1 data=$2 socket=$3 pid deadline=$((SECONDS + 600))
    shift 3
    mariadbd --no-defaults --datadir="$data" --socket="$socket" --pid-file="$SOCK/$name.pid" \
        --log-error="$WORK/logs/$name.err" --skip-networking --user=mysql "$@" </dev/null >>"$WORK/logs/$name.out" 2>&1 &
    pid=$!
    echo "$pid" >"$WORK/pids/$name"
    # mariadb-admin ping succeeds as soon as the server answers, even before
    # the root password is set.
    until env MYSQL_PWD="$PASSWORD" mariadb-admin --no-defaults --socket="$socket" --user=root --connect-timeout=2 ping >/dev/null 2>&1; do
        alive "$pid" || die "the $name server exited: $(tail -n 5 "$WORK/logs/$name.err")"
        ((SECONDS < deadline)) || die "the $name server did not answer in 600 s"
        sleep 0.2
    done
}

server_stop() {
    local name=$1 pid i
    [[ -f $WORK/pids/$name ]] || return 0
    pid=$(<"$WORK/pids/$name")
    if alive "$pid"; then
        kill -TERM "$pid"
        for ((i = 0; i < 1200; i++)); do
            alive "$pid" || break
            sleep 0.25
        done
        if alive "$pid"; then
            log "the $name server did not stop in 300 s; killing it"
            kill -KILL "$pid"
        fi
    fi
    wait "$pid" 2>/dev/null || true
    rm -f "$WORK/pids/$name"
}

# ---------------------------------------------------------------------------
# Steps

check_prerequisites() {
    [[ $(id -u) == 0 ]] || die "run as root: the servers switch to the mysql user, our commands run as root"
    id mysql >/dev/null 2>&1 || die "no mysql OS user (install mariadb-server)"
    local tool
    for tool in mariadb-install-db mariadbd mariadb mariadb-admin mariabackup mbstream zstd runuser; do
        command -v "$tool" >/dev/null || die "$tool is missing (Debian: mariadb-server, mariadb-client, mariadb-backup, zstd)"
    done
    [[ -x /usr/bin/time ]] || die "/usr/bin/time is missing (Debian: time)"
    [[ -x $PYTHON ]] || die "no Python interpreter for our command ($PYTHON)"
    "$PYTHON" -c "import zstandard" 2>/dev/null || die "$PYTHON lacks the collection's requirements (zstandard)"
    [[ $ROWS =~ ^[0-9]+$ && $ROWS -ge $TABLES && $TABLES -ge 1 ]] || die "ROWS ($ROWS) must be a number of at least TABLES ($TABLES)"
}

make_workdir() {
    WORK=$(mktemp -d "$WORK_PARENT/dp-bench-mysql.XXXXXX")
    chmod 0755 "$WORK"   # the mysql user must traverse it
    RESULTS=$WORK/results
    SOCK=$WORK/sock
    DATA=$WORK/mysql/data
    mkdir -p "$WORK"/{mysql,sock,results,logs,raw,restore,pids,etc,tmp}
    chown mysql:mysql "$WORK"/{mysql,sock,results,logs,restore}
    chmod 0700 "$WORK"/{mysql,restore,pids,etc,tmp}
    : >"$RESULTS/figures.tsv"
    chown mysql:mysql "$RESULTS/figures.tsv"
    # The root password of the throwaway server (hexadecimal: no quoting needed).
    PASSWORD=$(od -An -N12 -tx1 /dev/urandom | tr -d ' \n')
    log "work directory $WORK"
}

# Our code, run as root with PYTHON: the collection as Python imports it
# (ansible_collections/<ns>/<name>), a symlink to this checkout, and a small
# driver that runs it in-process and writes the process's own peak RSS (the
# Python process without its tool children) when it ends.
install_command() {
    mkdir -p "$WORK/collections/ansible_collections/dataprotection"
    ln -s "$CHECKOUT" "$WORK/collections/ansible_collections/dataprotection/databases"
    DRIVER=$WORK/driver.py
    cat >"$DRIVER" <<'DRIVER_EOF'
"""Run our code in this process; write this process's own peak RSS (KiB) to RSS_FILE when it ends.

    driver.py RSS_FILE cli ARG...                 the host command (cli.py) with ARG...
    driver.py RSS_FILE backup CONFIG PARALLEL     a backup with mariabackup --parallel=PARALLEL,
                                                  which the host command has no option for
"""
import json
import os
import resource
import runpy
import sys

CLI = "ansible_collections.dataprotection.databases.plugins.module_utils.cli"


def backup_with_options(config_path, options):
    from ansible_collections.dataprotection.databases.plugins.module_utils import backup, matrix

    with open(config_path) as handle:
        config = json.load(handle)
    request = backup.BackupRequest(
        engine=config["engine"],
        method=matrix.default_method(config["engine"], "tool"),
        cluster=config["cluster"],
        connection=config.get("connection"),
        compression=config.get("compression"),
        compression_level=config.get("compression_level"),
        options=options,
    )
    result = backup.run_backup(config["repo"], request)
    sys.stdout.write(json.dumps(result["backup"], sort_keys=True) + "\n")


rss_file, what = sys.argv[1], sys.argv[2]
try:
    if what == "cli":
        sys.argv = [CLI] + sys.argv[3:]
        runpy.run_module(CLI, run_name="__main__", alter_sys=True)
    else:
        os.umask(0o077)   # as the host command
        backup_with_options(sys.argv[3], {"parallel": int(sys.argv[4])})
finally:
    with open(rss_file, "w") as handle:
        handle.write("%d\n" % resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
DRIVER_EOF
    chmod -R u=rwX,go=rX "$WORK/collections" "$DRIVER"
}

start_server() {
    log "mariadb-install-db + start MariaDB"
    mariadb-install-db --no-defaults --datadir="$DATA" --user=mysql --skip-test-db >"$WORK/logs/install-db.log" 2>&1 ||
        die "mariadb-install-db failed: $(tail -n 5 "$WORK/logs/install-db.log")"
    server_start server "$DATA" "$SOCK/server.sock" "${SERVER_OPTIONS[@]}"
    # root logs in with a password, as a backup user does (MYSQL_PWD), not
    # through the unix_socket plugin.
    sql "ALTER USER root@localhost IDENTIFIED VIA mysql_native_password USING PASSWORD('$PASSWORD')"
    sql "SELECT 1" >/dev/null || die "root cannot log in with its new password"
    record server.version "$(sql "SELECT VERSION()" | cut -d- -f1)"
}

# Order-like rows: sequential keys, dates, a few repeated words, an MD5 and
# part of a SHA-1 of the key, amounts from RAND(seed): zstd level 3 makes
# about a quarter of them, unlike all-zero or all-blank filler.  The tables
# are filled in parallel from MariaDB's SEQUENCE engine, each with its own
# key range, and kept out of the binary log.
load_data() {
    local t per=$(((ROWS + TABLES - 1) / TABLES)) from to pids=() pid tables=()
    log "loading $ROWS rows into $TABLES InnoDB tables"
    sql "CREATE DATABASE $DB"
    for ((t = 1; t <= TABLES; t++)); do
        tables+=("$DB.orders_$t")
        sql "CREATE TABLE $DB.orders_$t (
               id BIGINT UNSIGNED NOT NULL PRIMARY KEY,
               customer_id INT UNSIGNED NOT NULL,
               created_at DATETIME NOT NULL,
               status VARCHAR(12) NOT NULL,
               amount DECIMAL(12,2) NOT NULL,
               ref CHAR(32) NOT NULL,
               note VARCHAR(255) NOT NULL,
               KEY customer (customer_id, created_at)
             ) ENGINE=InnoDB"
    done
    for ((t = 1; t <= TABLES; t++)); do
        from=$(((t - 1) * per + 1))
        to=$((t * per < ROWS ? t * per : ROWS))
        sql "SET SESSION sql_log_bin = 0; USE $DB; $(insert_statements "orders_$t" "$from" "$to")" &
        pids+=($!)
    done
    for pid in "${pids[@]}"; do
        wait "$pid" || die "loading a table failed"
    done
    flush_dirty_pages
    TABLE_LIST=$(IFS=,; echo "${tables[*]}")
    sql "ANALYZE TABLE $TABLE_LIST" >/dev/null
    SOURCE_ROWS=$(count_rows "$SOCK/server.sock")
    SOURCE_CHECKSUM=$(table_checksum "$SOCK/server.sock")
    [[ $SOURCE_ROWS == "$ROWS" ]] || die "loaded $SOURCE_ROWS rows, expected $ROWS"
    record engine mysql
    record code "$(code_version)"
    record rounds "$ROUNDS"
    record tables "$TABLES"
    record rows "$ROWS"
    record tables.bytes "$(du -sb "$DATA/$DB" | cut -f1)"
    record ibdata.bytes "$(stat -c %s "$DATA/ibdata1")"
    record datadir.bytes "$(du -sb "$DATA" | cut -f1)"
}

# insert_statements TABLE FROM TO: INSERTs of the rows with keys FROM..TO,
# 100,000 a statement (one transaction each: its undo log is freed at commit,
# and the system tablespace does not grow with the table).
insert_statements() {
    local table=$1 from=$2 to=$3 chunk=100000 end
    while ((from <= to)); do
        end=$((from + chunk - 1 < to ? from + chunk - 1 : to))
        cat <<EOF
INSERT INTO $table
SELECT seq, 1 + (seq * 7919) % 200000,
       TIMESTAMP'2020-01-01 00:00:00' + INTERVAL (seq * 37 + FLOOR(RAND(seq) * 30)) SECOND,
       ELT(1 + FLOOR(RAND(seq + 1) * 5), 'new', 'paid', 'shipped', 'delivered', 'returned'),
       ROUND(RAND(seq + 2) * 500, 2),
       MD5(seq),
       CONCAT('order ', seq, ' ', ELT(1 + seq % 6, 'express delivery', 'gift wrap requested', 'leave at the door',
              'call before delivery', 'standard shipping', 'pick up in store'),
              ', item ', SUBSTRING(SHA1(seq), 1, 12), ' qty ', 1 + seq % 9)
FROM seq_${from}_to_${end};
EOF
        from=$((end + 1))
    done
}

# All of the load's changes on disk and a fresh redo checkpoint, so that each
# backup copies the tables and next to no redo log (the analogue of
# PostgreSQL's CHECKPOINT before each backup).  The server is idle during the
# backups; these settings only make the page cleaner flush at once.
flush_dirty_pages() {
    local state deadline=$((SECONDS + 600))
    sql "SET GLOBAL innodb_io_capacity_max = 40000; SET GLOBAL innodb_io_capacity = 20000; SET GLOBAL innodb_max_dirty_pages_pct = 0"
    while :; do
        state=$(sql "SELECT GROUP_CONCAT(VARIABLE_VALUE ORDER BY VARIABLE_NAME SEPARATOR ' ') FROM information_schema.GLOBAL_STATUS
                     WHERE VARIABLE_NAME IN ('INNODB_BUFFER_POOL_PAGES_DIRTY', 'INNODB_CHECKPOINT_AGE')")
        # "dirty pages" "checkpoint age"
        [[ $state =~ ^0\ ([0-9]+)$ ]] && ((BASH_REMATCH[1] < 1000000)) && return 0
        ((SECONDS < deadline)) || die "InnoDB did not flush its dirty pages in 600 s (dirty pages, checkpoint age: $state)"
        sleep 0.5
    done
}

count_rows() {
    local query="SELECT SUM(n) FROM (" t
    for ((t = 1; t <= TABLES; t++)); do
        ((t > 1)) && query+=" UNION ALL "
        query+="SELECT COUNT(*) AS n FROM $DB.orders_$t"
    done
    sql_at "$1" "$query) AS counts"
}

table_checksum() { sql_at "$1" "CHECKSUM TABLE $TABLE_LIST" | tr '\t\n' '= ' | sed 's/ $//'; }

# Our repository (owned by mysql, as log_backup requires for the binary log
# shipping) and the cluster's configuration file, as log_backup writes it.
setup_ours() {
    REPO=$WORK/repo
    "$PYTHON" - "$WORK/collections" "$REPO" <<'EOF'
import sys
sys.path.insert(0, sys.argv[1])
from ansible_collections.dataprotection.databases.plugins.module_utils.repoadmin import ensure_present
ensure_present({"type": "local", "path": sys.argv[2]}, owner="mysql")
EOF
    CONFIG=$WORK/etc/$CLUSTER.json
    cat >"$CONFIG" <<EOF
{
  "repo": {"type": "local", "path": "$REPO"},
  "cluster": "$CLUSTER",
  "engine": "mysql",
  "connection": {"socket": "$SOCK/server.sock", "user": "root", "password": "$PASSWORD"},
  "compression": "zstd",
  "compression_level": 3
}
EOF
    chmod 0600 "$CONFIG"
}

# One round: the backups, then the restores of what ours and the plain raw
# pipe wrote.  The order of the tools rotates from round to round, so that
# none is always first or last (page cache, memory and background writeback
# state).
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
        "$PYTHON" "$DRIVER" "$RESULTS/ours-backup.$ROUND.rss" cli --config "$CONFIG" backup >"$RESULTS/ours-backup.$ROUND.json"
    OUR_BACKUP_ID=$(json_field backup_id <"$RESULTS/ours-backup.$ROUND.json")
    record data.bytes "$(json_field size <"$RESULTS/ours-backup.$ROUND.json")"
    record ours-backup.stored "$(json_field stored_size <"$RESULTS/ours-backup.$ROUND.json")"
    record ours-backup.self_rss "$(<"$RESULTS/ours-backup.$ROUND.rss")"
}

backup_ours_p2() {
    measure ours-p2-backup root env PYTHONPATH="$WORK/collections" \
        "$PYTHON" "$DRIVER" "$RESULTS/ours-p2-backup.$ROUND.rss" backup "$CONFIG" "$PARALLEL" >"$RESULTS/ours-p2-backup.$ROUND.json"
    record ours-p2-backup.stored "$(json_field stored_size <"$RESULTS/ours-p2-backup.$ROUND.json")"
    record ours-p2-backup.self_rss "$(<"$RESULTS/ours-p2-backup.$ROUND.rss")"
}

# The raw pipe runs mariabackup with the same command line as ours
# (--no-defaults, the socket, MYSQL_PWD).  Each round writes a new file, as
# ours writes a new backup: no step deletes a file just before it writes
# (on a virtual machine, writing into memory just freed costs less system
# time than writing into memory not used recently).
raw_backup() {
    local step=$1 file=$2
    shift 2
    rm -rf "$WORK/raw/tmp"
    measure "$step" root env MYSQL_PWD="$PASSWORD" bash -c "set -o pipefail; mariabackup --no-defaults --backup --stream=mbstream --target-dir=\"\$1\" --socket=\"\$2\" --user=root \"\${@:5}\" 2>\"\$3\" | zstd -q -T0 -3 >\"\$4\"" \
        _ "$WORK/raw/tmp" "$SOCK/server.sock" "$WORK/logs/$step.$ROUND.log" "$file" "$@"
    grep -q "completed OK!" "$WORK/logs/$step.$ROUND.log" || die "$step: mariabackup did not report completed OK"
    record "$step.stored" "$(stat -c %s "$file")"
}

backup_raw() { raw_backup raw-backup "$WORK/raw/backup.$ROUND.mbstream.zst"; }

backup_raw_p2() { raw_backup raw-p2-backup "$WORK/raw/backup-p2.$ROUND.mbstream.zst" "--parallel=$PARALLEL"; }

restore_ours() {
    measure ours-restore root env PYTHONPATH="$WORK/collections" \
        "$PYTHON" "$DRIVER" "$RESULTS/ours-restore.$ROUND.rss" cli --config "$CONFIG" restore \
        --backup-id "$OUR_BACKUP_ID" --data-dir "$1/ours" --owner mysql --force >"$RESULTS/ours-restore.$ROUND.json"
    record ours-restore.self_rss "$(<"$RESULTS/ours-restore.$ROUND.rss")"
}

# As the mysql user, the three steps of a restore by hand, each step's end
# time noted; the staging directory is removed at the end, as ours does.
restore_raw() {
    local stage=$1/raw.stage prefix=$RESULTS/raw-restore.$ROUND stamps
    # shellcheck disable=SC2016 # the inner bash expands them
    measure raw-restore mysql bash -c '
        set -euo pipefail
        t0=$EPOCHREALTIME
        mkdir "$2"
        zstd -q -d -c "$1" | mbstream -x -C "$2"
        t1=$EPOCHREALTIME
        mariabackup --no-defaults --prepare --target-dir="$2" 2>"$4.prepare.log"
        t2=$EPOCHREALTIME
        mariabackup --no-defaults --move-back --target-dir="$2" --datadir="$3" 2>"$4.move-back.log"
        t3=$EPOCHREALTIME
        rm -rf "$2"
        echo "$t0 $t1 $t2 $t3" >"$4.steps"' \
        _ "$WORK/raw/backup.$ROUND.mbstream.zst" "$stage" "$1/raw" "$prefix"
    grep -q "completed OK!" "$prefix.prepare.log" || die "raw restore: mariabackup --prepare did not report completed OK"
    read -ra stamps <"$prefix.steps"
    record raw-restore.extract.seconds "$(seconds_between "${stamps[0]}" "${stamps[1]}")"
    record raw-restore.prepare.seconds "$(seconds_between "${stamps[1]}" "${stamps[2]}")"
    record raw-restore.move.seconds "$(seconds_between "${stamps[2]}" "${stamps[3]}")"
}

# One untimed backup first, so that the first timed one is not the first to
# read the files the load left behind.
warm_up() {
    log "untimed warm-up backup"
    env MYSQL_PWD="$PASSWORD" mariabackup --no-defaults --backup --stream=mbstream --target-dir="$WORK/raw/tmp" \
        --socket="$SOCK/server.sock" --user=root 2>"$WORK/logs/warm-up.log" >/dev/null ||
        die "the warm-up backup failed: $(tail -n 5 "$WORK/logs/warm-up.log")"
    rm -rf "$WORK/raw/tmp"
}

run_backups() {
    local method
    for method in $(in_round_order "${BACKUP_METHODS[@]}"); do
        flush_dirty_pages   # each backup starts from a clean buffer pool (nothing changes between them)
        "backup_$method"
    done
}

run_restores() {
    local method into=$WORK/restore/$ROUND
    as_mysql install -d -m 0700 "$into"
    for method in $(in_round_order "${RESTORE_METHODS[@]}"); do
        "restore_$method" "$into"
    done
}

# Each restored copy must start and hold the source's rows, table for table
# (CHECKSUM TABLE).
check_restores() {
    local name dir rows checksum
    for name in "${RESTORE_METHODS[@]}"; do
        dir=$WORK/restore/$ROUND/$name
        [[ -f $dir/ibdata1 ]] || die "$name restore: no ibdata1 in $dir"
        log "starting the $name copy to compare its tables"
        server_start "verify-$name" "$dir" "$SOCK/verify.sock" --skip-log-bin --innodb-buffer-pool-size=1G
        rows=$(count_rows "$SOCK/verify.sock")
        checksum=$(table_checksum "$SOCK/verify.sock")
        server_stop "verify-$name"
        [[ $rows == "$SOURCE_ROWS" ]] || die "$name restore: $rows rows, expected $SOURCE_ROWS"
        [[ $checksum == "$SOURCE_CHECKSUM" ]] || die "$name restore: CHECKSUM TABLE differs from the source: $checksum, expected $SOURCE_CHECKSUM"
        record "$name-restore.check" "round $ROUND: starts, $rows rows, CHECKSUM TABLE of the $TABLES tables as the source's"
    done
}

# ---------------------------------------------------------------------------

main() {
    local began=$EPOCHREALTIME
    check_prerequisites
    if ((PARALLEL > 1)); then BACKUP_METHODS=(ours ours_p2 raw raw_p2); fi
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
    "$PYTHON" "$BENCH_DIR/lib/report.py" "$RESULTS"
    echo
    echo "machine: $(nproc) cores ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')), $(free -g | awk '/^Mem:/ {print $2}') GiB RAM; whole run $(awk -v s="$(seconds_between "$began" "$EPOCHREALTIME")" 'BEGIN { printf "%d min %d s", s / 60, s % 60 }')"
}

main "$@"
