"""``workstation bundle sign | verify``: exit codes, reasons on stderr, the ``--json`` schema."""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
from pathlib import Path

import keyring
import pytest
from bundle_kit import Publisher, source_tree
from keyring.backends import fail

from workstation import cli_bundle
from workstation.security.bundle import write_bundle
from workstation.security.keystore import PASSPHRASE_ENV, Argon2Params, KeyStore
from workstation.security.trust import utcnow

SECRET = "correct horse battery"
FAST = Argon2Params(memory_kib=64, iterations=1, lanes=1)
OK_KEYS = {
    "ok", "path", "kind", "name", "version", "created", "expires", "files", "bytes",
    "trusted_by", "signers", "requirements", "warnings", "trust_root_version",
}  # fmt: skip


@pytest.fixture(autouse=True)
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> object:
    """A private workstation home, a passphrase in the environment, no OS keyring."""
    monkeypatch.setenv("WORKSTATION_HOME", str(tmp_path / "home"))
    monkeypatch.setenv(PASSPHRASE_ENV, SECRET)
    monkeypatch.setattr(sys.stdin, "isatty", lambda: False, raising=False)
    before = keyring.get_keyring()
    keyring.set_keyring(fail.Keyring())
    yield tmp_path / "home"
    keyring.set_keyring(before)


def bundle_cli(*argv: str) -> int:
    """Parse ``workstation bundle ARGV`` with a parser built from :func:`cli_bundle.add_parser`."""
    parser = argparse.ArgumentParser(prog="workstation")
    cli_bundle.add_parser(parser.add_subparsers(dest="command"))
    try:
        args = parser.parse_args(["bundle", *argv])
    except SystemExit as stop:
        return stop.code if isinstance(stop.code, int) else 2
    return cli_bundle.run(args)


@pytest.fixture
def setup(tmp_path: Path) -> dict[str, Path]:
    """A publisher key store, a trust root naming its public key for models, a source tree."""
    pub = Publisher.make()
    store = KeyStore.create(tmp_path / "publisher", passphrase=SECRET, kdf=FAST)
    pub.keys["model"] = [store.signing_key()]
    pub.expires = utcnow() + dt.timedelta(days=30)
    return {
        "root": pub.write_root(tmp_path / "root.json"),
        "key": store.path,
        "src": source_tree(tmp_path / "weights"),
        "out": tmp_path / "model.zip",
    }


def test_sign_and_verify(setup: dict[str, Path], capsys: pytest.CaptureFixture[str]) -> None:
    out, root = str(setup["out"]), str(setup["root"])
    argv = ["sign", str(setup["src"]), "--kind", "model", "--out", out, "--key", str(setup["key"])]
    assert bundle_cli(*argv, "--version", "2.0.1", "--expires", "10") == 0
    written = capsys.readouterr().out
    assert written.startswith(f"wrote {out}: model weights 2.0.1, 3 file(s), 3,520 bytes")

    assert bundle_cli("verify", out, "--trust-root", root) == 0
    captured = capsys.readouterr()
    assert captured.out.startswith("verified: model weights 2.0.1\n")
    assert "trusted by: trust root" in captured.out and captured.err == ""

    assert bundle_cli("verify", out, "--trust-root", root, "--json", "--kind", "model") == 0
    result = json.loads(capsys.readouterr().out)
    assert set(result) == OK_KEYS and result["ok"] is True
    assert (result["files"], result["bytes"], result["trusted_by"]) == (3, 3520, "trust root")
    assert result["signers"][0]["role"] == "model"


