#!/usr/bin/env bash
# haul beside Kargo: runs the promotion (small repository), warehouse and scale benches with
# Kargo's controller as a second contender, runs interleaved, and prints one table
# haul | Kargo | haul ÷ Kargo (also written to <target>/bench-vs-kargo/table.md).
#
#   benches/vs-kargo.sh <Kargo's kargo binary> <Kargo's CRD directory>
#
# Kargo is not downloaded: build its cmd/controlplane from its source and name the binary and
# charts/kargo/resources/crds. HAUL_BENCH_ROUNDS and HAUL_SCALE pass through to the benches.
set -euo pipefail
export HAUL_BENCH_KARGO=${1:?usage: $0 <kargo binary> <Kargo CRD directory>}
export HAUL_BENCH_KARGO_CRDS=${2:?usage: $0 <kargo binary> <Kargo CRD directory>}
cd "$(dirname "$0")/.."
out=${CARGO_TARGET_DIR:-target}/bench-vs-kargo
mkdir -p "$out"
cargo bench --bench promotion --bench warehouse --bench scale --no-run
load_before=$(cut -d' ' -f1-3 /proc/loadavg)
HAUL_BENCH_ONLY=small cargo bench --bench promotion | tee "$out/promotion.md"
cargo bench --bench warehouse | tee "$out/warehouse.md"
cargo bench --bench scale | tee "$out/scale.md"
load_after=$(cut -d' ' -f1-3 /proc/loadavg)
{
    echo "| | haul | Kargo | haul ÷ Kargo |"
    echo "|---|---:|---:|---:|"
    for f in promotion warehouse scale; do
        # The rows of each bench's "## side by side" table, without its header.
        awk '/^## side by side/ {on = 1; next} on && /^\| / && !/^\| \| haul/' "$out/$f.md"
    done
    echo
    echo "Load average before: $load_before; after: $load_after."
} | tee "$out/table.md"
