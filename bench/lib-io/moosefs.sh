# shellcheck shell=bash
# Its settings (collective, ready_timeout_secs, bench_*) are set by bench/io.sh before use.
# shellcheck disable=SC2154
# MooseFS half of bench/io.sh (sourced; uses its log, pids, tmp and bench_* settings).
#
# One master and two chunkservers (goal 2), Debian's moosefs 3.0 packages, run as root in
# their own network namespace: MooseFS refuses or misbehaves with chunkservers on 127.x
# addresses, so each daemon gets an address of the benchmark range 198.18.0.0/15 on the
# namespace's loopback device (master .10, chunkservers .11 and .12). Traffic between them and
# the mount therefore crosses a loopback device, as Collective's does on 127.0.0.1.
# mfsmount and the mfs* tools are started with `nsenter --net` only (no new mount namespace), so
# the FUSE mount is visible to the host's processes and the tools reach the master.
# Durability: with BENCH_MFS_FSYNC=1 (the default) each chunkserver fsyncs a chunk before
# closing it (HDD_FSYNC_BEFORE_CLOSE=1) and dd passes conv=fsync, which mfsmount turns into a
# flush to the chunkservers: the closest match to Collective fsyncing every chunk before it
# acknowledges. BENCH_MFS_FSYNC=0 measures MooseFS's defaults instead.

mfs_netns=""
mfs_mounted=""
mfs_mount_pid=""
mfs_daemon_pids=()
mfs_master_ip=198.18.0.10

# Runs a tool in the namespace. Daemons are started with nsenter itself, not through this
# function, so that $! is the daemon's PID (nsenter execs it) and not a subshell's.
mfs_ns() { nsenter --net="/run/netns/$mfs_netns" "$@"; }

# Writes the configuration of a fresh master and two chunkservers under $1.
mfs_configure() {
    local dir=$1 i
    mkdir -p "$dir/master" "$dir/mnt"
    cp /var/lib/mfs/metadata.mfs.empty "$dir/master/metadata.mfs"
    cat >"$dir/master/mfsmaster.cfg" <<EOF
WORKING_USER = root
WORKING_GROUP = root
DATA_PATH = $dir/master
EXPORTS_FILENAME = $dir/master/mfsexports.cfg
TOPOLOGY_FILENAME = $dir/master/mfstopology.cfg
MATOML_LISTEN_HOST = $mfs_master_ip
MATOCS_LISTEN_HOST = $mfs_master_ip
MATOCL_LISTEN_HOST = $mfs_master_ip
NICE_LEVEL = 0
EOF
    echo '* / rw,alldirs,maproot=0:0' >"$dir/master/mfsexports.cfg"
    : >"$dir/master/mfstopology.cfg"
    for i in 1 2; do
        mkdir -p "$dir/cs$i/meta" "$dir/cs$i/hdd"
        cat >"$dir/cs$i/mfschunkserver.cfg" <<EOF
WORKING_USER = root
WORKING_GROUP = root
DATA_PATH = $dir/cs$i/meta
HDD_CONF_FILENAME = $dir/cs$i/mfshdd.cfg
HDD_LEAVE_SPACE_DEFAULT = 1GiB
HDD_FSYNC_BEFORE_CLOSE = $bench_mfs_fsync
BIND_HOST = 198.18.0.1$i
MASTER_HOST = $mfs_master_ip
CSSERV_LISTEN_HOST = 198.18.0.1$i
NICE_LEVEL = 0
EOF
        echo "$dir/cs$i/hdd" >"$dir/cs$i/mfshdd.cfg"
    done
}

mfs_mount() {
    local dir=$1 deadline=$((SECONDS + ready_timeout_secs))
    # mfsnice=0: the default (-19) would give the mount priority over everything else.
    nsenter --net="/run/netns/$mfs_netns" mfsmount -f -H "$mfs_master_ip" -o mfsnice=0 "$dir/mnt" >>"$dir/mount.log" 2>&1 &
    mfs_mount_pid=$!
    pids+=("$mfs_mount_pid")
    until mountpoint -q "$dir/mnt"; do
        ((SECONDS < deadline)) || { log "moosefs: not mounted"; tail "$dir/mount.log" >&2; return 1; }
        kill -0 "$mfs_mount_pid" 2>/dev/null || { log "moosefs: mfsmount exited"; tail "$dir/mount.log" >&2; return 1; }
        sleep 0.2
    done
    mfs_mounted=$dir/mnt
}

mfs_unmount() {
    [[ -n "$mfs_mounted" ]] || return 0
    umount "$mfs_mounted" 2>/dev/null || umount -l "$mfs_mounted" 2>/dev/null || true
    mfs_mounted=""
    if [[ -n "$mfs_mount_pid" ]]; then
        for _ in $(seq 100); do kill -0 "$mfs_mount_pid" 2>/dev/null || break; sleep 0.1; done
        kill -KILL "$mfs_mount_pid" 2>/dev/null || true
        wait "$mfs_mount_pid" 2>/dev/null || true
        forget_pid "$mfs_mount_pid"
        mfs_mount_pid=""
    fi
}

