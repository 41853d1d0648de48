"""``mobilenet profile``, ``paper`` and ``models``, and the one-line errors of the CLI."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from mobilenet.cli import main


def _run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    try:
        code = main(list(argv))
    except SystemExit as exit_:  # argparse usage errors
        code = exit_.code
    out, err = capsys.readouterr()
    return code, out, err


def test_profile_json(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = _run(capsys, "profile", "mobilenet_v1", "--width-mult", "0.5", "--resolution", "160", "--json")
    data = json.loads(out)
    assert code == 0 and isinstance(data["params"], int) and isinstance(data["mult_adds"], int)
    assert data["mult_adds"] == pytest.approx(76.5e6, rel=1e-3)
    assert len(data["layers"]) == 28 and data["layers"][0]["in_shape"] == [3, 160, 160]
    assert data["flops"] == 2 * data["mult_adds"]


def test_profile_table(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = _run(capsys, "profile", "mobilenet_v1_100_224")
    assert code == 0
    assert "568.74M mult-adds" in out and "blocks.12.pw.conv" in out
    assert "pointwise        94.86" in out


def test_paper_exits_0_and_reports_errata(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = _run(capsys, "paper")
    assert code == 0
    assert "TF-slim lists" not in out  # the note names the erratum instead
    assert "317" in out and "325" in out and "erratum" in out
    code, out, _ = _run(capsys, "paper", "--json")
    data = json.loads(out)
    assert code == 0 and data["ok"] is True and len(data["checks"]) > 100


def test_models_lists_registry(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = _run(capsys, "models", "mobilenet_v1*", "--json")
    names = [m["name"] for m in json.loads(out)["models"]]
    assert code == 0 and len(names) == 19 and "mobilenet_v1_075_192" in names  # the paper's 3 networks + 16 variants


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["profile", "mobilenet_v9"], "unknown model 'mobilenet_v9'"),
        (["profile", "--width-mult", "0"], "width_mult must be > 0"),
        (["profile", "--resolution", "16"], "smaller than the minimum 32x32"),
        (["profile", "--resolution", "abc"], "invalid int value"),
        (["frobnicate"], "invalid choice"),
    ],
)
def test_errors_are_one_line_with_status_2(capsys: pytest.CaptureFixture[str], argv: list[str], message: str) -> None:
    code, out, err = _run(capsys, *argv)
    assert code == 2 and out == ""
    assert message in err and len(err.strip().splitlines()) == 1 and "Traceback" not in err


def test_module_entry_point() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "mobilenet", "profile", "nope"], capture_output=True, text=True, check=False
    )
    assert result.returncode == 2 and result.stderr.count("\n") == 1
