"""scripts/bench_threads.py: the env timing and the command line's checks."""

from __future__ import annotations

from pathlib import Path

import pytest

from scripts import bench_threads


def test_a_timing_waits_for_every_process_then_reports_a_rate(tmp_path: Path) -> None:
    rate = bench_threads.time_env(4, 2, 0.05, str(tmp_path), 1)
    assert rate > 0
    assert len(list(tmp_path.iterdir())) == 1  # its ready file


@pytest.mark.parametrize(
    ("flag", "value", "message"),
    [("--batch", "0", "--batch: must be >= 1"), ("--seconds", "0", "--seconds: must be > 0")],
)
def test_bad_arguments_are_refused(
    flag: str, value: str, message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit):
        bench_threads.main(["--base", "HEAD", flag, value])
    assert message in capsys.readouterr().err
