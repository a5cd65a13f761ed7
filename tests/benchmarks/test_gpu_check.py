"""``benchmarks/gpu_check.sh`` on the CPU: its arguments, its dry run, its refusal without CUDA, its budget.

No GPU is needed: the dry run prints the commands, and the runs that execute them use a stand-in
interpreter (``PYTHON``) that records its arguments and exits with the status it is told to.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "benchmarks" / "gpu_check.sh"

pytestmark = pytest.mark.skipif(shutil.which("bash") is None, reason="needs bash")

FAKE_PYTHON = """#!/usr/bin/env bash
# stands in for python: logs its arguments; the CUDA check (-c), pytest (-m) and the benchmark exit as told
printf '%s\\n' "$*" >> "$FAKE_LOG"
case "$1" in
  -c) exit "${FAKE_CUDA_RC:-0}" ;;
  -m) echo "fake pytest"; exit "${FAKE_PYTEST_RC:-0}" ;;
  *) exit "${FAKE_BENCH_RC:-0}" ;;
esac
"""


def run(*args: str, env: dict | None = None, timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run(["bash", str(SCRIPT), *args], check=False, capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, **(env or {})}, cwd=REPO)


@pytest.fixture
def fake_python(tmp_path):
    """``(env, log)``: an environment whose PYTHON is the stand-in, and the file it logs to."""
    exe = tmp_path / "fake-python"
    exe.write_text(FAKE_PYTHON)
    exe.chmod(0o755)
    log = tmp_path / "calls.log"
    return {"PYTHON": str(exe), "FAKE_LOG": str(log)}, log


def test_help_says_what_it_runs_and_exits_0():
    done = run("--help")
    assert done.returncode == 0, done.stderr
    for word in ("pytest -m gpu", "bench_downscale.py", "--budget-s", "--out", "--dry-run", "--allow-cpu",
                 "--skip-tests", "480", "torch.compile", "channels_last"):
        assert word in done.stdout, word
    assert run("-h").stdout == done.stdout


def test_dry_run_prints_the_commands_and_runs_nothing(tmp_path):
    out = tmp_path / "results"
    done = run("--dry-run", "--out", str(out), env={"PYTHON": "python-that-does-not-exist"})
    assert done.returncode == 0, done.stderr
    lines = [line for line in done.stdout.splitlines() if not line.startswith("#")]
    test_line = next(line for line in lines if "pytest" in line)
    bench_line = next(line for line in lines if "bench_downscale.py" in line)
    # the tests get 3/8 of the default 480 s, the benchmark what they leave less the margin
    assert test_line.startswith("timeout 180 ") and "-m pytest -m gpu" in test_line
    for arg in ("--device cuda", "--sections few_step", "--evals 1 2 4 20 50", "--batches 16 64 256",
                "--sweep", "--compile both", f"--out {out}/downscale_few_step_cuda.json", "--budget-s 255"):
        assert arg in bench_line, arg
    assert not out.exists()  # nothing ran, nothing written


def test_budget_is_passed_to_the_benchmark():
    done = run("--dry-run", "--budget-s", "300")
    bench = next(line for line in done.stdout.splitlines() if "bench_downscale.py" in line)
    # 300 - 3/8 * 300 (112) for the tests - 45 s margin = 143 s for the benchmark, hard limit 10 s before the end
    assert re.search(r"--budget-s 143$", bench) and bench.startswith("timeout 178 ")
    skip = run("--dry-run", "--budget-s=300", "--skip-tests").stdout
    assert "pytest" not in skip and re.search(r"--budget-s 255$", skip.strip().splitlines()[-1])
    assert "--out benchmarks/results/downscale_few_step_cuda.json" in skip


def test_dry_run_with_allow_cpu_plans_the_quick_cpu_benchmark():
    done = run("--dry-run", "--allow-cpu")
    bench = next(line for line in done.stdout.splitlines() if "bench_downscale.py" in line)
    assert "--device cpu" in bench and "--quick" in bench and "downscale_few_step_cpu_quick.json" in bench
    assert "--device cuda" not in done.stdout


@pytest.mark.parametrize("args, message", [
    (["--budget-s", "eight"], "whole seconds"),
    (["--budget-s", "60"], "too short"),
    (["--budget-s"], "needs a value"),
    (["--out"], "needs a value"),
    (["--out="], "needs a folder"),
    (["--gpu"], "unknown argument '--gpu'"),
])
def test_bad_arguments_exit_2_with_a_message(args, message):
    done = run("--dry-run", *args)
    assert done.returncode == 2
    assert message in done.stderr and "usage:" in done.stderr
    assert done.stdout == ""


def test_without_cuda_it_stops_with_a_clear_error(tmp_path):
    """The real interpreter with every GPU hidden: exit 3, nothing written, the way out named."""
    out = tmp_path / "results"
    done = run("--out", str(out), env={"PYTHON": sys.executable, "CUDA_VISIBLE_DEVICES": ""}, timeout=120)
    assert done.returncode == 3, (done.stdout, done.stderr)
    assert "no CUDA device" in done.stderr and "--allow-cpu" in done.stderr and "--dry-run" in done.stderr
    assert not out.exists()


def test_without_cuda_the_stand_in_also_stops(fake_python, tmp_path):
    env, log = fake_python
    done = run("--out", str(tmp_path / "r"), env={**env, "FAKE_CUDA_RC": "1"})
    assert done.returncode == 3 and "no CUDA device" in done.stderr
    calls = log.read_text().splitlines()
    assert len(calls) == 1 and calls[0].startswith("-c ")  # only the CUDA check ran


def test_a_run_calls_the_tests_then_the_benchmark_with_the_budget_left(fake_python, tmp_path):
    env, log = fake_python
    out = tmp_path / "results"
    done = run("--out", str(out), "--budget-s", "200", env=env)
    assert done.returncode == 0, done.stderr
    calls = log.read_text().splitlines()
    assert calls[0].startswith("-c ") and "cuda.is_available" in calls[0]
    assert calls[1].startswith("-m pytest -m gpu")
    bench = calls[2]
    assert bench.startswith("benchmarks/bench_downscale.py --device cuda --sections few_step")
    budget = int(re.search(r"--budget-s (\d+)$", bench).group(1))
    assert 200 - 75 - 45 <= budget <= 200 - 45  # what the (instant) tests left, less the margin
    assert f"--out {out}/downscale_few_step_cuda.json" in bench
    summary = json.loads((out / "downscale_gpu_check.json").read_text())
    assert summary["device"] == "cuda" and summary["budget_s"] == 200
    assert summary["tests"]["exit_status"] == 0 and summary["benchmark"]["exit_status"] == 0
    assert summary["benchmark"]["command"].endswith(f"--budget-s {budget}")
    assert "fake pytest" in (out / "downscale_gpu_check_pytest.log").read_text()


def test_failing_tests_still_run_the_benchmark_and_exit_1(fake_python, tmp_path):
    env, log = fake_python
    out = tmp_path / "results"
    done = run("--out", str(out), env={**env, "FAKE_PYTEST_RC": "1"})
    assert done.returncode == 1
    assert len(log.read_text().splitlines()) == 3  # CUDA check, pytest, benchmark
    summary = json.loads((out / "downscale_gpu_check.json").read_text())
    assert summary["tests"]["exit_status"] == 1 and summary["benchmark"]["exit_status"] == 0


def test_a_failing_benchmark_exits_1(fake_python, tmp_path):
    env, _ = fake_python
    out = tmp_path / "results"
    done = run("--out", str(out), "--skip-tests", env={**env, "FAKE_BENCH_RC": "7"})
    assert done.returncode == 1
    summary = json.loads((out / "downscale_gpu_check.json").read_text())
    assert summary["tests"]["exit_status"] is None and summary["benchmark"]["exit_status"] == 7


def test_allow_cpu_runs_the_quick_cpu_benchmark_without_cuda(fake_python, tmp_path):
    env, log = fake_python
    out = tmp_path / "results"
    done = run("--allow-cpu", "--skip-tests", "--out", str(out), env={**env, "FAKE_CUDA_RC": "1"})
    assert done.returncode == 0, done.stderr
    assert "--allow-cpu" in done.stderr
    bench = log.read_text().splitlines()[-1]
    assert "--device cpu" in bench and "--quick" in bench and "downscale_few_step_cpu_quick.json" in bench
    assert json.loads((out / "downscale_gpu_check.json").read_text())["device"] == "cpu"
