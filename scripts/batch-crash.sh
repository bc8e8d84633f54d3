#!/usr/bin/env bash
# The cross-shard batch crash test of tests/batch_crash.rs, longer: ROUNDS SIGKILL rounds per fsync interval
# (default 20). Also runs the ignored whole-or-absent check, which fails until recovery decides in-doubt
# batches from durable records (docs/BATCHES.md, Crashes). Usage: scripts/batch-crash.sh [ROUNDS]
set -euo pipefail
cd "$(dirname "$0")/.."
BATCH_CRASH_ROUNDS=${1:-20} cargo test --release --test batch_crash -- --include-ignored --nocapture
