"""Assertions shared by the test modules."""

from __future__ import annotations


def assert_one_line_error(result, *fragments: str) -> None:
    """A CLI run failed with exactly one 'error:' line containing ``fragments`` and no traceback."""
    assert result.returncode != 0, result.stdout
    assert "Traceback" not in result.stderr, result.stderr
    lines = [ln for ln in result.stderr.strip().splitlines() if ln.startswith("error:")]
    assert len(lines) == 1, result.stderr
    for fragment in fragments:
        assert fragment in lines[0], lines[0]
