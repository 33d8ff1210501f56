#!/usr/bin/env bash
# Metadata benchmark: Collective's coordinators against etcd, the anchor for Raft-replicated
# metadata, in one run on this machine.
#
# What runs, one system at a time (the others stopped, so each has the whole machine):
#   - collective, a 1-coordinator group and a fresh 3-coordinator group, loaded by
#     `collective bench meta --workload mkdir|read`;
#   - etcd (Debian's etcd-server), a 1-member and a 3-member cluster on loopback, loaded by
#     bench/etcd-load (same flags, same operations, same JSON) with `--workload put|get`.
# Same durability on both sides: every acknowledged write is fsynced. etcd fsyncs its WAL before it
# acknowledges a put by default; we never pass --unsafe-no-fsync. Collective's coordinators fsync
# each Raft entry on a quorum before answering. Reads are linearizable on both sides (etcd's
# default get; our `read` workload asks for a linearizable stat). Every member and every client
# shares the two cores and the one disk.
# Concurrency: 1 and 16 clients, each with its own connection, all talking to the leader (ours
# after its first redirect, etcd-load by asking each endpoint who leads).
# Each measurement runs BENCH_REPEATS times (default 3); the table shows the median ops/s and the
# median p99 (machines are noisy; medians help).
#
# The last lines are `ratio NAME VALUE`, one per comparison, ours divided by etcd's so HIGHER IS
# BETTER for every line: for throughput (commits_*, reads_*) it is our ops/s over etcd's; for
# latency (p99_*) it is etcd's p99 over ours. Names: commits_{1,3}coord_c{1,16},
# p99_{1,3}coord_c{1,16} (commit latency), reads_{1,3}coord_c{1,16}, p99_reads_{1,3}coord_c{1,16}.
# The goal: commits_3coord_c16 >= 1 and p99_3coord_c16 >= 1.
#
# Run as root (it installs etcd-server, etcd-client, jq and protobuf-compiler when missing):
#   bench/meta.sh
# Environment (all optional):
#   BENCH_OPS_C1=5000 BENCH_OPS_C16=20000  total commits per measurement at 1 and 16 clients
#   BENCH_READ_OPS_C1, BENCH_READ_OPS_C16   total reads likewise (default twice the commits: etcd
#                                          reads about twice as fast as it commits). Sized for
#                                          about 3-10 s per measurement of etcd on this machine.
#   BENCH_REPEATS=3                        runs per measurement (median taken)
#   BENCH_SYSTEMS="collective etcd"        which systems to run (ratios need both)
#   BENCH_TIMEOUT_SECS=300                 limit on one measurement
#   BENCH_COLLECTIVE=/path/to/collective   use this binary instead of building one
# Raw results (one JSON object per run) go to a temporary directory removed at exit; a copy is
# left in /tmp and its path printed. Nothing is written to the checkout except build output.
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$(pwd)

ops_c1=${BENCH_OPS_C1:-5000}
ops_c16=${BENCH_OPS_C16:-20000}
read_ops_c1=${BENCH_READ_OPS_C1:-$((2 * ops_c1))}
read_ops_c16=${BENCH_READ_OPS_C16:-$((2 * ops_c16))}
repeats=${BENCH_REPEATS:-3}
systems=${BENCH_SYSTEMS:-collective etcd}
timeout_secs=${BENCH_TIMEOUT_SECS:-300}
# How long a group or cluster may take to elect a leader or accept a member, in seconds.
ready_timeout_secs=60
client_counts=(1 16)

log() { echo "meta: $*" >&2; }
wants() { [[ " $systems " == *" $1 "* ]]; }