def test_refusals_exit_1_with_the_reason(
    setup: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    out, root = str(setup["out"]), str(setup["root"])
    assert bundle_cli("sign", str(setup["src"]), "--kind", "model", "--out", out,
                      "--key", str(setup["key"]), "--version", "1.2.0") == 0  # fmt: skip
    capsys.readouterr()

    assert bundle_cli("verify", out, "--trust-root", root, "--kind", "plugin") == 1
    assert "expected a plugin bundle, but this is a model bundle" in capsys.readouterr().err

    assert bundle_cli("verify", out, "--trust-root", root, "--installed", "1.10.0") == 1
    assert "rollback refused" in capsys.readouterr().err
    assert (
        bundle_cli(
            "verify", out, "--trust-root", root, "--installed", "1.10.0", "--allow-downgrade"
        )
        == 0
    )
    assert "warning: downgrade: weights 1.2.0 is older" in capsys.readouterr().err

    data = bytearray(setup["out"].read_bytes())
    data[100] ^= 1  # a byte of payload/sub/notes.txt
    setup["out"].write_bytes(bytes(data))
    assert bundle_cli("verify", out, "--trust-root", root, "--json") == 1
    captured = capsys.readouterr()
    failure = json.loads(captured.out)
    assert set(failure) == {"ok", "path", "error", "error_type"} and failure["ok"] is False
    assert failure["error_type"] == "BundleError"
    assert f"error: {out} refused: {failure['error']}" in captured.err

    assert bundle_cli("verify", out) == 1  # the shipped root does not know this key
    assert "not trusted for the model role" in capsys.readouterr().err


def test_expired_bundle(setup: dict[str, Path], capsys: pytest.CaptureFixture[str]) -> None:
    key = KeyStore.open(setup["key"].parent, passphrase=SECRET).signing_key()
    write_bundle(
        setup["src"], setup["out"], kind="model", name="old", version="1.0.0", signing_keys=[key],
        created=utcnow() - dt.timedelta(days=10), expires=dt.timedelta(days=5),
    )  # fmt: skip
    out, root = str(setup["out"]), str(setup["root"])
    assert bundle_cli("verify", out, "--trust-root", root) == 1
    assert "--allow-expired" in capsys.readouterr().err
    assert bundle_cli("verify", out, "--trust-root", root, "--allow-expired") == 0
    assert "warning: expired on" in capsys.readouterr().err


def test_own_key_signs_by_default_and_verifies_as_local(
    home: Path, setup: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    out, root = str(setup["out"]), str(setup["root"])
    assert bundle_cli("sign", str(setup["src"]), "--kind", "model", "--out", out) == 1
    assert "no key store" in capsys.readouterr().err
    own = KeyStore.create(home / "keys", passphrase=SECRET, kdf=FAST).signing_key()
    assert bundle_cli("sign", str(setup["src"]), "--kind", "plugin", "--out", out) == 0
    assert own.key_id in capsys.readouterr().out
    assert bundle_cli("verify", out, "--trust-root", root, "--json") == 0
    result = json.loads(capsys.readouterr().out)
    assert result["trusted_by"] == "local key"
    assert result["signers"] == [{"key_id": own.key_id, "role": "plugin", "source": "local key"}]
    assert bundle_cli("verify", out, "--trust-root", root) == 0
    assert "local key (trusted on this workstation only" in capsys.readouterr().out


def test_usage_errors(setup: dict[str, Path], capsys: pytest.CaptureFixture[str]) -> None:
    assert bundle_cli() == 2
    assert bundle_cli("sign", str(setup["src"]), "--out", "x.zip") == 2  # no --kind
    assert bundle_cli("sign", str(setup["src"]), "--kind", "driver", "--out", "x.zip") == 2
    assert (
        bundle_cli("sign", str(setup["src"]), "--kind", "model", "--out", "x", "--expires", "0")
        == 2
    )
    assert bundle_cli("verify") == 2
    capsys.readouterr()
    assert bundle_cli("--help") == 0
    assert "sign" in capsys.readouterr().out


def test_wired_into_the_workstation_command(
    setup: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    from workstation import cli

    try:
        cli._parser().parse_args(["bundle", "verify", "x"])
    except SystemExit:
        capsys.readouterr()
        pytest.skip("`bundle` is not wired into workstation.cli yet")
    out = str(setup["out"])
    key = str(setup["key"])
    assert (
        cli.main(
            ["bundle", "sign", str(setup["src"]), "--kind", "model", "--out", out, "--key", key]
        )
        == 0
    )
    assert cli.main(["bundle", "verify", out, "--trust-root", str(setup["root"])]) == 0
    assert cli.main(["bundle"]) == 2
