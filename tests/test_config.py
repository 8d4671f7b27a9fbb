"""The pipeline TOML: one file for every command, flags override it, typos are errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from socket_edge.config import section
from socket_edge.errors import SocketEdgeError
from socket_edge.export.pipeline import ExportOptions

TEAM = """
[synth]
per-class = 3
size = 32

[export]
calib = "data/depth/target/train"
batch = [1, 4]
calib_method = "percentile"
"""


def test_sections_are_checked_and_coerced(tmp_path):
    cfg = tmp_path / "team.toml"
    cfg.write_text(TEAM)
    export = section(cfg, "export", ExportOptions)
    assert export == {
        "calib": Path("data/depth/target/train"),
        "batch": (1, 4),
        "calib_method": "percentile",
    }
    assert section(cfg, "bench") == {}
    assert section(None, "export") == {}
    cfg.write_text("[exprot]\nopset = 17\n")
    with pytest.raises(SocketEdgeError, match=r"unknown tables \['exprot'\]"):
        section(cfg, "export", ExportOptions)
    cfg.write_text("[export]\ncalib_sise = 10\n")
    with pytest.raises(SocketEdgeError, match=r"\[export\] has unknown settings \['calib_sise'\]"):
        section(cfg, "export", ExportOptions)
    cfg.write_text("[export\n")
    with pytest.raises(SocketEdgeError, match="not valid TOML"):
        section(cfg, "export", ExportOptions)


def test_cli_flags_override_the_file(cli, tmp_path):
    cfg = tmp_path / "team.toml"
    cfg.write_text(TEAM)
    r = cli(
        "synth", str(tmp_path / "s"), "--config", str(cfg), "--per-class", "2", "--workers", "1"
    )
    assert r.returncode == 0, r.stderr
    manifest = json.loads((tmp_path / "s" / "synth.json").read_text())
    assert manifest["config"]["per_class"] == 2 and manifest["config"]["size"] == 32


def test_file_values_are_checked_like_flags(cli, tmp_path):
    """A choice outside the flag's Enum, or a bad value, names the file and its table."""
    cfg = tmp_path / "team.toml"
    cfg.write_text('[synth]\nti_shapes = "bogus"\n')
    r = cli("synth", str(tmp_path / "s"), "--config", str(cfg))
    assert r.returncode == 2
    assert "team.toml: [synth] ti_shapes must be one of default, unlike, got 'bogus'" in r.stderr
    assert not (tmp_path / "s").exists()


def test_help_shows_the_dataclass_defaults(cli, monkeypatch):
    from socket_edge.export.pipeline import ExportOptions

    monkeypatch.setenv("COLUMNS", "250")
    text = cli("export", "--help").stdout
    assert f"[default: {ExportOptions.opset}]" in text
    assert "[default: 1,8,32]" in text and "[default: entropy]" in text


def test_help_defaults_come_from_the_default_map_of_its_context_only(monkeypatch, capsys):
    """--help draws the dataclass defaults through Click's default_map; the options themselves
    keep default None (= not given), so a command parsed after a --help still sees its flags
    as not given."""
    import click
    import typer

    from socket_edge.cli.main import app

    monkeypatch.setenv("COLUMNS", "250")
    group = typer.main.get_command(app)
    export = group.commands["export"]
    with click.Context(export, info_name="export") as ctx:
        export.format_help(ctx, click.HelpFormatter())  # Typer's rich help prints it
        assert ctx.default_map and ctx.default_map["calib_method"] == "entropy"
    text = capsys.readouterr().out
    assert "[default: entropy]" in text and "[default: 1,8,32]" in text
    params = {p.name: p for p in export.params}
    assert params["calib_method"].default is None and params["batch"].default is None
    with click.Context(export, info_name="export") as fresh:
        assert fresh.default_map is None
        assert params["calib_method"].get_default(fresh) is None
