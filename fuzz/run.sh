#!/usr/bin/env bash
# Runs every cargo-fuzz target of rappel for a bounded time and reports one line each.
#
# Usage: fuzz/run.sh [SECONDS] [TARGET...]
#   SECONDS  time per target (default: $FUZZ_SECONDS, else 60)
#   TARGET   only these targets (default: every one in fuzz/Cargo.toml)
# Example: fuzz/run.sh 300           # five minutes on each target
#          FUZZ_SECONDS=30 fuzz/run.sh instant hr
#
# Needs the nightly toolchain; installs cargo-fuzz when it is missing. Each
# target starts from its checked-in seeds (fuzz/seeds/<target>/, never written
# to), copied into fuzz/corpus/<target>/ where the corpus grows between runs.
# A crash lands in fuzz/artifacts/<target>/; replay it with
#   cargo +nightly fuzz run <target> fuzz/artifacts/<target>/crash-...
# and keep the input under fuzz/seeds/<target>/ once fixed.
# Exits 1 when any target crashed (or did not build). Not part of CI.

set -u

here="$(cd "$(dirname "$0")" && pwd)"
cd "$here" || exit 2

seconds="${FUZZ_SECONDS:-60}"
if [[ $# -gt 0 && "$1" =~ ^[0-9]+$ ]]; then
    seconds="$1"
    shift
fi

if ! cargo +nightly fuzz --version >/dev/null 2>&1; then
    echo "installing cargo-fuzz..."
    cargo install cargo-fuzz || exit 2
fi

if [[ $# -gt 0 ]]; then
    targets=("$@")
else
    mapfile -t targets < <(cargo +nightly fuzz list)
fi

mkdir -p logs
failed=0
for target in "${targets[@]}"; do
    mkdir -p "corpus/$target" "seeds/$target"
    cp -n "seeds/$target/"* "corpus/$target/" 2>/dev/null
    log="logs/$target.log"
    cargo +nightly fuzz run "$target" "corpus/$target" -- \
        -max_total_time="$seconds" -timeout=10 -rss_limit_mb=4096 -print_final_stats=1 >"$log" 2>&1
    status=$?
    runs="$(grep -oE '^(#|stat::number_of_executed_units: *)[0-9]+' "$log" | grep -oE '[0-9]+' | tail -n 1)"
    crash="$(grep -oE 'Test unit written to [^ ]+' "$log" | tail -n 1 | sed 's/Test unit written to //')"
    if [[ $status -eq 0 ]]; then
        echo "$target: ${runs:-?} runs in ${seconds} s, no crash"
    else
        failed=1
        echo "$target: ${runs:-?} runs, CRASHED (exit $status) ${crash:+input $crash}; see fuzz/$log"
    fi
done
exit "$failed"
