#!/usr/bin/env bash
# time-each.sh OUT CMD [ARG...]
#
# Reads one file name per line on stdin and runs "CMD ARG... FILE" for each,
# one after the other, the way PostgreSQL runs archive_command.  The wall time
# of each run, in milliseconds, is appended to OUT (one number a line).  Stops
# at the first failure.
#
# Timing uses bash's EPOCHREALTIME, so no process is started inside the
# measured interval except the command itself.
set -euo pipefail
export LC_ALL=C   # EPOCHREALTIME must use '.' as its decimal separator

out=$1
shift

while IFS= read -r file; do
    [[ -n $file ]] || continue
    start=$EPOCHREALTIME
    "$@" "$file" >/dev/null
    end=$EPOCHREALTIME
    awk -v a="$start" -v b="$end" 'BEGIN { printf "%.2f\n", (b - a) * 1000 }' >>"$out"
done
