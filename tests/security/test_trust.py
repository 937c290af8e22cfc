"""Trust roots: roles, thresholds, expiry, revocation, rotation, local trust, the shipped root."""

from __future__ import annotations

import json
import os
from pathlib import Path

import keyring
import pytest
from bundle_kit import DAY, NOW, Publisher
from keyring.backends import fail

from workstation.security import trust
from workstation.security.errors import TrustError
from workstation.security.keystore import PASSPHRASE_ENV, Argon2Params, KeyStore
from workstation.security.sign import HybridSigningKey
from workstation.security.trust import LocalTrust, TrustRoots, add_allowed_key

DATA = b"the signed bytes"
CTX = "bundle-manifest/model"


@pytest.fixture
def pub() -> Publisher:
    return Publisher.make()


def sigs(keys: list[HybridSigningKey], data: bytes = DATA, ctx: str = CTX) -> list:
    return [k.sign(data, context=ctx) for k in keys]


def test_root_loads_and_lists_roles(pub: Publisher, tmp_path: Path) -> None:
    roots = TrustRoots.load(pub.write_root(tmp_path / "root.json"), now=NOW)
    assert roots.version == 1 and roots.path == tmp_path / "root.json"
    assert {n: r.threshold for n, r in roots.roles.items()} == {
        "root": 2, "model": 1, "plugin": 1, "release": 2, "registry": 1,
    }  # fmt: skip
    assert [k.key_id for k in roots.trusted_keys("release", NOW)] == [
        k.key_id for k in pub.keys["release"]
    ]
    summary = roots.summary()
    assert summary["roles"]["model"]["keys"] == [pub.key("model").key_id]


def test_check_accepts_the_roles_key(pub: Publisher) -> None:
    key = pub.key("model")
    assert pub.roots().check("model", sigs([key]), DATA, context=CTX, now=NOW) == [key.key_id]


@pytest.mark.parametrize(
    ("signer", "expected"),
    [
        (lambda p: HybridSigningKey.generate(), "unknown key"),
        (lambda p: p.key("plugin"), "wrong role: a key of role(s) plugin, not model"),
        (lambda p: p.key("release", 1), "wrong role: a key of role(s) release"),
    ],
)
def test_check_names_the_failed_condition(pub: Publisher, signer, expected: str) -> None:
    key = signer(pub)
    with pytest.raises(TrustError, match=r"threshold 0 of 1") as info:
        pub.roots().check("model", sigs([key]), DATA, context=CTX, now=NOW)
    assert f"key {key.key_id}: {expected}" in str(info.value)


def test_revoked_key(pub: Publisher) -> None:
    key = pub.key("model")
    pub.revoked = {key.key_id}
    with pytest.raises(TrustError, match=f"key {key.key_id}: revoked"):
        pub.roots().check("model", sigs([key]), DATA, context=CTX, now=NOW)
    assert pub.roots().trusted_keys("model", NOW) == []


def test_expired_key(pub: Publisher) -> None:
    key = pub.key("model")
    pub.key_expires[key.key_id] = NOW - DAY
    with pytest.raises(TrustError, match=f"key {key.key_id}: expired on 2030-05-31"):
        pub.roots(NOW).check("model", sigs([key]), DATA, context=CTX, now=NOW)
    # the same key still verifies at a time before its expiry
    earlier = NOW - 2 * DAY
    assert pub.roots(earlier).check("model", sigs([key]), DATA, context=CTX, now=earlier)


def test_bad_signature_and_wrong_context(pub: Publisher) -> None:
    key = pub.key("model")
    with pytest.raises(TrustError, match=r"signature does not verify"):
        pub.roots().check("model", sigs([key]), DATA + b"!", context=CTX, now=NOW)
    with pytest.raises(TrustError, match=r"signature does not verify"):
        pub.roots().check("model", sigs([key], ctx="bundle-manifest/plugin"), DATA, context=CTX)


