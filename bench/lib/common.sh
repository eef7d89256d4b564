# shellcheck shell=bash
# Helpers shared by the benchmark scripts (bench/*.sh), sourced after each has set
# WORK, RESULTS, ROUND, ROUNDS, DROP_CACHES, CHECKOUT, PYTHON and SERVICE_USER
# (the OS user its servers run as).

log() { printf '[%(%H:%M:%S)T] %s\n' -1 "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

# Run a command as the service user, from the work directory (root's current
# directory may be unreadable to it).
as_service() { (cd "$WORK" && runuser -u "$SERVICE_USER" -- "$@"); }

# record KEY VALUE: one figure for the report.
record() { printf '%s\t%s\n' "$1" "$2" >>"$RESULTS/figures.tsv"; }

seconds_between() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.3f", b - a }'; }

alive() { [[ -e /proc/$1 ]] && [[ $(awk '{ print $3 }' "/proc/$1/stat" 2>/dev/null) != Z ]]; }

json_field() { "$PYTHON" -c 'import json, sys; print(json.load(sys.stdin)[sys.argv[1]])' "$1"; }

# measure STEP USER CMD...
# Runs CMD as USER (root or the service user) under GNU time -v, whose report
# (peak RSS, CPU time) goes to RESULTS/STEP.ROUND.time; records the wall
# seconds and the load average just before.  The previous step's dirty pages
# are written back first so that they are not charged to this one.
measure() {
    local step=$1 user=$2 start end
    shift 2
    sync
    if [[ $DROP_CACHES == 1 ]]; then echo 3 >/proc/sys/vm/drop_caches; fi
    record "$step.load" "$(cut -d' ' -f1 /proc/loadavg)"
    log "timing $step (round $ROUND of $ROUNDS)"
    start=$EPOCHREALTIME
    if [[ $user == root ]]; then
        /usr/bin/time -v -o "$RESULTS/$step.$ROUND.time" "$@"
    else
        as_service /usr/bin/time -v -o "$RESULTS/$step.$ROUND.time" "$@"
    fi
    end=$EPOCHREALTIME
    record "$step.seconds" "$(seconds_between "$start" "$end")"
}

# The code measured: the commit, and whether plugins/ differs from it.
code_version() {
    local commit
    commit=$(GIT_OPTIONAL_LOCKS=0 git -C "$CHECKOUT" rev-parse --short HEAD 2>/dev/null) || { echo "unknown (not a git checkout)"; return; }
    if GIT_OPTIONAL_LOCKS=0 git -C "$CHECKOUT" diff-index --quiet HEAD -- plugins 2>/dev/null; then
        echo "$commit"
    else
        echo "$commit with uncommitted changes under plugins/"
    fi
}

# Stop every server named in WORK/pids (server_stop NAME is the script's),
# then remove the work directory unless KEEP=1.  Installed as the EXIT trap.
cleanup_servers() {
    local status=$?
    set +e
    if [[ -n ${WORK:-} && -d $WORK ]]; then
        local file
        for file in "$WORK"/pids/*; do
            [[ -f $file ]] && server_stop "$(basename "$file")"
        done
        if [[ $KEEP == 1 ]]; then
            log "work directory kept: $WORK"
        else
            rm -rf "$WORK"
        fi
    fi
    exit "$status"
}
