#!/usr/bin/env bash
# Data-path benchmark: Collective against MooseFS, and both against the machine's ceilings, in
# one run on this machine.
#
# What runs, one system at a time (the other stopped, so each has the whole machine):
#   - ceilings: raw disk write (dd bs=4M conv=fdatasync of 1 GiB to a file on the benchmark's
#     file system: buffered writes then one fdatasync), raw disk read (dd bs=4M of that file
#     after dropping the page cache; buffered with kernel read-ahead), the same two with direct
#     I/O (oflag=direct, iflag=direct: how a node moves chunk files), loopback TCP (iperf3, one
#     stream on 127.0.0.1 for 5 s, with its CPU), and `collective bench cpu` (blake3 and
#     AES-128-GCM per GiB on one core);
#   - MooseFS (Debian's moosefs 3.0: mfsmaster, two mfschunkservers, goal 2, mounted with
#     mfsmount; see bench/lib-io/moosefs.sh for its network namespace and durability), driven
#     with dd bs=4M;
#   - Collective (one coordinator and two storage nodes as separate processes, replica count 2,
#     mutual TLS everywhere; see bench/lib-io/collective.sh), driven with `collective write`
#     and `collective read`.
# Tests, each BENCH_REPEATS times (default 3, medians reported), every write of fresh random data
# (so nothing is deduplicated against an earlier run) that is already in the page cache:
#   write_seq       one stream writes BENCH_SIZE_MIB (default 1024) MiB
#   read_seq_cold   drop the page cache (and remount MooseFS, emptying mfsmount's read-ahead
#                   buffers), then one stream reads that file back to /dev/null
#   write_par4      BENCH_STREAMS (default 4) processes at once, each its own file of
#                   BENCH_SIZE_MIB/BENCH_STREAMS MiB; wall time around the whole group
#   read_par4_cold  the same files read back at once, caches dropped first
#   small_creates   BENCH_SMALL_FILES (default 1000) files of 4 KiB of fresh random bytes, created
#                   one after another (one worker), each fsynced by the system before the next
#                   (mfsmount fsyncs on close by default; Collective commits each file). Two
#                   modes, the same on both sides (BENCH_SMALL_MODE):
#                   one-process (default when the binary has `bench io`): one `cp` of all files
#                   into the mount; `collective bench io --streams 1` (its small_files_per_sec)
#                   per-process: one process per file (dd into the mount; `collective write`);
#                   process start-up, and for Collective the TLS handshakes, weigh heavily
# The first repeat's files are read back once more, untimed, and compared byte for byte.
# CPU seconds per GiB: utime+stime of every process of the system (MooseFS: mfsmaster and its
# children, both chunkservers, mfsmount; Collective: coordinator and both nodes), taken from
# /proc/PID/stat before and after each test, plus every client process (dd or collective),
# divided by the GiB of file data moved (1 GiB per test, whatever the replica count).
# Stolen CPU: the CPU seconds per second the hypervisor gave to other guests while a test ran
# (/proc/stat's steal, over all CPUs; median in the table, per repeat in the log). Well above
# zero, the host was busy and that test's figures, of either system, say little.
#
# The last lines are `ratio NAME VALUE`, ours divided by the peer's, so HIGHER IS BETTER:
#   ratio {write_seq,read_seq_cold,write_par4,read_par4_cold}      MiB/s over MooseFS's
#   ratio small_creates                                            files/s over MooseFS's
#   ratio cpu_{write_seq,read_seq_cold,write_par4,read_par4_cold}  MooseFS's CPU s/GiB over ours
#   ratio {write_seq,read_seq_cold,write_par4,read_par4_cold}_vs_ceiling
#         MiB/s over the lower of the disk ceiling (write or read) and loopback TCP
# The goals (issue 3): write_seq, read_seq_cold and small_creates >= 2; read_seq_cold_vs_ceiling
# >= 0.5.
# Before the ratios, the floor (see the report below): `floor TEST ...` the least CPU per GiB
# the work the test needs costs here and the throughput that allows on all cores;
# `floor_ratio TEST_goal_vs_floor` twice MooseFS's throughput over that bound (above 1: the goal
# cannot be reached on this machine with that work), `floor_ratio TEST_vs_floor` ours over it.
#
# Run as root (network namespaces, a FUSE mount, dropping the page cache; it installs
# moosefs-master, moosefs-chunkserver, moosefs-client, iperf3 and jq when missing, with their
# services kept from starting):
#   bench/io.sh
# Environment (all optional):
#   BENCH_SIZE_MIB=1024          data per large-file test
#   BENCH_STREAMS=4              parallel streams
#   BENCH_SMALL_FILES=1000       files per small-file test
#   BENCH_SMALL_MODE             one-process or per-process (see small_creates above)
#   BENCH_REPEATS=3              runs per test (median taken)
#   BENCH_SYSTEMS="ceiling moosefs collective"   what to run (ratios need all three)
#   BENCH_MFS_FSYNC=1            1: MooseFS chunkservers fsync each chunk before closing it, as
#                                Collective fsyncs every chunk; 0: MooseFS's defaults
#   BENCH_DIR=/var/tmp           where the data, the chunk stores and the mount point go (the
#                                disk measured; not a tmpfs)
#   BENCH_TIMEOUT_SECS=600       limit on one client command
#   BENCH_COLLECTIVE=/path/to/collective   use this binary instead of building one
# Caution: dropping the page cache affects everything else on the machine, and anything else
# running (builds!) skews both sides; the load average is printed before and after.
# Raw results (one JSON object per test run) are copied to /tmp and the path printed; the
# working directory under BENCH_DIR is removed at exit.
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$(pwd)

