#!/bin/sh
# Clean release builds, timed: mlscore (openmls + the client binaries) and the Python wheel.
set -e
cd "$(dirname "$0")"
for d in target/clean-mlscore target/clean-wheel; do rm -rf "$d"; done
uptime
CARGO_TARGET_DIR=$PWD/target/clean-mlscore /usr/bin/time -f "mlscore clean release: %e s wall, %U s user, %S s sys, %M KB max RSS" nice -n 15 cargo build --release -q -p mlscore
uptime
cd mlspy && CARGO_TARGET_DIR=$PWD/../target/clean-wheel /usr/bin/time -f "eaxmls wheel clean (maturin build --release): %e s wall, %U s user" nice -n 15 ../py/.venv/bin/maturin build --release -q -o ../target/wheels 2>&1 | grep -v "^ *Compiling" | tail -3
uptime
ls -l ../target/wheels
