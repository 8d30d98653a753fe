#!/usr/bin/env bash
# Builds every fuzz target and runs each for a short, bounded time, failing
# on the first crash, hang or broken invariant. CI runs this (via
# scripts/test); it also serves for longer runs:
#
#   fuzz/smoke.sh                       20 s per target
#   FUZZ_SECONDS=1800 fuzz/smoke.sh     30 min per target, one after another
#   FUZZ_TARGETS="relay" fuzz/smoke.sh  one target
#
# Uses the nightly toolchain with AddressSanitizer when `cargo +nightly`
# works, else the stable toolchain without a sanitizer (`-s none`: still
# coverage-guided, and panics, hangs and failed assertions are still
# caught). Installs cargo-fuzz from crates.io if it is missing.
# New inputs go to a temporary directory: the checked-in seeds never grow.
set -euo pipefail
cd "$(dirname "$0")/.."

seconds=${FUZZ_SECONDS:-20}
read -r -a targets <<<"${FUZZ_TARGETS:-decrypt frames relay eax_key commands members cluster handshake delivery}"

if ! cargo fuzz --version >/dev/null 2>&1; then
  # A debug build: it only drives the build and libFuzzer, and compiles in
  # a fraction of the time.
  cargo install cargo-fuzz --version 0.13.2 --locked --debug
fi
if cargo +nightly --version >/dev/null 2>&1; then
  toolchain=(+nightly) sanitizer=address
else
  toolchain=() sanitizer=none
fi
echo "fuzz: cargo ${toolchain[*]:-(stable)} fuzz, sanitizer $sanitizer, ${seconds}s per target"

cargo "${toolchain[@]}" fuzz build -s "$sanitizer"

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
for target in "${targets[@]}"; do
  mkdir -p "$work/$target"
  log="$work/$target.log"
  # libFuzzer stops itself after -max_total_time; `timeout` bounds a hang
  # anywhere else. A single input running over 10 s counts as a failure.
  if timeout $((seconds + 120)) cargo "${toolchain[@]}" fuzz run -s "$sanitizer" "$target" \
    "$work/$target" "fuzz/corpus/$target" -- \
    -dict=fuzz/eaxchat.dict -max_total_time="$seconds" -timeout=10 \
    -print_final_stats=1 >"$log" 2>&1; then
    cov=$(grep -E '^#[0-9]+[[:space:]]+DONE' "$log" | tail -n 1 | grep -oE 'cov: [0-9]+ ft: [0-9]+' || true)
    runs=$(grep -E '^stat::number_of_executed_units' "$log" || true)
    echo "fuzz $target: ok (${runs##*: } runs) $cov"
  else
    echo "fuzz $target: FAILED; the end of its log:" >&2
    tail -n 120 "$log" >&2
    exit 1
  fi
done