def test_release_threshold(pub: Publisher) -> None:
    roots, (a, b, c) = pub.roots(), pub.keys["release"]
    ctx = "bundle-manifest/release"
    with pytest.raises(TrustError, match=r"threshold 1 of 2") as info:
        roots.check("release", sigs([a], ctx=ctx), DATA, context=ctx, now=NOW)
    assert f"key {a.key_id}: ok (trust root)" in str(info.value)
    with pytest.raises(TrustError, match=r"threshold 1 of 2.*signed twice"):
        roots.check("release", sigs([a, a], ctx=ctx), DATA, context=ctx, now=NOW)
    assert roots.check("release", sigs([a, c], ctx=ctx), DATA, context=ctx, now=NOW) == [
        a.key_id,
        c.key_id,
    ]
    assert len(roots.check("release", sigs([a, b, c], ctx=ctx), DATA, context=ctx, now=NOW)) == 3
    with pytest.raises(TrustError, match=r"there are no signatures"):
        roots.check("release", [], DATA, context=ctx, now=NOW)


def test_expired_root(pub: Publisher, tmp_path: Path) -> None:
    pub.expires = NOW - DAY
    path = pub.write_root(tmp_path / "root.json")
    with pytest.raises(TrustError, match=r"expired on 2030-05-31.*install a newer"):
        TrustRoots.load(path, now=NOW)
    roots = TrustRoots.load(path, now=NOW, allow_expired=True)  # walking a chain only
    with pytest.raises(TrustError, match=r"trust root .* expired"):
        roots.check("model", sigs([pub.key("model")]), DATA, context=CTX, now=NOW)


def test_root_needs_its_threshold(pub: Publisher) -> None:
    with pytest.raises(TrustError, match=r"not trusted: .*threshold 1 of 2"):
        TrustRoots.from_bytes(pub.root_bytes(pub.keys["root"][:1]), now=NOW)
    with pytest.raises(TrustError, match=r"threshold 0 of 2.*wrong role"):
        TrustRoots.from_bytes(pub.root_bytes(pub.keys["release"][:2]), now=NOW)


def test_tampered_root(pub: Publisher) -> None:
    doc = json.loads(pub.root_bytes())
    intruder = HybridSigningKey.generate().public_key.to_json()
    doc["signed"]["roles"]["model"]["keys"][0]["public"] = intruder
    with pytest.raises(TrustError, match=r"does not verify"):
        TrustRoots.from_bytes(json.dumps(doc).encode(), now=NOW)


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda d: d["signed"]["roles"]["release"].update(threshold=1), "between 2 and"),
        (lambda d: d["signed"]["roles"]["model"].update(threshold=2), "threshold 2 with 1 key"),
        (lambda d: d["signed"]["roles"].pop("registry"), "roles must be exactly"),
        (lambda d: d["signed"].update(version=0), "positive integer"),
        (lambda d: d["signed"].update(expires="2031-01-01"), "UTC time"),
        (lambda d: d["signed"].update(revoked=["nope"]), "list of key ids"),
        (lambda d: d["signed"].update(extra=1), "exactly the fields"),
    ],
)
def test_malformed_root(pub: Publisher, edit, message: str) -> None:
    doc = json.loads(pub.root_bytes())
    edit(doc)
    with pytest.raises(TrustError, match=message):
        TrustRoots.from_bytes(json.dumps(doc).encode(), now=NOW)


def test_strict_json(pub: Publisher) -> None:
    raw = pub.root_bytes()
    with pytest.raises(TrustError, match=r"duplicate key 'signed'"):
        TrustRoots.from_bytes(b'{"signed": 1, ' + raw[1:], now=NOW)
    with pytest.raises(TrustError, match=r"integers"):
        TrustRoots.from_bytes(raw.replace(b'"version": 1', b'"version": 1.0'), now=NOW)
    with pytest.raises(TrustError, match=r"not valid JSON"):
        TrustRoots.from_bytes(b"\xff", now=NOW)


def test_rotation_needs_old_and_new_root_keys(pub: Publisher) -> None:
    v1 = pub.roots()
    old_root = list(pub.keys["root"])
    pub.keys["root"] = [HybridSigningKey.generate() for _ in range(3)]
    pub.version = 2
    both = TrustRoots.from_bytes(pub.root_bytes(old_root[:2] + pub.keys["root"][:2]), previous=v1)
    assert both.version == 2
    with pytest.raises(TrustError, match=r"threshold 0 of 2"):  # new keys only: not by v1
        TrustRoots.from_bytes(pub.root_bytes(), now=NOW, previous=v1)
    with pytest.raises(TrustError, match=r"rollback: version 1 is not newer"):
        TrustRoots.from_bytes(Publisher.make().root_bytes(), now=NOW, previous=both)


