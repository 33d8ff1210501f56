# Sourced by the other scripts: builds go to a target directory outside the checkout, so a fresh
# clone (as CI makes) reuses an earlier build of RocksDB when the machine has one.
if [[ -z "${CARGO_TARGET_DIR:-}" ]]; then
    for candidate in /var/cache/collective-target "${XDG_CACHE_HOME:-$HOME/.cache}/collective-target"; do
        if mkdir -p "$candidate" 2>/dev/null && [[ -w "$candidate" ]]; then
            export CARGO_TARGET_DIR="$candidate"
            break
        fi
    done
fi