size_mib=${BENCH_SIZE_MIB:-1024}
streams=${BENCH_STREAMS:-4}
small_files=${BENCH_SMALL_FILES:-1000}
small_size=4096
small_mode=${BENCH_SMALL_MODE:-}
repeats=${BENCH_REPEATS:-3}
systems=${BENCH_SYSTEMS:-ceiling moosefs collective}
bench_mfs_fsync=${BENCH_MFS_FSYNC:-1}
bench_dir=${BENCH_DIR:-/var/tmp}
timeout_secs=${BENCH_TIMEOUT_SECS:-600}
# How long a system may take to start and accept writes, in seconds.
ready_timeout_secs=60
# How long iperf3 runs, in seconds.
tcp_secs=5
bytes=$((size_mib * 1024 * 1024))
part_bytes=$((bytes / streams))
hz=$(getconf CLK_TCK)

log() { echo "io: $*" >&2; }
wants() { [[ " $systems " == *" $1 "* ]]; }

[[ $(id -u) -eq 0 ]] || { log "run as root: it uses network namespaces, a FUSE mount and drop_caches"; exit 1; }
# Every read's output goes to /dev/null. Were it a regular file (a program run as root can rename
# one over it), each read would also write its whole file into memory and the figures would
# measure that.
[[ -c /dev/null ]] || { log "/dev/null is not a character device; restore it (mknod -m 666 /dev/null c 1 3)"; exit 1; }
((bytes % (streams * 4194304) == 0)) || { log "BENCH_SIZE_MIB must be a multiple of 4 x BENCH_STREAMS"; exit 1; }

