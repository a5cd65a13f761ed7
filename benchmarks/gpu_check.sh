#!/usr/bin/env bash
# The GPU check of issue 17: `pytest -m gpu`, then the few-step GPU benchmark, within a time budget.
#
# Run from anywhere on a machine with CUDA; it runs in the repository root. See --help.
set -euo pipefail

usage() {
  cat <<'EOF'
usage: benchmarks/gpu_check.sh [--budget-s S] [--out DIR] [--dry-run] [--allow-cpu] [--skip-tests] [-h|--help]

On a machine with CUDA, within S seconds (default 480, i.e. 8 minutes) in all:
  1. python -m pytest -m gpu tests   (the CUDA tests; limited to 3/8 of the budget)
  2. python benchmarks/bench_downscale.py --device cuda --sections few_step ...
     the few-step benchmark in bf16 and fp32 at 1, 2, 4, 20, 50 network evaluations, and its sweep of
     batch sizes 16/64/256 x NCHW/channels_last x torch.compile off/on; it gets the time the tests
     left (less 45 s) as its --budget-s, skips what would not fit and records it in its JSON.
Writes DIR/downscale_few_step_cuda.json (+ .md), DIR/downscale_gpu_check.json (what ran, exit
statuses, seconds) and DIR/downscale_gpu_check_pytest.log.

options:
  --budget-s S   total time budget in seconds (integer >= 120; default 480)
  --out DIR      where the results go (default benchmarks/results)
  --dry-run      print the commands that would run, and run nothing (no CUDA needed)
  --allow-cpu    without CUDA, run on the CPU instead of stopping: the benchmark at --quick sizes,
                 written to DIR/downscale_few_step_cpu_quick.json (checks the script, not the GPU)
  --skip-tests   do not run pytest -m gpu
  -h, --help     show this help

environment:
  PYTHON         the interpreter (default: .venv/bin/python of the repository if there is one, else python3)

exit status: 0 all ran and passed; 1 the tests or the benchmark failed; 2 bad arguments; 3 no CUDA device.
EOF
}

die_usage() {
  echo "error: $1" >&2
  echo "usage: benchmarks/gpu_check.sh [--budget-s S] [--out DIR] [--dry-run] [--allow-cpu] [--skip-tests] [-h|--help]" >&2
  exit 2
}

budget=480
out=""
dry_run=0
allow_cpu=0
run_tests=1
while [[ $# -gt 0 ]]; do
  case "$1" in
    -h|--help) usage; exit 0 ;;
    --budget-s|--budget-s=*|--out|--out=*)
      if [[ "$1" == *=* ]]; then name="${1%%=*}"; value="${1#*=}"; shift
      else
        name="$1"
        [[ $# -ge 2 ]] || die_usage "$name needs a value"
        value="$2"; shift 2
      fi
      if [[ "$name" == --budget-s ]]; then
        [[ "$value" =~ ^[0-9]+$ ]] || die_usage "--budget-s takes whole seconds; got '$value' (e.g. --budget-s 480)"
        budget=$((10#$value))
        (( budget >= 120 )) || die_usage "--budget-s $budget is too short: the tests and the benchmark need at least 120 s"
      else
        [[ -n "$value" ]] || die_usage "--out needs a folder"
        out="$value"
      fi
      ;;
    --dry-run) dry_run=1; shift ;;
    --allow-cpu) allow_cpu=1; shift ;;
    --skip-tests) run_tests=0; shift ;;
    *) die_usage "unknown argument '$1'" ;;
  esac
done

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo"
if [[ -z "${PYTHON:-}" ]]; then
  if [[ -x .venv/bin/python ]]; then PYTHON=.venv/bin/python; else PYTHON=python3; fi
fi
out="${out:-benchmarks/results}"

# the device: CUDA, or the CPU when allowed (a dry run prints what a CUDA machine would run)
device=cuda
if (( dry_run )); then
  (( allow_cpu )) && device=cpu
