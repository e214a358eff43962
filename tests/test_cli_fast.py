"""``mlhunt scan`` and ``mlhunt model`` without typer (mlhunt.cli_fast) behave as the typer
commands: same options, same defaults, same report; anything else is left to typer; and ``scan``
imports no CLI framework (``model`` needs pydantic for the system description)."""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import textwrap
from collections.abc import Callable
from pathlib import Path

import pytest
import typer.main
from typer.testing import CliRunner

from mlhunt.cli import app
from mlhunt.cli_fast import fast_main, model_parser, scan_parser

EVIL = b"cos\nsystem\n(S'echo pwned'\ntR."  # protocol 0: os.system('echo pwned'), never loaded


def _tree(tmp: Path) -> Path:
    root = tmp / "tree"
    root.mkdir()
    (root / "model.pkl").write_bytes(EVIL)
    key = "AKIA" + "QWERTYUIOPASDFGH"  # split: this file itself holds no key-shaped string
    (root / "config.yaml").write_text(f"aws_access_key_id: {key}\n")
    return root


def _typer_options(name: str) -> dict[str, object]:
    command = typer.main.get_command(app).commands[name]  # type: ignore[attr-defined]
    out: dict[str, object] = {}
    for param in command.params:
        for opt in [*param.opts, *getattr(param, "secondary_opts", [])]:
            out[opt] = param.default
    return out


def _fast_options(parser: argparse.ArgumentParser) -> dict[str, object]:
    out: dict[str, object] = {}
    for action in parser._actions:
        if isinstance(action, argparse.BooleanOptionalAction):
            names = action.option_strings
        else:
            names = action.option_strings or [action.dest]
        for name in names:
            out[name] = action.default
    return out


@pytest.mark.parametrize(
    ("name", "parser", "argument"),
    [("scan", scan_parser, "paths"), ("model", model_parser, "system")],
)
def test_same_options_and_defaults_as_the_typer_command(
    name: str, parser: Callable[[], argparse.ArgumentParser], argument: str
) -> None:
    typer_opts, fast_opts = _typer_options(name), _fast_options(parser())
    typer_opts[argument] = None  # the argument: typer names it by its parameter
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
    code = fast_main(args)
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
        ["hunt", "x.jsonl"],
        ["model"],
        ["model", "a.yaml", "b.yaml"],
        ["scan"],
        ["scan", "--help"],
        ["scan", "x", "--no-such-option"],
        ["scan", "x", "--max-depth", "deep"],
        ["scan", "x", "--form", "json"],  # typer takes no abbreviations
        [],
    ],
)
def test_everything_else_is_left_to_typer(args: list[str]) -> None:
    assert fast_main(args) is None


def test_bad_input_is_one_line_and_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert fast_main(["scan", str(tmp_path / "nope")]) == 2
    assert capsys.readouterr().err.strip().startswith("error: ")
    assert fast_main(["model", str(tmp_path / "nope.yaml")]) == 2
    assert capsys.readouterr().err.strip().startswith("error: ")


@pytest.mark.parametrize(
    "extra", [["-f", "json"], ["-f", "sarif", "--fail-on", "high"], ["-f", "markdown"]]
)
def test_model_same_report_as_the_typer_command(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], extra: list[str]
) -> None:
    system = Path(__file__).resolve().parent.parent / "examples" / "loan-approval" / "system.yaml"
    args = ["model", str(system), *extra, "--dfd", str(tmp_path / "fast.mmd")]
    code = fast_main(args)
    fast_out = capsys.readouterr().out
    args[-1] = str(tmp_path / "typer.mmd")
    result = CliRunner().invoke(app, args)
    assert code == result.exit_code
    assert fast_out == result.stdout
    assert (tmp_path / "fast.mmd").read_text() == (tmp_path / "typer.mmd").read_text()
    assert code == (1 if "--fail-on" in extra else 0)  # the example has high findings


@pytest.mark.parametrize(
    ("command", "unwanted"),
    [
        ("scan", {"typer", "pydantic", "rich", "click"}),
        ("model", {"typer", "rich", "click"}),  # the system description is pydantic
    ],
)
def test_no_cli_framework_is_imported(tmp_path: Path, command: str, unwanted: set[str]) -> None:
    (tmp_path / "model.pkl").write_bytes(EVIL)
    system = Path(__file__).resolve().parent.parent / "examples" / "loan-approval" / "system.yaml"
    target = str(tmp_path) if command == "scan" else str(system)
    code = textwrap.dedent(
        f"""
        import os, sys
        sys.argv = ["mlhunt", {command!r}, {target!r}, "-f", "json"]
        os._exit = sys.exit  # main() ends the process with os._exit: raise instead, to look
        from mlhunt.__main__ import main
        try:
            main()
        except SystemExit as exc:
            assert exc.code == 0, exc.code
        loaded = {{m.split(".")[0] for m in sys.modules}}
        sys.stderr.write(" ".join(sorted(loaded & set({sorted(unwanted)!r}))))
        """
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["summary"]["total"] >= 1
    assert r.stderr == ""


def test_whole_process_exit_code_and_complete_output(tmp_path: Path) -> None:
    """The fast path ends with os._exit (no interpreter teardown): the report on stdout and in
    ``-o`` is complete and the exit code is the command's."""
    root = _tree(tmp_path)
    out = tmp_path / "report.sarif"
    cmd = [sys.executable, "-m", "mlhunt", "scan", str(root), "--fail-on", "high"]
    piped = subprocess.run([*cmd, "-f", "json"], capture_output=True, text=True, timeout=120)
    assert piped.returncode == 1, piped.stderr
    doc = json.loads(piped.stdout)
    assert {f["rule_id"] for f in doc["findings"]} >= {"MLH-SCAN-PICKLE-DANGEROUS-GLOBAL"}
    written = subprocess.run([*cmd, "-o", str(out)], capture_output=True, text=True, timeout=120)
    assert written.returncode == 1, written.stderr
    assert json.loads(out.read_text())["runs"][0]["results"]
    clean = subprocess.run(
        [sys.executable, "-m", "mlhunt", "scan", str(tmp_path / "nope")],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert clean.returncode == 2 and "no such file" in clean.stderr