def test_default_root_follows_installed_successors(
    pub: Publisher, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    shipped = pub.write_root(tmp_path / "shipped.json")
    monkeypatch.setattr(trust, "shipped_root_path", lambda: shipped)
    home = tmp_path / "home"
    assert TrustRoots.load_default(now=NOW, home=home, local=LocalTrust()).version == 1
    pub.version = 2
    pub.thresholds["model"] = 1
    pub.keys["model"] = [HybridSigningKey.generate()]
    path = trust.install_root(pub.root_bytes(), now=NOW, home=home)
    assert path == home / "trust" / "roots" / "2.root.json"
    roots = TrustRoots.load_default(now=NOW, home=home, local=LocalTrust())
    assert roots.version == 2
    assert [k.key_id for k in roots.roles["model"].keys] == [pub.key("model").key_id]
    with pytest.raises(TrustError, match=r"rollback"):
        trust.install_root(pub.root_bytes(), now=NOW, home=home)
    path.write_bytes(path.read_bytes().replace(b'"version": 2', b'"version": 3'))
    (home / "trust" / "roots" / "3.root.json").write_bytes(path.read_bytes())
    with pytest.raises(TrustError, match=r"not trusted"):  # tampered successor: loud, not skipped
        TrustRoots.load_default(now=NOW, home=home, local=LocalTrust())


# -- local trust -------------------------------------------------------------------------------


def test_own_key_is_trusted_for_models_and_plugins_only(pub: Publisher) -> None:
    own = HybridSigningKey.generate()
    roots = pub.roots().with_local(LocalTrust.load(Path("/nonexistent"), own_key=own.public_key))
    (signer,) = roots.signers("model", sigs([own]), DATA, context=CTX, now=NOW)
    assert (signer.source, signer.local) == ("local key", True)
    both = roots.signers("model", sigs([pub.key("model"), own]), DATA, context=CTX, now=NOW)
    assert [s.source for s in both] == ["trust root", "local key"]
    ctx = "bundle-manifest/release"
    with pytest.raises(TrustError, match=r"wrong role: a key of role\(s\) model, plugin"):
        roots.check("release", sigs([own], ctx=ctx), DATA, context=ctx, now=NOW)
    pub.revoked = {own.key_id}
    revoked = pub.roots().with_local(roots.local)
    with pytest.raises(TrustError, match=r"revoked"):
        revoked.check("model", sigs([own]), DATA, context=CTX, now=NOW)


def test_allow_list(pub: Publisher, tmp_path: Path) -> None:
    lab = HybridSigningKey.generate()
    path = add_allowed_key(
        lab.public_key, ["registry", "model"], home=tmp_path, expires=NOW + DAY, note="lab"
    )
    assert path == tmp_path / "trust" / "allowed_keys.json"
    roots = pub.roots().with_local(LocalTrust.load(tmp_path, own_key=None))
    ctx = "registry-catalogue"
    (signer,) = roots.signers("registry", sigs([lab], ctx=ctx), DATA, context=ctx, now=NOW)
    assert signer.source == "allow-list"
    with pytest.raises(TrustError, match=r"expired"):
        roots.check("model", sigs([lab]), DATA, context=CTX, now=NOW + 2 * DAY)
    with pytest.raises(TrustError, match=r"only"):
        add_allowed_key(lab.public_key, ["release"], home=tmp_path)
    os.chmod(path, 0o666)
    with pytest.raises(TrustError, match=r"writable by other users"):
        LocalTrust.load(tmp_path, own_key=None)
    os.chmod(path, 0o644)
    doc = json.loads(path.read_text())
    doc["keys"][0]["roles"] = ["root"]
    path.write_text(json.dumps(doc))
    with pytest.raises(TrustError, match=r"malformed.*may grant only"):
        LocalTrust.load(tmp_path, own_key=None)


def test_own_key_from_the_key_store(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, pub: Publisher
) -> None:
    before = keyring.get_keyring()
    keyring.set_keyring(fail.Keyring())
    try:
        fast = Argon2Params(memory_kib=64, iterations=1, lanes=1)
        store = KeyStore.create(tmp_path / "keys", passphrase="correct horse", kdf=fast)
        monkeypatch.delenv(PASSPHRASE_ENV, raising=False)
        locked = LocalTrust.load(tmp_path)
        assert locked.keys == () and "own key is not trusted here" in locked.notes[0]
        monkeypatch.setenv(PASSPHRASE_ENV, "correct horse")
        local = LocalTrust.load(tmp_path)
        assert [k.key_id for k in local.keys] == [store.signing_key().key_id]
        assert LocalTrust.load(tmp_path / "elsewhere").keys == ()  # no key store: no note
    finally:
        keyring.set_keyring(before)


# -- the shipped root --------------------------------------------------------------------------


def test_shipped_root_verifies_and_holds_public_keys_only() -> None:
    path = trust.shipped_root_path()
    roots = TrustRoots.load(path)
    layout = {n: (r.threshold, len(r.keys)) for n, r in roots.roles.items()}
    assert layout == {
        "root": (2, 3), "release": (2, 3), "model": (1, 1), "plugin": (1, 1), "registry": (1, 1),
    }  # fmt: skip
    text = path.read_text()
    assert not {"private", "wrapped", "seed", "passphrase"} & set(text.lower().split('"'))
    readme = (path.parent / "README.md").read_text()
    for role in roots.roles.values():
        for key in role.keys:
            assert key.key_id in readme


# -- the maintainers' script -------------------------------------------------------------------


def test_make_trust_root_script(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import importlib.util

    script = Path(trust.__file__).resolve().parents[2] / "packaging" / "make_trust_root.py"
    spec = importlib.util.spec_from_file_location("make_trust_root", script)
    assert spec is not None and spec.loader is not None
    tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tool)
    monkeypatch.setenv(PASSPHRASE_ENV, "correct horse")
    before = keyring.get_keyring()
    keyring.set_keyring(fail.Keyring())
    try:
        fast = Argon2Params(memory_kib=64, iterations=1, lanes=1)
        names = ["root-1", "root-2", "rel-1", "rel-2", "model", "plugin", "registry", "root-3"]
        keys = {n: KeyStore.create(tmp_path / n, kdf=fast).signing_key() for n in names}
        (tmp_path / "model.pub.json").write_text(json.dumps(keys["model"].public_key.to_json()))
        k = {n: str(tmp_path / n) for n in names}
        argv = ["new", "--out", str(tmp_path / "v1.json"),
                "--role", f"root={k['root-1']},{k['root-2']}", "--threshold", "root=2",
                "--role", f"release={k['rel-1']},{k['rel-2']}",
                "--role", f"model={tmp_path / 'model.pub.json'}", "--role", f"plugin={k['plugin']}",
                "--role", f"registry={k['registry']}/keystore.json",
                "--sign", k["root-1"], "--sign", k["root-2"]]  # fmt: skip
        assert tool.main(argv) == 0
        v1 = TrustRoots.load(tmp_path / "v1.json")
        assert v1.roles["release"].threshold == 2
        assert [x.key_id for x in v1.roles["model"].keys] == [keys["model"].key_id]

        revoked = keys["plugin"].key_id
        update = ["update", str(tmp_path / "v1.json"), "--out", str(tmp_path / "v2.json"),
                  "--add", f"root={k['root-3']}", "--remove", revoked, "--revoke", revoked,
                  "--add", f"plugin={k['rel-1']}"]  # fmt: skip
        assert tool.main([*update, "--sign", k["root-3"], "--sign", k["root-1"]]) == 1  # 1 of v1
        assert not (tmp_path / "v2.json").exists()
        assert tool.main([*update, "--sign", k["root-1"], "--sign", k["root-2"]]) == 0
        v2 = TrustRoots.load(tmp_path / "v2.json", previous=v1)
        assert v2.version == 2 and revoked in v2.revoked
        assert len(v2.roles["root"].keys) == 3
    finally:
        keyring.set_keyring(before)