# --- process and temp-dir bookkeeping: everything started is killed by PID at exit -------------
tmp=$(mktemp -d)
pids=()
policy_created=""
cleanup() {
    stop_from 0
    [[ -n "$policy_created" ]] && rm -f /usr/sbin/policy-rc.d
    rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# shellcheck source=bench/lib-common.sh
source bench/lib-common.sh

# --- installs -----------------------------------------------------------------------------------
missing=()
command -v jq >/dev/null || missing+=(jq)
command -v protoc >/dev/null || missing+=(protobuf-compiler) # etcd-client's build compiles .proto
if wants etcd; then
    command -v etcd >/dev/null || missing+=(etcd-server)
    command -v etcdctl >/dev/null || missing+=(etcd-client)
fi
if ((${#missing[@]})); then install_quietly "${missing[@]}"; fi

# --- builds -------------------------------------------------------------------------------------
build_collective
if wants etcd; then
    log "building etcd-load (release)"
    cargo build -j2 --release --manifest-path bench/etcd-load/Cargo.toml
fi
etcd_load=$target/release/etcd-load

results=$tmp/results.jsonl
: >"$results"
had_errors=""

# Runs one measurement: measure SYSTEM MEMBERS WORKLOAD CLIENTS OPS REPEAT -- COMMAND...
measure() {
    local system=$1 members=$2 workload=$3 clients=$4 ops=$5 repeat=$6
    shift 7
    local out status=0
    out=$(timeout "$timeout_secs" "$@" --clients "$clients" --ops "$ops" --workload "$workload" --json \
        2>"$tmp/last-bench.err") || status=$?
    local json
    json=$(grep -m1 '^{' <<<"$out" || true)
    if [[ -z "$json" ]]; then
        log "$system/$members $workload c$clients failed (exit $status):"
        tail -n 20 "$tmp/last-bench.err" >&2
        had_errors=yes
        return 0
    fi
    if ((status != 0)) || [[ $(jq '.errors' <<<"$json") != 0 ]]; then
        log "$system/$members $workload c$clients had failed operations (exit $status)"
        tail -n 5 "$tmp/last-bench.err" >&2
        had_errors=yes
    fi
    jq -c --arg system "$system" --argjson members "$members" --argjson repeat "$repeat" \
        '. + {system: $system, members: $members, repeat: $repeat}' <<<"$json" >>"$results"
    log "$(jq -r '"\(.system) \(.members) \(.workload) c\(.clients): \(.ops_per_sec | floor) ops/s, p99 \(.p99_ms * 1000 | round / 1000) ms"' \
        <<<"$(tail -n1 "$results")")"
}

# ops_for WORKLOAD CLIENTS: the operation count of one measurement.
ops_for() {
    case "$1/$2" in
        mkdir/1 | put/1) echo "$ops_c1" ;;
        mkdir/* | put/*) echo "$ops_c16" ;;
        */1) echo "$read_ops_c1" ;;
        *) echo "$read_ops_c16" ;;
    esac
}

# Loads one running system: every workload at every client count, BENCH_REPEATS rounds
# (repeats outermost so a slow moment of the machine spreads over all measurements).
load() {
    local system=$1 members=$2
    shift 2
    local workloads
    if [[ $system == collective ]]; then workloads=(mkdir read); else workloads=(put get); fi
    local repeat workload clients
    for ((repeat = 1; repeat <= repeats; repeat++)); do
        for workload in "${workloads[@]}"; do
            for clients in "${client_counts[@]}"; do
                measure "$system" "$members" "$workload" "$clients" "$(ops_for "$workload" "$clients")" "$repeat" -- "$@"
            done
        done
    done
}

# --- collective ---------------------------------------------------------------------------------
# Starts a fresh group of N coordinators under $tmp/collective-N and loads it.
run_collective() {
    local n=$1 dir=$tmp/collective-$1 first=${#pids[@]}
    mkdir -p "$dir"
    export COLLECTIVE_HOME=$dir/home
    local port id
    port=$(free_port)
    "$collective" coordinator init --data-dir "$dir/d1" --member alice --federation home.collective \
        --listen "127.0.0.1:$port" --id 1 >"$dir/init.log" 2>&1
    "$collective" coordinator run --data-dir "$dir/d1" >"$dir/c1.log" 2>&1 &
    pids+=($!)
    wait_collective_leader "$dir"
    for ((id = 2; id <= n; id++)); do
        port=$(free_port)
        "$collective" coordinator prepare --data-dir "$dir/d$id" --id "$id" --listen "127.0.0.1:$port" \
            >"$dir/prepare$id.log" 2>&1
        "$collective" coordinator run --data-dir "$dir/d$id" >"$dir/c$id.log" 2>&1 &
        pids+=($!)
        wait_listening "$port"
        "$collective" coordinator add --id "$id" --endpoint "127.0.0.1:$port" >"$dir/add$id.log" 2>&1
    done
    wait_collective_voters "$dir" "$n"
    log "collective: $n coordinator(s) up"
    load collective "$n" "$collective" bench meta
    stop_from "$first"
    unset COLLECTIVE_HOME
}

collective_status() { timeout 10 "$collective" status --json 2>>"$1/status.err" || true; }

wait_collective_leader() {
    local dir=$1 deadline=$((SECONDS + ready_timeout_secs))
    until [[ $(collective_status "$dir" | jq -r '.leader // empty' 2>/dev/null) != "" ]]; do
        ((SECONDS < deadline)) || { log "collective: no leader after ${ready_timeout_secs}s"; tail "$dir"/*.log "$dir/status.err" >&2; return 1; }
        sleep 0.5
    done
}

wait_collective_voters() {
    local dir=$1 n=$2 deadline=$((SECONDS + ready_timeout_secs))
    until [[ $(collective_status "$dir" | jq '[.coordinators[]? | select(.voter and .reachable)] | length' 2>/dev/null) == "$n" ]] \
        && [[ $(collective_status "$dir" | jq -r '.leader // empty' 2>/dev/null) != "" ]]; do
        ((SECONDS < deadline)) || { log "collective: not $n reachable voters after ${ready_timeout_secs}s"; collective_status "$dir" >&2; return 1; }
        sleep 0.5
    done
}

# --- etcd ---------------------------------------------------------------------------------------
# Starts a fresh N-member etcd cluster under $tmp/etcd-N and loads it. Default durability: etcd
# fsyncs its WAL before acknowledging a write (no --unsafe-no-fsync here).
run_etcd() {
    local n=$1 dir=$tmp/etcd-$1 first=${#pids[@]}
    mkdir -p "$dir"
    local i client_ports=() peer_ports=() cluster="" endpoints=""
    for ((i = 1; i <= n; i++)); do
        client_ports+=("$(free_port)")
        peer_ports+=("$(free_port)")
        cluster+="${cluster:+,}m$i=http://127.0.0.1:${peer_ports[i - 1]}"
        endpoints+="${endpoints:+,}127.0.0.1:${client_ports[i - 1]}"
    done
    for ((i = 1; i <= n; i++)); do
        etcd --name "m$i" --data-dir "$dir/m$i" \
            --listen-client-urls "http://127.0.0.1:${client_ports[i - 1]}" \
            --advertise-client-urls "http://127.0.0.1:${client_ports[i - 1]}" \
            --listen-peer-urls "http://127.0.0.1:${peer_ports[i - 1]}" \
            --initial-advertise-peer-urls "http://127.0.0.1:${peer_ports[i - 1]}" \
            --initial-cluster "$cluster" --initial-cluster-token "bench-$n" --initial-cluster-state new \
            --logger zap --log-level warn >"$dir/m$i.log" 2>&1 &
        pids+=($!)
    done
    local deadline=$((SECONDS + ready_timeout_secs))
    # `endpoint health` does a linearizable get on each member: it passes once a leader commits.
    until etcdctl --endpoints "$endpoints" --command-timeout 2s endpoint health >/dev/null 2>&1; do
        ((SECONDS < deadline)) || { log "etcd: $n member(s) not healthy"; tail "$dir"/*.log >&2; return 1; }
        sleep 0.5
    done
    log "etcd $(etcd --version | head -n1 | awk '{print $3}'): $n member(s) up at $endpoints"
    load etcd "$n" "$etcd_load" --endpoints "$endpoints" --target leader
    stop_from "$first"
}

# --- the run ------------------------------------------------------------------------------------
log "load average before the run: $(cut -d' ' -f1-3 /proc/loadavg) (a busy machine skews both sides)"
started=$SECONDS
for n in 1 3; do
    # `if`, not `&&`: bash ignores `set -e` inside a function called on the left of `&&`.
    if wants collective; then run_collective "$n"; fi
    if wants etcd; then run_etcd "$n"; fi
done

# --- report -------------------------------------------------------------------------------------
copy=/tmp/collective-bench-meta-$(date +%Y%m%d-%H%M%S).jsonl
cp "$results" "$copy"

# Medians per (system, members, workload, clients), with the workload named by kind.
summary=$(jq -s '
    def median: sort | if length == 0 then null
        elif length % 2 == 1 then .[length / 2 | floor]
        else (.[length / 2 - 1] + .[length / 2]) / 2 end;
    map(. + {kind: (if .workload == "mkdir" or .workload == "put" then "commits" else "reads" end)})
    | group_by([.system, .members, .kind, .clients])
    | map({system: .[0].system, members: .[0].members, kind: .[0].kind, workload: .[0].workload,
           clients: .[0].clients, runs: length,
           ops_per_sec: (map(.ops_per_sec) | median), p99_ms: (map(.p99_ms) | median),
           p50_ms: (map(.p50_ms) | median)})' "$results")

echo
echo "metadata benchmark: medians of $repeats run(s); commits $ops_c1 at 1 client, $ops_c16 at 16;" \
    "reads $read_ops_c1 and $read_ops_c16;" \
    "$((SECONDS - started)) s; load average now $(cut -d' ' -f1-3 /proc/loadavg)"
{
    echo "system members workload clients runs ops/s p50_ms p99_ms"
    jq -r 'sort_by(.kind, .members, .clients, .system)[]
        | [.system, .members, .workload, .clients, .runs, (.ops_per_sec | floor),
           (.p50_ms * 1000 | round / 1000), (.p99_ms * 1000 | round / 1000)] | @tsv' <<<"$summary"
} | column -t
echo "raw results: $copy"
[[ -n "$had_errors" ]] && log "some measurements had failed operations or failed outright (see above)"

if wants collective && wants etcd; then
    jq -r '
        def pick($s; $m; $k; $c): map(select(.system == $s and .members == $m and .kind == $k and .clients == $c))[0];
        def fmt: if . == null then "nan" else (. * 1000 | round / 1000 | tostring) end;
        . as $all
        | ["commits", "reads"][] as $k | [1, 3][] as $m | [1, 16][] as $c
        | ($all | pick("collective"; $m; $k; $c)) as $ours | ($all | pick("etcd"; $m; $k; $c)) as $peer
        | (if $k == "commits" then "" else "reads_" end) as $p99prefix
        | "ratio \($k)_\($m)coord_c\($c) \(if $ours and $peer and $peer.ops_per_sec > 0 then $ours.ops_per_sec / $peer.ops_per_sec else null end | fmt)",
          "ratio p99_\($p99prefix)\($m)coord_c\($c) \(if $ours and $peer and $ours.p99_ms > 0 then $peer.p99_ms / $ours.p99_ms else null end | fmt)"
        ' <<<"$summary"
else
    log "ratios need both systems (BENCH_SYSTEMS=\"$systems\")"
fi
[[ -z "$had_errors" ]]
