#!/usr/bin/env bash
# The cross-shard batch crash tests of tests/batch_crash.rs, longer: ROUNDS SIGKILL rounds per fsync interval
# (default 20): readers never see part of a batch, acknowledged batches survive, and after each restart every
# batch is whole or absent (recovery decides in-doubt batches, docs/BATCHES.md). Usage: scripts/batch-crash.sh [ROUNDS]
set -euo pipefail
cd "$(dirname "$0")/.."
BATCH_CRASH_ROUNDS=${1:-20} cargo test --release --no-default-features --features cli --test batch_crash -- --nocapture
