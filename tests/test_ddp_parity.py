"""DDP parity on real images: the first step of 2 processes equals 1 process's, rank by rank (float64)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_first_step_of_two_processes_equals_one_on_real_images(shared_data: Path) -> None:
    """Same images per rank, and gradients after DDP's averaging equal to float64 rounding.

    In float32 the same comparison differs by about 1% (as much as float32 differs from float64
    in one process): rounding that ReLU6 kinks amplify (``benchmarks/ddp_parity.py``).
    """
    data = shared_data / "flowers17" / "valid"
    command = [sys.executable, str(REPO / "benchmarks" / "ddp_parity.py"), "--quick", "--data", str(data)]
    done = subprocess.run(
        [*command, "--width", "0.25", "--resolution", "64", "--batch-size", "16"], capture_output=True, text=True
    )
    result = json.loads(done.stdout.strip().splitlines()[-1])
    median, largest = result["float64_two_vs_one"]
    assert result["same_images"] and median < 1e-10 and largest < 1e-8, result
