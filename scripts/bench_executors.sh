#!/usr/bin/env bash
# The executors side by side, in one run (docs/BENCHMARKS.md): the same seeded
# 32-candidate training search (NAS-Bench-201 cells, regularized evolution, batches of 8,
# each candidate trained for one epoch of 1,024 Fashion-MNIST images) with
# `--executor local --jobs 1`, `--jobs 2`, and `--executor slurm` on the one-node cluster
# of scripts/slurm.sh (this machine's CPUs, one per task). Prints a Markdown table.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
source scripts/setup.sh
hwnas_setup_all >/dev/null
eval "$(bash scripts/slurm.sh start)"
cargo build --release --quiet -p hwnas
bin="$PWD/target/release/hwnas"
out="$(mktemp -d)"
common=(search --space nb201 --strategy rea --evaluator train --epochs 1
    --train-images 1024 --eval-images 512 --batch-size 64 --budget 32 --proposals 8
    --target table:pixel3 --latency-ms 10 --seed 1 --json)
declare -A wall
for mode in jobs1 jobs2 slurm; do
    case "$mode" in
        jobs1) extra=(--jobs 1) ;;
        jobs2) extra=(--jobs 2) ;;
        slurm) extra=(--executor slurm --slurm-poll 0.5) ;;
    esac
    start=$(date +%s.%N)
    "$bin" "${common[@]}" --out "$out/$mode" "${extra[@]}" > "$out/$mode.json" 2> "$out/$mode.log"
    wall[$mode]=$(echo "$(date +%s.%N) - $start" | bc)
done
for mode in jobs2 slurm; do
    cmp -s "$out/jobs1/history.jsonl" "$out/$mode/history.jsonl" ||
        { echo "the $mode history differs from the one-job history" >&2; exit 1; }
done
python3 - "$out" "${wall[jobs1]}" "${wall[jobs2]}" "${wall[slurm]}" <<'PY'
import glob, json, sys
out, w1, w2, ws = sys.argv[1], *map(float, sys.argv[2:])
tasks = [json.load(open(p)) for p in glob.glob(f"{out}/slurm/tasks/*.result.json")]
task_s = sum(t["seconds"] for t in tasks)
jobs = sum(1 for _ in open(f"{out}/slurm/tasks/jobs.jsonl"))
n = len(tasks)
print(f"| executor | wall s | per candidate s | vs 1 job |")
print(f"|---|---|---|---|")
for name, w in [("local, --jobs 1", w1), ("local, --jobs 2", w2), ("slurm, 2 CPUs (1 per task)", ws)]:
    print(f"| {name} | {w:.1f} | {w / n:.2f} | {w1 / w:.2f}x |")
print()
print(f"{n} candidates, {jobs} job arrays, histories identical; the tasks' own time "
      f"(worker start, images, training, scoring) {task_s:.1f} s in all, {task_s / n:.2f} s each;")
print(f"scheduling overhead per candidate (slurm wall x 2 CPUs - task time) / {n}: "
      f"{(ws * 2 - task_s) / n:.2f} s")
PY
rm -rf "$out"
