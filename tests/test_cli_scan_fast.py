"""``mlhunt scan`` without typer (mlhunt.cli_scan) behaves as the typer command: same options,
same defaults, same report; anything else is left to typer; and it imports no CLI framework."""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import typer.main
from typer.testing import CliRunner

from mlhunt.cli import app
from mlhunt.cli_scan import fast_parser, fast_scan

EVIL = b"cos\nsystem\n(S'echo pwned'\ntR."  # protocol 0: os.system('echo pwned'), never loaded


def _tree(tmp: Path) -> Path:
    root = tmp / "tree"
    root.mkdir()
    (root / "model.pkl").write_bytes(EVIL)
    key = "AKIA" + "QWERTYUIOPASDFGH"  # split: this file itself holds no key-shaped string
    (root / "config.yaml").write_text(f"aws_access_key_id: {key}\n")
    return root


def _typer_options() -> dict[str, object]:
    command = typer.main.get_command(app).commands["scan"]  # type: ignore[attr-defined]
    out: dict[str, object] = {}
    for param in command.params:
        for opt in [*param.opts, *getattr(param, "secondary_opts", [])]:
            out[opt] = param.default
    return out


def _fast_options() -> dict[str, object]:
    out: dict[str, object] = {}
    for action in fast_parser()._actions:
        if isinstance(action, argparse.BooleanOptionalAction):
            names = action.option_strings
        else:
            names = action.option_strings or [action.dest]
        for name in names:
            out[name] = action.default
    return out


def test_same_options_and_defaults_as_the_typer_command() -> None:
    typer_opts, fast_opts = _typer_options(), _fast_options()
    typer_opts["paths"] = None  # the argument: typer names it by its parameter
    assert set(fast_opts) == set(typer_opts)
    for name, default in fast_opts.items():
        assert default == typer_opts[name], name


@pytest.mark.parametrize(
    "extra", [[], ["--no-secrets"], ["--fail-on", "high"], ["--allow", "os.system"]]
)
def test_same_report_as_the_typer_command(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], extra: list[str]
) -> None:
    args = ["scan", str(_tree(tmp_path)), "-f", "json", *extra]
    code = fast_scan(args)
    fast_doc = json.loads(capsys.readouterr().out)
    result = CliRunner().invoke(app, args)
    assert code == result.exit_code
    assert fast_doc == json.loads(result.stdout)
    rules = {f["rule_id"] for f in fast_doc["findings"]}
    assert "MLH-SCAN-PICKLE-DANGEROUS-GLOBAL" in rules
    assert ("MLH-SECRET-AWS-ACCESS-KEY" in rules) == ("--no-secrets" not in extra)
    if extra == ["--fail-on", "high"]:
        assert code == 1  # the pickle is critical


@pytest.mark.parametrize(
    "args",
    [
        ["model", "x.yaml"],
        ["scan"],
        ["scan", "--help"],
        ["scan", "x", "--no-such-option"],
        ["scan", "x", "--max-depth", "deep"],
        ["scan", "x", "--form", "json"],  # typer takes no abbreviations
        [],
    ],
)
def test_everything_else_is_left_to_typer(args: list[str]) -> None:
    assert fast_scan(args) is None


def test_bad_input_is_one_line_and_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert fast_scan(["scan", str(tmp_path / "nope")]) == 2
    assert capsys.readouterr().err.strip().startswith("error: ")


def test_scan_imports_no_cli_framework(tmp_path: Path) -> None:
    (tmp_path / "model.pkl").write_bytes(EVIL)
    code = textwrap.dedent(
        f"""
        import sys
        sys.argv = ["mlhunt", "scan", {str(tmp_path)!r}, "-f", "json"]
        from mlhunt.__main__ import main
        try:
            main()
        except SystemExit as exc:
            assert exc.code == 0, exc.code
        loaded = {{m.split(".")[0] for m in sys.modules}}
        sys.stderr.write(" ".join(sorted(loaded & {{"typer", "pydantic", "rich", "click"}})))
        """
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["summary"]["total"] >= 1
    assert r.stderr == ""
