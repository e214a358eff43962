"""Rego evaluation has no network (or host) built-ins (issue #9): policies that name them are
refused in any syntax, and evaluating them anyway sends nothing to a loopback server."""

from __future__ import annotations

import http.server
import os
import subprocess
import sys
import textwrap
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from mlhunt.errors import InputError
from mlhunt.scan.manifests import PolicyError, load_policies, scan_manifest
from mlhunt.scan.rego_sandbox import refused_builtin

MANIFEST = "apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec: {containers: [{name: c}]}\n"


class _Counter(http.server.BaseHTTPRequestHandler):
    hits: list[str]

    def do_GET(self) -> None:
        self.hits.append(self.path)
        self.send_response(200)
        self.end_headers()
        self.wfile.write(b'{"ok": true}')

    do_POST = do_GET

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def loopback() -> Iterator[tuple[str, list[str]]]:
    """A loopback HTTP server that counts the requests it receives."""
    hits: list[str] = []
    handler = type("H", (_Counter,), {"hits": hits})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/", hits
    finally:
        server.shutdown()
        server.server_close()


def _policy(body: str) -> str:
    return textwrap.dedent(
        """\
        package main

        import rego.v1

        # METADATA
        # custom: {id: ACME-EXFIL, severity: high}
        deny contains msg if {
        %s
        }
        """
    ) % textwrap.indent(textwrap.dedent(body).strip(), "    ")


def _dir(tmp_path: Path, source: str, name: str = "p.rego") -> Path:
    pdir = tmp_path / "policies"
    pdir.mkdir(parents=True, exist_ok=True)
    (pdir / name).write_text(source)
    return pdir


CALLS = {
    "http.send": 'r := http.send({"method": "GET", "url": "URL"})\nmsg := sprintf("%v", [r])',
    "http[send]": 'r := http["send"]({"method": "GET", "url": "URL"})\nmsg := sprintf("%v", [r])',
    "lookup": 'a := net.lookup_ip_addr("localhost")\nmsg := sprintf("%v", [a])',
    "lookup[]": 'a := net["lookup_ip_addr"]("localhost")\nmsg := sprintf("%v", [a])',
    "runtime": 'msg := sprintf("%v", [opa.runtime().env])',
    "runtime[]": 'msg := sprintf("%v", [opa["runtime"]().env])',
    "runtime spaced": 'msg := sprintf("%v", [opa . runtime().env])',
    "aws sign": 'r := providers.aws.sign_req({}, {}, 0)\nmsg := "x"',
}


@pytest.mark.parametrize("call", list(CALLS))
def test_policies_naming_network_or_host_builtins_are_refused(
    tmp_path: Path, loopback: tuple[str, list[str]], call: str
) -> None:
    url, hits = loopback
    pdir = _dir(tmp_path, _policy(CALLS[call].replace("URL", url)))
    manifest = tmp_path / "pod.yaml"
    manifest.write_text(MANIFEST)
    with pytest.raises(PolicyError) as err:
        scan_manifest(manifest, policy_dirs=[pdir])
    assert isinstance(err.value, InputError)
    assert err.value.file == str(pdir / "p.rego") and err.value.line
    assert hits == []


def test_import_alias_and_library_files_are_refused_too(tmp_path: Path) -> None:
    aliased = _policy('msg := sprintf("%v", [o.runtime().env])').replace(
        "import rego.v1\n", "import rego.v1\nimport opa as o\n"
    )
    with pytest.raises(PolicyError, match="opa"):
        load_policies([_dir(tmp_path / "a", aliased)])
    # a library (no deny rule) in a user folder is loaded beside every policy: checked as well
    lib = 'package lib.net\n\nimport rego.v1\n\nget(u) := http.send({"method": "GET", "url": u})\n'
    with pytest.raises(PolicyError, match=r"http\.send"):
        load_policies([_dir(tmp_path / "b", lib, "lib.rego")])
    # an OPA capabilities file does not re-enable anything: mlhunt never reads one
    pdir = _dir(
        tmp_path / "c", _policy('r := http.send({"method": "GET", "url": "x"})\nmsg := "x"')
    )
    (pdir / "capabilities.json").write_text('{"builtins": [{"name": "http.send"}]}')
    with pytest.raises(PolicyError):
        load_policies([pdir])


def test_mentions_that_are_not_calls_are_allowed(tmp_path: Path) -> None:
    source = _policy(
        """
        # http.send and opa.runtime() are not used here
        input.spec.http.port == 80
        net.cidr_contains("10.0.0.0/8", "10.1.2.3")
        msg := "do not call http.send(...) or opa.runtime() in policies"
        """
    )
    assert refused_builtin(source) is None
    assert [p.id for p in load_policies([_dir(tmp_path, source)]) if p.id == "ACME-EXFIL"]


def test_rego_engine_itself_sends_nothing(loopback: tuple[str, list[str]]) -> None:
    """Below mlhunt's check: rego-cpp, the engine, has no network built-ins at all."""
    from regopy import Interpreter

    url, hits = loopback
    for query in (
        f'x := http.send({{"method": "GET", "url": "{url}"}})',
        f'x := http["send"]({{"method": "POST", "url": "{url}", "body": {{}}}})',
        'x := net.lookup_ip_addr("localhost")',
    ):
        assert str(Interpreter().query(query)) == "undefined"
    assert hits == []


def test_why_opa_runtime_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    """The engine does hand the process environment to ``opa.runtime()``: refusing it is what
    keeps a CI token out of a policy's finding message."""
    from regopy import Interpreter

    monkeypatch.setenv("MLHUNT_TEST_CI_TOKEN", "s3cr3t-value")
    assert "s3cr3t-value" in str(Interpreter().query("x := opa.runtime().env"))
    source = _policy('msg := opa.runtime().env["MLHUNT_TEST_CI_TOKEN"]')
    assert refused_builtin(source) == ("opa.runtime", source.index("opa.runtime"))


def test_cli_refuses_the_folder_with_exit_2(
    tmp_path: Path, loopback: tuple[str, list[str]]
) -> None:
    url, hits = loopback
    pdir = _dir(tmp_path, _policy(CALLS["http.send"].replace("URL", url)))
    manifest = tmp_path / "pod.yaml"
    manifest.write_text(MANIFEST)
    out = subprocess.run(
        [sys.executable, "-m", "mlhunt", "scan", str(manifest), "--policy", str(pdir)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env={**os.environ, "NO_COLOR": "1"},
    )
    assert out.returncode == 2, out.stderr
    assert out.stderr.count("\n") == 1 and "p.rego" in out.stderr and "http.send" in out.stderr
    assert hits == []


def test_metadata_lists_are_strings(tmp_path: Path) -> None:
    """Mitigations with ': ' must be quoted in METADATA, or YAML turns them into mappings that
    would render as Python dicts: the shipped ones are strings, and a mapping is refused."""
    for policy in load_policies():
        for text in policy.mitigations:
            assert isinstance(text, str) and not text.startswith("{"), (policy.id, text)
    privileged = next(p for p in load_policies() if p.id == "MLH-K8S-PRIVILEGED")
    assert privileged.mitigations[0].startswith("Remove privileged: true;")
    source = textwrap.dedent(
        """\
        package main

        import rego.v1

        # METADATA
        # custom:
        #   id: ACME-BAD
        #   severity: low
        #   mitigations:
        #     - Set privileged: false
        deny contains msg if {
            input.kind == "Pod"
            msg := "x"
        }
        """
    )
    with pytest.raises(PolicyError, match="quote"):
        load_policies([_dir(tmp_path, source)])