# Deletes the namespace; called after its daemons are gone (they are killed by PID).
mfs_cleanup_netns() {
    [[ -n "$mfs_netns" ]] && ip netns del "$mfs_netns" 2>/dev/null
    mfs_netns=""
}

# Starts master, two chunkservers and the mount under $1; sets goal 2 and trash time 0 (deleted
# files free their space at once, so repeats do not fill the disk).
mfs_up() {
    local dir=$1 i
    mfs_configure "$dir"
    mfs_netns=cbench-io-$$
    ip netns add "$mfs_netns"
    ip -n "$mfs_netns" link set lo up
    for i in 10 11 12; do ip -n "$mfs_netns" addr add "198.18.0.$i/32" dev lo; done

    mfs_daemon_pids=()
    nsenter --net="/run/netns/$mfs_netns" mfsmaster -f -c "$dir/master/mfsmaster.cfg" start >"$dir/master.log" 2>&1 &
    pids+=($!)
    mfs_daemon_pids+=($!)
    local deadline=$((SECONDS + ready_timeout_secs))
    until grep -qs 'mfsmaster daemon initialized properly' "$dir/master.log"; do
        ((SECONDS < deadline)) || { log "moosefs: master did not start"; tail "$dir/master.log" >&2; return 1; }
        sleep 0.2
    done
    for i in 1 2; do
        nsenter --net="/run/netns/$mfs_netns" mfschunkserver -f -c "$dir/cs$i/mfschunkserver.cfg" start >"$dir/cs$i.log" 2>&1 &
        pids+=($!)
        mfs_daemon_pids+=($!)
    done
    for i in 1 2; do
        until grep -qs 'scanning folder .*: complete' "$dir/cs$i.log" && grep -qs 'connected to Master' "$dir/cs$i.log"; do
            ((SECONDS < deadline)) || { log "moosefs: chunkserver $i not ready"; tail "$dir/cs$i.log" >&2; return 1; }
            sleep 0.2
        done
    done
    mfs_mount "$dir"
    mfs_ns mfssetgoal -r 2 "$mfs_mounted" >/dev/null
    mfs_ns mfssettrashtime -r 0 "$mfs_mounted" >/dev/null
    # Wait until a probe file really gets two copies: both chunkservers have reported their
    # space to the master.
    local probe=$mfs_mounted/.probe
    until head -c 65536 /dev/urandom >"$probe" && mfs_ns mfscheckfile "$probe" 2>/dev/null | grep -q 'chunks with 2 copies'; do
        ((SECONDS < deadline)) || { log "moosefs: no chunk with 2 copies"; mfs_ns mfsfileinfo "$probe" >&2 || true; return 1; }
        sleep 0.5
    done
    rm -f "$probe"
    log "moosefs $(mfsmaster -v | awk '{print $2}'): master and 2 chunkservers up in netns $mfs_netns, goal $(mfs_ns mfsgetgoal "$mfs_mounted" | awk '{print $2}'), mounted on $mfs_mounted, chunkserver fsync $bench_mfs_fsync"
}

# Remounts so the next read finds no data in mfsmount's own read-ahead buffers (cold read).
mfs_remount() {
    local dir=$1
    mfs_unmount
    mfs_mount "$dir"
}

mfs_daemon_cpu_pids() { echo "${mfs_daemon_pids[@]}" "$mfs_mount_pid"; }

# The client operations, each run inside `measure` (which times them and counts their CPU).
mfs_write() { # SRC NAME
    local conv=()
    [[ $bench_mfs_fsync == 1 ]] && conv=(conv=fsync)
    t dd if="$1" of="$mfs_mounted/$2" bs=4M "${conv[@]}" status=none
}
mfs_read() { # NAME
    t dd if="$mfs_mounted/$1" of=/dev/null bs=4M status=none
}
# No conv=fsync: mfsmount fsyncs before every close by default (mfsfsyncmintime=0).
mfs_small_creates() { # DIR_OF_SMALL_FILES DEST_SUBDIR
    local src=$1 dest=$mfs_mounted/$2 f
    mkdir -p "$dest"
    if [[ $small_mode == one-process ]]; then
        t cp -- "$src"/* "$dest/"
        return
    fi
    for f in "$src"/*; do
        t dd if="$f" of="$dest/${f##*/}" bs=4M status=none || return
    done
}
mfs_rm() { rm -rf "${@/#/$mfs_mounted/}"; }
mfs_verify() { # SRC NAME
    t cmp -s "$1" "$mfs_mounted/$2"
}
