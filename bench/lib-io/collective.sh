# shellcheck shell=bash
# Its settings (collective, ready_timeout_secs, bench_*) are set by bench/io.sh before use.
# shellcheck disable=SC2154
# Collective half of bench/io.sh (sourced; uses its log, pids, tmp, free_port, wait_listening,
# collective and bench_* settings).
#
# One coordinator and two storage nodes, each a separate process with its own data directory,
# all on 127.0.0.1 and every connection over mutual TLS; files are written with the default
# replica count of 2, so every chunk has one replica on each node. The client is the
# `collective` CLI: `write PATH FILE` and `read PATH -`, one process per stream.

coll_daemon_pids=()
coll_dir=""

# True when this binary has the data path (`write` and `read`); until then the Collective half
# is skipped and its ratios print nan.
coll_available() {
    "$collective" write --help >/dev/null 2>&1 && "$collective" read --help >/dev/null 2>&1
}

coll_status() { timeout 10 "$collective" status --json 2>>"$coll_dir/status.err" || true; }

coll_up() {
    coll_dir=$1
    mkdir -p "$coll_dir"
    export COLLECTIVE_HOME=$coll_dir/home
    local port deadline
    port=$(free_port)
    "$collective" coordinator init --data-dir "$coll_dir/coord" --member alice --federation home.collective \
        --listen "127.0.0.1:$port" --id 1 >"$coll_dir/init.log" 2>&1
    coll_daemon_pids=()
    "$collective" coordinator run --data-dir "$coll_dir/coord" >"$coll_dir/coord.log" 2>&1 &
    pids+=($!)
    coll_daemon_pids+=($!)
    deadline=$((SECONDS + ready_timeout_secs))
    until [[ $(coll_status | jq -r '.leader // empty' 2>/dev/null) != "" ]]; do
        ((SECONDS < deadline)) || { log "collective: no leader"; tail "$coll_dir"/*.log >&2; return 1; }
        sleep 0.5
    done
    local i node_port
    for i in 1 2; do
        node_port=$(free_port)
        "$collective" node prepare --data-dir "$coll_dir/node$i" --name "node-0$i" \
            --listen "127.0.0.1:$node_port" >"$coll_dir/prepare$i.log" 2>&1
        "$collective" node run --data-dir "$coll_dir/node$i" >"$coll_dir/node$i.log" 2>&1 &
        pids+=($!)
        coll_daemon_pids+=($!)
        wait_listening "$node_port"
    done
    until [[ $(coll_status | jq '[.nodes[]? | select(.status == "UP")] | length' 2>/dev/null) == 2 ]]; do
        ((SECONDS < deadline)) || { log "collective: not 2 nodes UP"; coll_status >&2; tail "$coll_dir"/*.log >&2; return 1; }
        sleep 0.5
    done
    "$collective" mkdir -p /bench >/dev/null
    log "collective $("$collective" --version | awk '{print $2}'): 1 coordinator and 2 nodes up under $coll_dir"
}

coll_down() {
    unset COLLECTIVE_HOME
}

coll_daemon_cpu_pids() { echo "${coll_daemon_pids[@]}"; }

# Runs one client command with its stderr (a progress bar on a terminal, errors) kept in
# client.err, shown when it fails.
coll_client() {
    t "$collective" "$@" 2>>"$coll_dir/client.err" && return 0
    local status=$?
    log "collective $1 $2 failed (exit $status); last lines of $coll_dir/client.err:"
    tail -n 5 "$coll_dir/client.err" >&2
    return "$status"
}

# The client operations, each run inside `measure` (which times them and counts their CPU).
coll_write() { # SRC NAME
    coll_client write "/bench/$2" "$1"
}
coll_read() { # NAME
    coll_client read "/bench/$1" - >/dev/null
}
# Small-file creates, per-process mode: one `collective write` process per file; process
# start-up, the TLS handshakes and finding the leader dominate, so this understates the data
# path. The one-process mode uses `collective bench io` instead (coll_small_files_per_sec).
coll_small_creates() { # DIR_OF_SMALL_FILES DEST_SUBDIR
    local src=$1 dest=/bench/$2 f
    "$collective" mkdir -p "$dest" >/dev/null
    for f in "$src"/*; do
        coll_client write "$dest/${f##*/}" "$f" || return
    done
}
coll_has_bench_io() { "$collective" bench io --help >/dev/null 2>&1; }
# Prints small_files_per_sec of the built-in benchmark run with one worker (as `cp` on the
# MooseFS side) and a token large-file phase (4 MiB: the large files are measured above), or
# nothing when it fails.
coll_small_files_per_sec() {
    t "$collective" bench io --json --streams 1 --bytes 4194304 --small-files "$small_files" \
        --small-bytes "$small_size" 2>>"$coll_dir/bench-io.err" >"$coll_dir/bench-io.json" || {
        log "collective bench io failed; last lines of $coll_dir/bench-io.err:"
        tail -n 5 "$coll_dir/bench-io.err" >&2
        return 0
    }
    grep -m1 '^{' "$coll_dir/bench-io.json" | jq -r '.small_files_per_sec // empty'
}
coll_rm() {
    local name
    for name in "$@"; do coll_client rm -r "/bench/$name" >/dev/null; done
}
coll_verify() { # SRC NAME
    coll_client read "/bench/$2" - | cmp -s "$1" -
}
# Logs how the chunks of one file are placed (two replicas on two nodes expected), when the
# binary has `debug chunks`.
coll_show_placement() { # NAME
    "$collective" debug chunks --file "/bench/$1" >"$coll_dir/placement.txt" 2>&1 || return 0
    log "collective: placement of /bench/$1 (first lines of $coll_dir/placement.txt):"
    head -n 6 "$coll_dir/placement.txt" >&2
}
