# Sourced by the other scripts: builds go to a target directory outside the checkout, so a fresh
# clone (as CI makes) reuses an earlier build of RocksDB when the machine has one.
# Caution: cargo hashes workspace members by their path relative to the workspace root, so two
# checkouts of this repository share artifacts in one target directory. Never build two
# checkouts with different contents into it at the same time (for example git worktrees of
# parallel work): generated code from one can be picked up by the other. Give concurrent
# checkouts their own CARGO_TARGET_DIR.
if [[ -z "${CARGO_TARGET_DIR:-}" ]]; then
    for candidate in /var/cache/collective-target "${XDG_CACHE_HOME:-$HOME/.cache}/collective-target"; do
        if mkdir -p "$candidate" 2>/dev/null && [[ -w "$candidate" ]]; then
            export CARGO_TARGET_DIR="$candidate"
            break
        fi
    done
fi