# --- process, mount and temp-dir bookkeeping: everything started is stopped by PID at exit ------
mkdir -p "$bench_dir"
tmp=$(mktemp -d -p "$bench_dir" collective-bench-io.XXXXXX)
pids=()
policy_created=""
# Runs one client command with the per-command time limit.
t() { timeout "$timeout_secs" "$@"; }
# shellcheck source=bench/lib-common.sh
source bench/lib-common.sh
# shellcheck source=bench/lib-io/moosefs.sh
source bench/lib-io/moosefs.sh
# shellcheck source=bench/lib-io/collective.sh
source bench/lib-io/collective.sh
# Drops one PID from `pids` (a process that has exited and been waited for).
forget_pid() {
    local keep=() pid
    for pid in "${pids[@]}"; do [[ $pid == "$1" ]] || keep+=("$pid"); done
    pids=("${keep[@]}")
}
cleanup() {
    set +e
    mfs_unmount
    stop_from 0
    mfs_cleanup_netns
    [[ -n "$policy_created" ]] && rm -f /usr/sbin/policy-rc.d
    rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# --- installs -----------------------------------------------------------------------------------
missing=()
command -v jq >/dev/null || missing+=(jq)
command -v openssl >/dev/null || missing+=(openssl)
if wants ceiling; then command -v iperf3 >/dev/null || missing+=(iperf3); fi
if wants moosefs; then
    command -v mfsmaster >/dev/null || missing+=(moosefs-master)
    command -v mfschunkserver >/dev/null || missing+=(moosefs-chunkserver)
    command -v mfsmount >/dev/null || missing+=(moosefs-client)
fi
if ((${#missing[@]})); then install_quietly "${missing[@]}"; fi

# --- build --------------------------------------------------------------------------------------
build_collective
if wants collective && ! coll_available; then
    log "this collective has no \`write\`/\`read\` yet: skipping the Collective half"
    systems=${systems//collective/}
fi
if [[ -z $small_mode ]]; then
    small_mode=one-process
    if wants collective && ! coll_has_bench_io; then small_mode=per-process; fi
fi
[[ $small_mode == one-process || $small_mode == per-process ]] \
    || { log "BENCH_SMALL_MODE must be one-process or per-process"; exit 1; }

# --- helpers ------------------------------------------------------------------------------------
drop_caches() {
    sync
    echo 3 >/proc/sys/vm/drop_caches
}

# Sum of utime+stime+cutime+cstime, in clock ticks, of the given processes (all their threads,
# and their children that have been waited for). A process already gone counts 0.
cpu_ticks() {
    local pid line sum=0
    local -a f
    for pid in "$@"; do
        line=$(cat "/proc/$pid/stat" 2>/dev/null) || continue
        # Fields after the command name, which is in parentheses and may hold spaces: f[0] is
        # field 3 (state), so utime (14) is f[11], stime f[12], cutime f[13], cstime f[14].
        read -r -a f <<<"${line##*) }"
        sum=$((sum + f[11] + f[12] + f[13] + f[14]))
    done
    echo "$sum"
}

# CPU time the hypervisor gave to others while this machine's CPUs wanted it ("steal", the
# eighth field of /proc/stat's cpu line), in clock ticks summed over the CPUs. A test that ran
# while the host was busy shows it; both systems' figures then say little.
steal_ticks() {
    local -a f
    read -r -a f </proc/stat
    echo "${f[8]:-0}"
}

# Fresh random data (so no run is deduplicated against another), flushed to disk so its
# write-back does not land in the measurement, and left in the page cache.
make_random() { # PATH BYTES
    openssl rand -out "$1" "$2"
    sync "$1"
}
# Splits fresh random data into NUM files of SIZE bytes under DIR (names 0000, 0001, ...).
make_random_files() { # DIR NUM SIZE
    rm -rf "$1"
    mkdir -p "$1"
    openssl rand "$(($2 * $3))" | split -b "$3" -a 4 -d - "$1/"
    sync
}

results=$tmp/results.jsonl
: >"$results"
had_errors=""

# Runs one test: measure SYSTEM TEST BYTES OPS REPEAT -- COMMAND... (a shell function is fine).
# Times the command and counts the CPU of the system's daemons (by PID, from $daemon_pids) and of
# the command and everything it started.
daemon_pids=()
measure() {
    local system=$1 test=$2 bytes=$3 ops=$4 repeat=$5
    shift 6
    local before t0 t1 after steal_before steal_after status=0
    before=$(cpu_ticks "${daemon_pids[@]}")
    steal_before=$(steal_ticks)
    t0=$EPOCHREALTIME
    # Not `set -e`: bash ignores it in a subshell on the left of `||`, and a failed command
    # would then be timed as a result.
    (
        "$@" || exit
        # The subshell's own CPU and that of every client process it waited for.
        cpu_ticks "$BASHPID" >"$tmp/client.ticks"
    ) || status=$?
    t1=$EPOCHREALTIME
    steal_after=$(steal_ticks)
    after=$(cpu_ticks "${daemon_pids[@]}")
    if ((status != 0)); then
        log "$system $test (repeat $repeat) failed (exit $status)"
        had_errors=yes
        return 0
    fi
    local client
    client=$(cat "$tmp/client.ticks")
    jq -nc --arg system "$system" --arg test "$test" --argjson repeat "$repeat" \
        --argjson bytes "$bytes" --argjson ops "$ops" --arg t0 "$t0" --arg t1 "$t1" \
        --argjson daemon "$((after - before))" --argjson client "$client" --argjson hz "$hz" \
        --argjson steal "$((steal_after - steal_before))" \
        '{system: $system, test: $test, repeat: $repeat, bytes: $bytes, ops: $ops,
          secs: (($t1 | tonumber) - ($t0 | tonumber)),
          cpu_secs: (($daemon + $client) / $hz), daemon_cpu_secs: ($daemon / $hz),
          client_cpu_secs: ($client / $hz), steal_secs: ($steal / $hz)}' >>"$results"
    log "$(tail -n1 "$results" | jq -r '"\(.system) \(.test) #\(.repeat): \(.secs * 100 | round / 100) s, " +
        (if .ops > 1 then "\(.ops / .secs | floor) files/s" else "\(.bytes / 1048576 / .secs | floor) MiB/s" end) +
        ", cpu \(.cpu_secs * 100 | round / 100) s (daemons \(.daemon_cpu_secs * 100 | round / 100)), " +
        "stolen \(.steal_secs * 100 | round / 100) s"')"
}

# Records a figure measured elsewhere: record SYSTEM TEST BYTES OPS REPEAT SECS [CPU_SECS]
record() {
    jq -nc --arg system "$1" --arg test "$2" --argjson bytes "$3" --argjson ops "$4" \
        --argjson repeat "$5" --argjson secs "$6" --argjson cpu "${7:-null}" \
        '{system: $system, test: $test, repeat: $repeat, bytes: $bytes, ops: $ops, secs: $secs,
          cpu_secs: $cpu}' >>"$results"
    log "$1 $2 #$5: $(tail -n1 "$results" | jq -r 'if .ops > 1 then "\(.ops / .secs | floor) files/s"
        else "\(.bytes / 1048576 / .secs | floor) MiB/s" end')"
}

# Starts one client operation per stream in parallel and waits for all; fails if any fails.
# par OP REPEAT (OP is SYS_write or SYS_read; the stream files are $tmp/src/par<i>.bin).
par() {
    local op=$1 repeat=$2 i status=0
    local -a children=()
    for ((i = 0; i < streams; i++)); do
        if [[ $op == *_write ]]; then
            "$op" "$tmp/src/par$i.bin" "par-r$repeat-$i.bin" &
        else
            "$op" "par-r$repeat-$i.bin" &
        fi
        children+=($!)
    done
    for i in "${children[@]}"; do wait "$i" || status=$?; done
    return "$status"
}

# --- ceilings -----------------------------------------------------------------------------------
run_ceilings() {
    local repeat port server
    mkdir -p "$tmp/src"
    for ((repeat = 1; repeat <= repeats; repeat++)); do
        make_random "$tmp/src/ceiling-src.bin" "$bytes"
        daemon_pids=()
        measure ceiling disk_write "$bytes" 1 "$repeat" -- \
            t dd if="$tmp/src/ceiling-src.bin" of="$tmp/ceiling.bin" bs=4M conv=fdatasync status=none
        drop_caches
        measure ceiling disk_read "$bytes" 1 "$repeat" -- \
            t dd if="$tmp/ceiling.bin" of=/dev/null bs=4M status=none
        rm -f "$tmp/ceiling.bin"
        # The same with direct I/O, as a node moves chunk files (for the floor below).
        measure ceiling disk_write_direct "$bytes" 1 "$repeat" -- \
            t dd if="$tmp/src/ceiling-src.bin" of="$tmp/ceiling.bin" bs=4M oflag=direct conv=fdatasync status=none
        drop_caches
        measure ceiling disk_read_direct "$bytes" 1 "$repeat" -- \
            t dd if="$tmp/ceiling.bin" of=/dev/null bs=4M iflag=direct status=none
        rm -f "$tmp/ceiling.bin" "$tmp/src/ceiling-src.bin"

        port=$(free_port)
        iperf3 -s -1 -B 127.0.0.1 -p "$port" >"$tmp/iperf3-server.log" 2>&1 &
        server=$!
        pids+=("$server")
        # Not wait_listening: a one-off (-1) server would take its probe for the client.
        local deadline=$((SECONDS + ready_timeout_secs))
        until [[ -n $(ss -Hltn "sport = :$port") ]]; do
            ((SECONDS < deadline)) || { log "iperf3 server not listening"; cat "$tmp/iperf3-server.log" >&2; return 1; }
            sleep 0.1
        done
        t iperf3 -c 127.0.0.1 -p "$port" -t "$tcp_secs" -J >"$tmp/iperf3.json"
        wait "$server" || true
        forget_pid "$server"
        local moved secs cpu
        moved=$(jq '.end.sum_received.bytes // empty' "$tmp/iperf3.json")
        secs=$(jq '.end.sum_received.seconds // empty' "$tmp/iperf3.json")
        # Sender and receiver process CPU (almost all of it the kernel's), as iperf3 counts it.
        cpu=$(jq '(.end.cpu_utilization_percent // {}) as $u
            | if ($u.host_total | type) == "number" and ($u.remote_total | type) == "number"
              then ($u.host_total + $u.remote_total) / 100 else empty end' "$tmp/iperf3.json")
        if [[ -z $moved || -z $secs ]]; then
            log "iperf3 gave no result: $(jq -r '.error // empty' "$tmp/iperf3.json")"
            had_errors=yes
            continue
        fi
        local cpu_secs=null
        if [[ -n $cpu ]]; then cpu_secs=$(jq -n "$cpu * $secs"); fi
        record ceiling tcp_loopback "$moved" 1 "$repeat" "$secs" "$cpu_secs"
    done
    if wants collective; then
        # Hashing and TLS's cipher, one core, CPU time (for the floor below).
        "$collective" bench cpu --json >"$tmp/bench-cpu.json" \
            || { log "collective bench cpu failed"; had_errors=yes; }
    fi
}

# --- one system: every test, BENCH_REPEATS rounds -----------------------------------------------
# run_io SYSTEM PREFIX DIR: PREFIX is mfs or coll (its functions PREFIX_write, _read, ...).
run_io() {
    local system=$1 p=$2 dir=$3 repeat i
    for ((repeat = 1; repeat <= repeats; repeat++)); do
        make_random "$tmp/src/seq.bin" "$bytes"
        measure "$system" write_seq "$bytes" 1 "$repeat" -- "${p}_write" "$tmp/src/seq.bin" "seq-r$repeat.bin"
        if ((repeat == 1)) && [[ $p == coll ]]; then coll_show_placement "seq-r1.bin"; fi
        cold "$p" "$dir"
        measure "$system" read_seq_cold "$bytes" 1 "$repeat" -- "${p}_read" "seq-r$repeat.bin"
        if ((repeat == 1)); then
            if "${p}_verify" "$tmp/src/seq.bin" "seq-r1.bin"; then log "$system: seq-r1.bin reads back identical"; else
                log "$system: seq-r1.bin DIFFERS from what was written"
                had_errors=yes
            fi
        fi
        "${p}_rm" "seq-r$repeat.bin"
        rm -f "$tmp/src/seq.bin"

        for ((i = 0; i < streams; i++)); do make_random "$tmp/src/par$i.bin" "$part_bytes"; done
        measure "$system" "write_par$streams" "$bytes" 1 "$repeat" -- par "${p}_write" "$repeat"
        cold "$p" "$dir"
        measure "$system" "read_par${streams}_cold" "$bytes" 1 "$repeat" -- par "${p}_read" "$repeat"
        if ((repeat == 1)) && ! "${p}_verify" "$tmp/src/par0.bin" "par-r1-0.bin"; then
            log "$system: par-r1-0.bin DIFFERS from what was written"
            had_errors=yes
        fi
        for ((i = 0; i < streams; i++)); do "${p}_rm" "par-r$repeat-$i.bin"; rm -f "$tmp/src/par$i.bin"; done

        local rate=""
        if [[ $p == coll && $small_mode == one-process ]]; then
            # `collective bench io` creates its own files of fresh random bytes.
            rate=$(coll_small_files_per_sec)
            [[ -n $rate ]] || { had_errors=yes; continue; }
            record "$system" small_creates "$((small_files * small_size))" "$small_files" "$repeat" \
                "$(jq -n --argjson n "$small_files" --argjson r "$rate" '$n / $r')"
        else
            make_random_files "$tmp/src/small" "$small_files" "$small_size"
            measure "$system" small_creates "$((small_files * small_size))" "$small_files" "$repeat" -- \
                "${p}_small_creates" "$tmp/src/small" "small-r$repeat"
            "${p}_rm" "small-r$repeat"
            rm -rf "$tmp/src/small"
        fi
    done
}
# Makes the next read cold: nothing of the data in any cache.
cold() { # PREFIX DIR
    if [[ $1 == mfs ]]; then
        mfs_remount "$2/moosefs"
        read -r -a daemon_pids <<<"$(mfs_daemon_cpu_pids)" # the new mfsmount
    fi
    drop_caches
}

run_moosefs() {
    local first=${#pids[@]}
    mfs_up "$tmp/moosefs"
    read -r -a daemon_pids <<<"$(mfs_daemon_cpu_pids)"
    run_io moosefs mfs "$tmp"
    mfs_unmount
    stop_from "$first"
    mfs_cleanup_netns
    rm -rf "$tmp/moosefs"
}

run_collective() {
    local first=${#pids[@]}
    coll_up "$tmp/collective"
    read -r -a daemon_pids <<<"$(coll_daemon_cpu_pids)"
    run_io collective coll "$tmp"
    coll_down
    stop_from "$first"
    rm -rf "$tmp/collective"
}

# --- the run ------------------------------------------------------------------------------------
avail_mib=$(($(df -Pk "$tmp" | awk 'NR == 2 {print $4}') / 1024))
# Collective keeps the chunks of removed files for its garbage-collection grace period (2 h), so
# every repeat's files stay on disk: two replicas of two tests' files per repeat, the source
# files, each node's reserve (256 MiB) and some room.
need_mib=$((size_mib * (4 * repeats + 2) + 1536))
((avail_mib >= need_mib)) || { log "$bench_dir has $avail_mib MiB free; this run needs about $need_mib"; exit 1; }
log "load average before the run: $(cut -d' ' -f1-3 /proc/loadavg) (a busy machine skews every side)"
log "working directory $tmp on $(df -P "$tmp" | awk 'NR == 2 {print $1}')"
started=$SECONDS
mkdir -p "$tmp/src"
# `if`, not `&&`: bash ignores `set -e` inside a function called on the left of `&&`.
if wants ceiling; then run_ceilings; fi
if wants moosefs; then run_moosefs; fi
if wants collective; then run_collective; fi

# --- report -------------------------------------------------------------------------------------
copy=/tmp/collective-bench-io-$(date +%Y%m%d-%H%M%S).jsonl
cp "$results" "$copy"

summary=$(jq -s '
    def median: sort | if length == 0 then null
        elif length % 2 == 1 then .[length / 2 | floor]
        else (.[length / 2 - 1] + .[length / 2]) / 2 end;
    group_by([.system, .test])
    | map({system: .[0].system, test: .[0].test, runs: length, bytes: .[0].bytes, ops: .[0].ops,
           mib_per_sec: (map(.bytes / 1048576 / .secs) | median),
           files_per_sec: (map(.ops / .secs) | median),
           cpu_per_gib: (map(select(.cpu_secs != null) | .cpu_secs / (.bytes / 1073741824)) | median),
           cpu_ms_per_op: (map(select(.cpu_secs != null) | .cpu_secs * 1000 / .ops) | median),
           steal_per_sec: (map(select(.steal_secs != null) | .steal_secs / .secs) | median)})' "$results")

echo
echo "io benchmark: medians of $repeats run(s); $size_mib MiB per large-file test, $streams streams," \
    "$small_files small files of $small_size B ($small_mode); MooseFS chunkserver fsync $bench_mfs_fsync;" \
    "$((SECONDS - started)) s; load average now $(cut -d' ' -f1-3 /proc/loadavg)"
{
    echo "system test runs MiB/s files/s cpu_s/GiB cpu_ms/file stolen_cpu_s/s"
    jq -r 'def r2: if . == null then "-" else (. * 100 | round / 100) end;
        sort_by(.system, .test)[]
        | [.system, .test, .runs, (.mib_per_sec | r2),
           (if .ops > 1 then (.files_per_sec | r2) else "-" end),
           (if .ops > 1 then "-" else (.cpu_per_gib | r2) end),
           (if .ops > 1 then (.cpu_ms_per_op | r2) else "-" end), (.steal_per_sec | r2)] | @tsv' <<<"$summary"
} | column -t
echo "raw results: $copy"
[[ -z "$had_errors" ]] || log "some tests failed or read back wrong data (see above)"

# The ratios (nan where a side is missing), and the goals of issue 3 checked against them.
ratios=$(jq -r --arg streams "$streams" '
    def pick($s; $t): map(select(.system == $s and .test == $t))[0];
    def fmt: if . == null then "nan" else (. * 1000 | round / 1000 | tostring) end;
    def div($a; $b): if $a == null or $b == null or $b == 0 then null else $a / $b end;
    . as $all
    | ($all | pick("ceiling"; "tcp_loopback") | .mib_per_sec) as $tcp
    | ($all | pick("ceiling"; "disk_write") | .mib_per_sec) as $dw
    | ($all | pick("ceiling"; "disk_read") | .mib_per_sec) as $dr
    | ["write_seq", "read_seq_cold", "write_par\($streams)", "read_par\($streams)_cold"] as $large
    | ($large[] as $t | ($all | pick("collective"; $t)) as $o | ($all | pick("moosefs"; $t)) as $m
        | "ratio \($t) \(div($o.mib_per_sec; $m.mib_per_sec) | fmt)"),
      (($all | pick("collective"; "small_creates")) as $o | ($all | pick("moosefs"; "small_creates")) as $m
        | "ratio small_creates \(div($o.files_per_sec; $m.files_per_sec) | fmt)"),
      ($large[] as $t | ($all | pick("collective"; $t)) as $o | ($all | pick("moosefs"; $t)) as $m
        | "ratio cpu_\($t) \(div($m.cpu_per_gib; $o.cpu_per_gib) | fmt)"),
      ($large[] as $t | ($all | pick("collective"; $t)) as $o
        | (if ($t | startswith("write")) then $dw else $dr end) as $disk
        | (if $disk == null or $tcp == null then null elif $disk < $tcp then $disk else $tcp end) as $ceiling
        | "ratio \($t)_vs_ceiling \(div($o.mib_per_sec; $ceiling) | fmt)")
    ' <<<"$summary")
goal() { # NAME MINIMUM
    local value
    value=$(awk -v n="$1" '$1 == "ratio" && $2 == n {print $3}' <<<"$ratios")
    if [[ $value == nan || -z $value ]]; then echo "goal $1 >= $2: not measured"
    elif awk -v v="$value" -v m="$2" 'BEGIN {exit !(v >= m)}'; then echo "goal $1 >= $2: met ($value)"
    else echo "goal $1 >= $2: NOT met ($value)"; fi
}
goal write_seq 2
goal read_seq_cold 2
goal small_creates 2
goal read_seq_cold_vs_ceiling 0.5

# The floor: the CPU that reading or writing a GiB through Collective cannot go below on this
# machine, whatever the code around the work does, and the throughput that leaves on all its
# cores. The work every byte needs (BRIEF: mutual TLS on every hop; issue 3: the node verifies a
# chunk before storing or serving it, the client hashes what it writes and verifies what it
# reads): a cold read is one direct disk read, a node hash, one TLS hop (seal and open), one
# loopback TCP transfer and a client hash; a write is a client hash and, per replica, one TLS
# hop, one TCP transfer, a node hash and one direct disk write with its fsync.
floor=""
if [[ -s $tmp/bench-cpu.json ]]; then
    floor=$(jq -r --slurpfile cpu "$tmp/bench-cpu.json" --argjson cores "$(nproc)" '
        def pick($s; $t): map(select(.system == $s and .test == $t))[0];
        def r: if . == null then "nan" else (. * 1000 | round / 1000 | tostring) end;
        . as $all | $cpu[0] as $c
        | ($all | pick("ceiling"; "tcp_loopback") | .cpu_per_gib) as $tcp
        | ($all | pick("ceiling"; "disk_read_direct") | .cpu_per_gib) as $dr
        | ($all | pick("ceiling"; "disk_write_direct") | .cpu_per_gib) as $dw
        | select($tcp != null and $dr != null and $dw != null)
        | {read_seq_cold: ($dr + 2 * $c.blake3_cpu_secs_per_gib + $c.aes128gcm_hop_cpu_secs_per_gib + $tcp),
           write_seq: ($c.blake3_cpu_secs_per_gib
                       + 2 * ($c.aes128gcm_hop_cpu_secs_per_gib + $tcp + $c.blake3_cpu_secs_per_gib + $dw))}
        | to_entries[] | .key as $t | .value as $f | ($cores * 1024 / $f) as $most
        | ($all | pick("moosefs"; $t) | .mib_per_sec) as $m
        | ($all | pick("collective"; $t) | .mib_per_sec) as $o
        | "floor \($t) \($f | r) cpu_s/GiB: at most \($most | round) MiB/s on \($cores) cores; the goal (2x MooseFS) needs \(if $m == null then "nan" else (2 * $m | round) end)",
          "floor_ratio \($t)_goal_vs_floor \(if $m == null then "nan" else (2 * $m / $most | r) end)",
          "floor_ratio \($t)_vs_floor \(if $o == null then "nan" else ($o / $most | r) end)"
        ' <<<"$summary")
    echo "$floor"
fi
echo "$ratios"
[[ -z "$had_errors" ]]