elif ! "$PYTHON" -c 'import sys, torch; sys.exit(0 if torch.cuda.is_available() else 1)' 2>/dev/null; then
  if (( allow_cpu )); then
    device=cpu
    echo "gpu_check: no CUDA device; running on the CPU at --quick sizes (--allow-cpu)" >&2
  else
    echo "error: torch sees no CUDA device ($PYTHON: torch.cuda.is_available() is False, or torch is missing)." >&2
    echo "Run this on a machine with a GPU, or pass --dry-run to print the commands, or --allow-cpu to check the" >&2
    echo "script on the CPU." >&2
    exit 3
  fi
fi

test_limit=$((budget * 3 / 8))
margin=45  # the benchmark's imports and CUDA start before its clock, and its last run may overrun
if [[ "$device" == cuda ]]; then
  bench_out="$out/downscale_few_step_cuda.json"
  bench_args=(--device cuda --sections few_step --evals 1 2 4 20 50 --batches 16 64 256 --sample-batch 64
              --sweep --compile both --repeat 3)
else
  bench_out="$out/downscale_few_step_cpu_quick.json"
  bench_args=(--device cpu --sections few_step --quick --sweep --compile off)
fi
test_cmd=("$PYTHON" -m pytest -m gpu -p no:cacheprovider -q tests)
bench_cmd=("$PYTHON" benchmarks/bench_downscale.py "${bench_args[@]}" --out "$bench_out")

if (( dry_run )); then
  echo "# device: $device; budget: ${budget} s; results in $out/"
  if (( run_tests )); then
    echo "timeout ${test_limit} ${test_cmd[*]}"
    echo "# the benchmark gets the budget the tests left, less ${margin} s: at least $((budget - test_limit - margin)) s"
    echo "timeout $((budget - test_limit - 10)) ${bench_cmd[*]} --budget-s $((budget - test_limit - margin))"
  else
    echo "timeout $((budget - 10)) ${bench_cmd[*]} --budget-s $((budget - margin))"
  fi
  exit 0
fi

mkdir -p "$out"
start=$SECONDS
tests_rc=null
tests_s=0
if (( run_tests )); then
  echo "gpu_check: ${test_cmd[*]} (at most ${test_limit} s)" >&2
  set +e
  timeout "$test_limit" "${test_cmd[@]}" 2>&1 | tee "$out/downscale_gpu_check_pytest.log"
  tests_rc=${PIPESTATUS[0]}
  set -e
  tests_s=$((SECONDS - start))
fi
bench_budget=$((budget - (SECONDS - start) - margin))
bench_start=$SECONDS
echo "gpu_check: ${bench_cmd[*]} --budget-s ${bench_budget}" >&2
set +e
# the benchmark stops what would pass its budget; the hard limit below only catches a hang
timeout "$((bench_budget + margin - 10))" "${bench_cmd[@]}" --budget-s "$bench_budget" > /dev/null
bench_rc=$?
set -e
bench_s=$((SECONDS - bench_start))

json_string() {  # a JSON string literal of $1
  local s=${1//\\/\\\\}
  s=${s//\"/\\\"}
  printf '"%s"' "$s"
}
{
  printf '{\n  "check": "benchmarks/gpu_check.sh",\n'
  printf '  "device": %s,\n  "budget_s": %s,\n  "total_seconds": %s,\n' "$(json_string "$device")" "$budget" \
    "$((SECONDS - start))"
  printf '  "tests": {"command": %s, "exit_status": %s, "seconds": %s, "log": %s},\n' \
    "$(json_string "timeout $test_limit ${test_cmd[*]}")" "$tests_rc" "$tests_s" \
    "$(json_string "$out/downscale_gpu_check_pytest.log")"
  printf '  "benchmark": {"command": %s, "exit_status": %s, "seconds": %s, "json": %s}\n}\n' \
    "$(json_string "${bench_cmd[*]} --budget-s $bench_budget")" "$bench_rc" "$bench_s" "$(json_string "$bench_out")"
} > "$out/downscale_gpu_check.json"

echo "gpu_check: tests exit ${tests_rc}, benchmark exit ${bench_rc}, $((SECONDS - start)) s; $out/downscale_gpu_check.json" >&2
if [[ "$tests_rc" != null && "$tests_rc" != 0 ]] || [[ "$bench_rc" != 0 ]]; then
  exit 1
fi
exit 0
