# Shared by bench/io.sh and bench/meta.sh (sourced, from the repository root). Expects from the
# caller: `log MESSAGE...`, `wants SYSTEM`, `repo`, the array `pids` of processes it started,
# `ready_timeout_secs`, and `policy_created` (empty; set here while package installs must not
# start services).

# --- ports --------------------------------------------------------------------------------------
listening() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
used_ports=" "
# A free loopback port not handed out before in this run.
free_port() {
    local port
    while :; do
        port=$((20000 + RANDOM % 12000)) # below the kernel's ephemeral range (32768+)
        [[ "$used_ports" == *" $port "* ]] && continue
        listening "$port" && continue
        used_ports+="$port "
        echo "$port"
        return
    done
}
wait_listening() {
    local port=$1 deadline=$((SECONDS + ready_timeout_secs))
    until listening "$port"; do
        ((SECONDS < deadline)) || { log "nothing listens on 127.0.0.1:$port"; return 1; }
        sleep 0.2
    done
}

# --- processes ----------------------------------------------------------------------------------
# Stops the processes started since index $1 of `pids`, newest first (a mount before the servers
# it uses), and forgets them: one system at a time keeps runs quiet.
stop_from() {
    local from=$1 i pid
    for ((i = ${#pids[@]} - 1; i >= from; i--)); do kill -TERM "${pids[i]}" 2>/dev/null || true; done
    for ((i = ${#pids[@]} - 1; i >= from; i--)); do
        pid=${pids[i]}
        for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
        kill -KILL "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
    done
    pids=("${pids[@]:0:from}")
}

# --- build ------------------------------------------------------------------------------------
# Sets `target` (cargo's target directory) and `collective` (the binary measured): $BENCH_COLLECTIVE,
# or a release build made now when collective is among the systems run.
build_collective() {
    # shellcheck source=scripts/target-dir.sh
    source scripts/target-dir.sh
    target=${CARGO_TARGET_DIR:-$repo/target}
    collective=${BENCH_COLLECTIVE:-$target/release/collective}
    if wants collective && [[ -z "${BENCH_COLLECTIVE:-}" ]]; then
        log "building collective (release)"
        cargo build -j2 --release --bin collective
    fi
}

# --- installs -----------------------------------------------------------------------------------
# Installs Debian packages without letting them start their services (Debian starts etcd,
# mfsmaster, iperf3... on install; they would hold ports and disturb the runs).
install_quietly() {
    local sudo=""
    [[ $(id -u) -eq 0 ]] || sudo="sudo"
    if [[ ! -e /usr/sbin/policy-rc.d ]]; then
        printf '#!/bin/sh\nexit 101\n' | $sudo tee /usr/sbin/policy-rc.d >/dev/null
        $sudo chmod +x /usr/sbin/policy-rc.d
        policy_created=yes
    fi
    log "installing $*"
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "$@" >/dev/null
    if [[ -n "$policy_created" ]]; then
        $sudo rm -f /usr/sbin/policy-rc.d
        policy_created=""
    fi
}
