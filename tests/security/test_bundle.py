"""Signed bundles: round trip, tampering, trust, freeze, rollback, unsafe zips, zip bombs."""

from __future__ import annotations

import hashlib
import os
import stat
import tempfile
import zipfile
from pathlib import Path

import pytest
from bundle_kit import (
    DAY,
    NOW,
    Publisher,
    Raw,
    bundle,
    deflate,
    entries_of,
    raw_zip,
    signed_manifest,
    source_tree,
)
from hypothesis import given, settings
from hypothesis import strategies as st

from workstation.core.errors import Cancelled
from workstation.core.tasks import CancelToken
from workstation.security import _extract, _zipfmt
from workstation.security.bundle import (
    BundleLimits,
    Manifest,
    Version,
    open_bundle,
    write_bundle,
)
from workstation.security.errors import BundleError, SignatureError, TrustError
from workstation.security.sign import HybridSigningKey

REFUSALS = (BundleError, SignatureError, TrustError)


@pytest.fixture(scope="module")
def pub() -> Publisher:
    return Publisher.make()


def verify(path: Path, pub: Publisher, **kwargs) -> dict:
    """Open, check every payload byte, close; the JSON summary."""
    kwargs.setdefault("now", NOW)
    with open_bundle(path, trust=pub.roots(), **kwargs) as b:
        b.verify_payload()
        return b.to_json()


def tree(folder: Path) -> dict[str, bytes]:
    return {
        p.relative_to(folder).as_posix(): p.read_bytes() for p in folder.rglob("*") if p.is_file()
    }


# -- round trip --------------------------------------------------------------------------------


@pytest.mark.parametrize("compression", ["stored", "deflate"])
def test_round_trip(tmp_path: Path, pub: Publisher, compression: str) -> None:
    path = bundle(tmp_path, [pub.key("model")], compression=compression)
    reports: list[tuple[int, int]] = []
    with open_bundle(path, trust=pub.roots(), kind="model", now=NOW) as b:
        assert (b.kind, b.name, str(b.version), b.trusted_by) == (
            "model",
            "demo",
            "1.2.0",
            "trust root",
        )
        assert [f.path for f in b.manifest.files] == ["sub/empty", "sub/notes.txt", "weights.bin"]
        b.verify_payload()
        out = b.extract(tmp_path / "out", progress=lambda d, t, m="": reports.append((d, t)))
        summary = b.to_json()
    assert tree(out) == tree(tmp_path / "src")
    assert reports[-1] == (b.manifest.total_size, b.manifest.total_size)
    assert summary["signers"] == [
        {"key_id": pub.key("model").key_id, "role": "model", "source": "trust root"}
    ]
    assert summary["files"] == 3 and summary["warnings"] == []
    with zipfile.ZipFile(path) as z:  # an ordinary zip, too
        assert z.testzip() is None
        assert z.namelist() == [
            "payload/sub/empty", "payload/sub/notes.txt", "payload/weights.bin",
            "manifest.json", "signatures.json",
        ]  # fmt: skip
        expected = zipfile.ZIP_DEFLATED if compression == "deflate" else zipfile.ZIP_STORED
        assert z.getinfo("payload/weights.bin").compress_type == expected


def test_manifest_is_canonical_and_deterministic(tmp_path: Path, pub: Publisher) -> None:
    a = entries_of(bundle(tmp_path, [pub.key("model")]))
    b = entries_of(bundle(tmp_path, [pub.key("model")]))
    assert a["manifest.json"] == b["manifest.json"]
    manifest = Manifest.parse(a["manifest.json"])
    assert manifest.to_json()["format"] == 1 and manifest.requirements == {}
    assert a["manifest.json"].startswith(b'{"created":"2030-05-31T12:00:00Z","expires":')
    digest = hashlib.sha256((tmp_path / "src" / "weights.bin").read_bytes()).hexdigest()
    assert {"path": "weights.bin", "sha256": digest, "size": 3000} in manifest.to_json()["files"]


def test_defaults_per_kind(tmp_path: Path, pub: Publisher) -> None:
    plugin = bundle(tmp_path, [pub.key("plugin")], kind="plugin")
    release = bundle(tmp_path, pub.keys["release"][:2], kind="release")
    with zipfile.ZipFile(plugin) as p, zipfile.ZipFile(release) as r:
        assert p.getinfo("payload/sub/notes.txt").compress_type == zipfile.ZIP_DEFLATED
        assert r.getinfo("payload/sub/notes.txt").compress_type == zipfile.ZIP_STORED


def test_zip64_round_trip(tmp_path: Path, pub: Publisher, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_zipfmt, "ZIP64_SIZE", 1000)  # exercise the > 4 GiB encodings on KBs
    monkeypatch.setattr(_zipfmt, "ZIP64_OFFSET", 2000)
    path = bundle(tmp_path, [pub.key("model")])
    with zipfile.ZipFile(path) as z:
        assert z.testzip() is None and len(z.namelist()) == 5
    with open_bundle(path, trust=pub.roots(), now=NOW) as b:
        assert tree(b.extract(tmp_path / "out")) == tree(tmp_path / "src")


# -- tampering ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def small_bundles(tmp_path_factory: pytest.TempPathFactory, pub: Publisher) -> dict[str, bytes]:
    tmp = tmp_path_factory.mktemp("flip")
    return {
        c: bundle(tmp, [pub.key("model")], compression=c).read_bytes()
        for c in ("stored", "deflate")
    }


def _flip_and_open(data: bytes, position: int, xor: int, pub: Publisher) -> dict | None:
    """Open and extract ``data`` with one byte changed: the extracted tree, or None if refused."""
    changed = bytearray(data)
    changed[position] ^= xor
    with tempfile.TemporaryDirectory() as tmp:
        path, out = Path(tmp) / "b.zip", Path(tmp) / "out"
        path.write_bytes(changed)
        try:
            with open_bundle(path, trust=pub.roots(), now=NOW) as b:
                return tree(b.extract(out))
        except REFUSALS:  # anything else fails the test
            assert not out.exists() and os.listdir(tmp) == ["b.zip"]
            return None


@settings(max_examples=200, deadline=None)
@given(data=st.data())
def test_any_flipped_byte_is_refused(
    small_bundles: dict[str, bytes], pub: Publisher, data: st.DataObject
) -> None:
    blob = small_bundles["stored"]
    position = data.draw(st.integers(0, len(blob) - 1), label="position")
    xor = data.draw(st.integers(1, 255), label="xor")
    assert _flip_and_open(blob, position, xor, pub) is None


@settings(max_examples=100, deadline=None)
@given(data=st.data())
def test_flipped_deflated_bundle_is_refused_or_unchanged(
    small_bundles: dict[str, bytes], pub: Publisher, data: st.DataObject
) -> None:
    # The padding bits after a deflate stream's last code are not data: flipping them changes
    # no byte of the output (hash-checked), so that, and only that, may pass.
    blob = small_bundles["deflate"]
    position = data.draw(st.integers(0, len(blob) - 1), label="position")
    xor = data.draw(st.integers(1, 255), label="xor")
    out = _flip_and_open(blob, position, xor, pub)
    assert out is None or out == _flip_and_open(blob, 0, 0, pub)


def _repack(path: Path, out: Path, edit) -> Path:
    """Rewrite a bundle canonically with ``edit(entries)`` applied (an attacker's re-zip)."""
    entries = entries_of(path)
    edit(entries)
    return raw_zip(out, [Raw(name, data) for name, data in entries.items()])


def test_payload_changed_added_removed(tmp_path: Path, pub: Publisher) -> None:
    path = bundle(tmp_path, [pub.key("model")])

    def change(e: dict) -> None:
        e["payload/weights.bin"] = b"\xff" + e["payload/weights.bin"][1:]

    changed = _repack(path, tmp_path / "changed.zip", change)
    with open_bundle(changed, trust=pub.roots(), now=NOW) as b:  # the manifest is intact
        with pytest.raises(BundleError, match=r"payload/weights.bin: content does not match"):
            b.verify_payload()
        with pytest.raises(BundleError, match=r"payload/weights.bin: content does not match"):
            b.extract(tmp_path / "out")
    assert not (tmp_path / "out").exists()
    assert [p.name for p in tmp_path.iterdir() if "partial" in p.name] == []

    def add(e: dict) -> None:
        manifest, sigs = e.pop("manifest.json"), e.pop("signatures.json")
        e.update({"payload/extra.bin": b"evil", "manifest.json": manifest, "signatures.json": sigs})

    added = _repack(path, tmp_path / "added.zip", add)
    with pytest.raises(
        BundleError, match=r"payload/extra.bin is in the bundle but not in the signed"
    ):
        open_bundle(added, trust=pub.roots(), now=NOW)
    appended = tmp_path / "appended.zip"  # the same with an ordinary zip tool
    appended.write_bytes(path.read_bytes())
    with zipfile.ZipFile(appended, "a") as z:
        z.writestr("payload/extra.bin", b"evil")
    with pytest.raises(
        BundleError, match=r"payload/extra.bin is in the bundle but not in the signed"
    ):
        open_bundle(appended, trust=pub.roots(), now=NOW)

    removed = _repack(path, tmp_path / "removed.zip", lambda e: e.pop("payload/sub/notes.txt"))
    with pytest.raises(
        BundleError, match=r"payload/sub/notes.txt is listed in the signed manifest but missing"
    ):
        open_bundle(removed, trust=pub.roots(), now=NOW)


def test_manifest_changed(tmp_path: Path, pub: Publisher) -> None:
    path = bundle(tmp_path, [pub.key("model")])

    def bump(e: dict) -> None:
        e["manifest.json"] = e["manifest.json"].replace(b'"version":"1.2.0"', b'"version":"9.2.0"')

    with pytest.raises(TrustError, match=r"signature does not verify"):
        open_bundle(_repack(path, tmp_path / "x.zip", bump), trust=pub.roots(), now=NOW)

    def spaced(e: dict) -> None:
        e["manifest.json"] = e["manifest.json"].replace(b",", b", ", 1)

    with pytest.raises(BundleError, match=r"not canonical JSON"):
        open_bundle(_repack(path, tmp_path / "y.zip", spaced), trust=pub.roots(), now=NOW)


def test_non_canonical_zip_is_refused(tmp_path: Path, pub: Publisher) -> None:
    path = bundle(tmp_path, [pub.key("model")])
    rezipped = tmp_path / "rezipped.zip"
    with zipfile.ZipFile(path) as src, zipfile.ZipFile(rezipped, "w") as dst:
        for name in src.namelist():
            dst.writestr(name, src.read(name))  # same content, today's timestamps
    with pytest.raises(
        BundleError, match=r"manifest.json: non-canonical flags in the local header"
    ):
        open_bundle(rezipped, trust=pub.roots(), now=NOW)


# -- trust -------------------------------------------------------------------------------------


def test_wrong_roles_key(tmp_path: Path, pub: Publisher) -> None:
    path = bundle(tmp_path, [pub.key("plugin")], kind="model")
    with pytest.raises(TrustError, match=r"wrong role: a key of role\(s\) plugin, not model"):
        open_bundle(path, trust=pub.roots(), now=NOW)


def test_kind_mismatch(tmp_path: Path, pub: Publisher) -> None:
    path = bundle(tmp_path, [pub.key("plugin")], kind="plugin")
    with pytest.raises(BundleError, match=r"expected a model bundle, but this is a plugin bundle"):
        open_bundle(path, trust=pub.roots(), kind="model", now=NOW)


def test_revoked_and_expired_keys(tmp_path: Path) -> None:
    pub = Publisher.make()
    path = bundle(tmp_path, [pub.key("model")])
    pub.revoked = {pub.key("model").key_id}
    with pytest.raises(TrustError, match=r"revoked"):
        open_bundle(path, trust=pub.roots(), now=NOW)
    pub.revoked = set()
    pub.key_expires[pub.key("model").key_id] = NOW - DAY
    with pytest.raises(TrustError, match=r"expired on"):
        open_bundle(path, trust=pub.roots(), now=NOW)


def test_expired_root(tmp_path: Path) -> None:
    pub = Publisher.make()
    path = bundle(tmp_path, [pub.key("model")], expires=900 * DAY)
    roots = pub.roots()
    with pytest.raises(TrustError, match=r"trust root \(version 1\) expired"):
        open_bundle(path, trust=roots, now=NOW + 400 * DAY)


def test_release_needs_two_signatures(tmp_path: Path, pub: Publisher) -> None:
    one = bundle(tmp_path, pub.keys["release"][:1], kind="release")
    with pytest.raises(TrustError, match=r"threshold 1 of 2"):
        open_bundle(one, trust=pub.roots(), now=NOW)
    two = bundle(tmp_path, pub.keys["release"][1:], kind="release")
    assert len(verify(two, pub)["signers"]) == 2


def test_local_key_is_reported(tmp_path: Path, pub: Publisher) -> None:
    from workstation.security.trust import LocalTrust

    own = HybridSigningKey.generate()
    path = bundle(tmp_path, [own])
    with pytest.raises(TrustError, match=r"unknown key"):
        open_bundle(path, trust=pub.roots(), now=NOW)
    local = pub.roots().with_local(LocalTrust.load(tmp_path, own_key=own.public_key))
    with open_bundle(path, trust=local, now=NOW) as b:
        assert b.trusted_by == "local key"
        assert b.to_json()["signers"][0]["source"] == "local key"


# -- freeze and rollback -----------------------------------------------------------------------


def test_rollback(tmp_path: Path, pub: Publisher) -> None:
    path = bundle(tmp_path, [pub.key("model")], version="1.2.0")
    with pytest.raises(
        BundleError, match=r"rollback refused: demo 1.2.0 is older than the installed 1.10.0"
    ):
        open_bundle(path, trust=pub.roots(), now=NOW, installed_version="1.10.0")
    summary = verify(path, pub, installed_version="1.10.0", allow_downgrade=True)
    assert summary["warnings"] == [
        "downgrade: demo 1.2.0 is older than the installed 1.10.0 (accepted: allow_downgrade)"
    ]
    assert verify(path, pub, installed_version="1.2.0")["warnings"] == []  # reinstall
    assert verify(path, pub, installed_version="1.2.0-rc.1")["warnings"] == []


def test_semantic_versions_compare_numerically() -> None:
    order = ["0.9.0", "1.0.0-alpha", "1.0.0-alpha.1", "1.0.0-alpha.beta", "1.0.0-beta.2",
             "1.0.0-beta.11", "1.0.0-rc.1", "1.0.0", "1.2.0", "1.10.0", "10.0.0"]  # fmt: skip
    versions = [Version.parse(v) for v in order]
    assert versions == sorted(reversed(versions))
    assert Version.parse("1.0.0+build.5") == Version.parse("1.0.0")
    for bad in ("1.2", "01.2.3", "1.2.3.4", "v1.2.3", "1.2.3-", ""):
        with pytest.raises(BundleError, match=r"not a semantic version"):
            Version.parse(bad)


def test_expired_bundle(tmp_path: Path, pub: Publisher) -> None:
    path = bundle(tmp_path, [pub.key("model")], created=NOW - 40 * DAY, expires=30 * DAY)
    with pytest.raises(BundleError, match=r"expired on 2030-05-22.*freeze.*--allow-expired"):
        open_bundle(path, trust=pub.roots(), now=NOW)
    assert verify(path, pub, allow_expired=True)["warnings"] == [
        "expired on 2030-05-22T12:00:00Z (accepted: allow_expired)"
    ]


# -- unsafe zips -------------------------------------------------------------------------------


@pytest.fixture
def parts(tmp_path: Path, pub: Publisher) -> dict[str, bytes]:
    """A valid bundle's entries, to build hostile ones from."""
    return entries_of(bundle(tmp_path, [pub.key("model")]))


@pytest.mark.parametrize(
    ("name", "reason"),
    [
        ("../x", "'..' component"),
        ("/etc/x", "absolute path"),
        ("payload/a/../../x", "'..' component"),
        ("payload\\..\\x", "backslash"),
        ("C:/x", "drive letter"),
        ("payload/./x", "'.' or '..'"),
        ("payload/x/", "empty"),
        ("payload/NUL.txt", "not a valid file name on Windows"),
    ],
)
def test_zip_slip_names(
    tmp_path: Path, pub: Publisher, parts: dict, name: str, reason: str
) -> None:
    for how in ("canonical", "zipfile"):
        path = tmp_path / f"{how}.zip"
        if how == "canonical":
            raw_zip(path, [Raw(name, b"evil"), *(Raw(n, d) for n, d in parts.items())])
        else:
            with zipfile.ZipFile(path, "w") as z:
                z.writestr(name, b"evil")
                for n, d in parts.items():
                    z.writestr(n, d)
        with pytest.raises(BundleError, match=f"unsafe entry name .*{reason}"):
            open_bundle(path, trust=pub.roots(), now=NOW)


def test_unsafe_names_in_a_signed_manifest(tmp_path: Path, pub: Publisher) -> None:
    doc = Manifest.parse(
        entries_of(bundle(tmp_path, [pub.key("model")]))["manifest.json"]
    ).to_json()
    doc["files"][0]["path"] = "../escape"
    manifest, sigs = signed_manifest(doc, [pub.key("model")])
    path = raw_zip(
        tmp_path / "x.zip", [Raw("manifest.json", manifest), Raw("signatures.json", sigs)]
    )
    with pytest.raises(BundleError, match=r"file name '../escape' is unsafe"):
        open_bundle(path, trust=pub.roots(), now=NOW)


@pytest.mark.parametrize(
    ("mode", "reason"),
    [
        (0o120777, "is a symbolic link"),
        (0o040755, "is not a regular file"),
        (0o020644, "is not a regular file"),
    ],
)
def test_symlink_and_special_entries(
    tmp_path: Path, pub: Publisher, parts: dict, mode: int, reason: str
) -> None:
    path = tmp_path / "link.zip"
    with zipfile.ZipFile(path, "w") as z:
        info = zipfile.ZipInfo("payload/link")
        info.external_attr = mode << 16
        z.writestr(info, b"/etc/passwd")
        for n, d in parts.items():
            z.writestr(n, d)
    with pytest.raises(BundleError, match=f"entry 'payload/link' {reason}"):
        open_bundle(path, trust=pub.roots(), now=NOW)


def test_duplicate_entries(tmp_path: Path, pub: Publisher, parts: dict) -> None:
    dup = raw_zip(
        tmp_path / "dup.zip", [Raw(n, d) for n, d in parts.items()] + [Raw("manifest.json", b"{}")]
    )
    with pytest.raises(BundleError, match=r"duplicate entry 'manifest.json'"):
        open_bundle(dup, trust=pub.roots(), now=NOW)
    case = raw_zip(
        tmp_path / "case.zip",
        [Raw("payload/Weights.bin", b"x"), *(Raw(n, d) for n, d in parts.items())],
    )
    with pytest.raises(
        BundleError, match=r"'payload/Weights.bin' and 'payload/weights.bin' differ only in case"
    ):
        open_bundle(case, trust=pub.roots(), now=NOW)


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"", "too short"),
        (b"not a zip at all, just some text", "no zip end record"),
        (b"PK\x05\x06" + bytes(18), "manifest.json is missing"),
    ],
)
def test_not_a_bundle(tmp_path: Path, pub: Publisher, data: bytes, reason: str) -> None:
    path = tmp_path / "x.zip"
    path.write_bytes(data)
    with pytest.raises(BundleError, match=reason):
        open_bundle(path, trust=pub.roots(), now=NOW)
    with pytest.raises(BundleError, match=r"cannot open"):
        open_bundle(tmp_path / "missing.zip", trust=pub.roots(), now=NOW)


def test_truncated_and_trailing(tmp_path: Path, pub: Publisher) -> None:
    data = bundle(tmp_path, [pub.key("model")]).read_bytes()
    for name, changed in (("short", data[:-1]), ("long", data + b"\0"), ("prefixed", b"MZ" + data)):
        path = tmp_path / f"{name}.zip"
        path.write_bytes(changed)
        with pytest.raises(BundleError):
            open_bundle(path, trust=pub.roots(), now=NOW)


# -- zip bombs ---------------------------------------------------------------------------------


def test_compression_ratio_limit(tmp_path: Path, pub: Publisher) -> None:
    src = tmp_path / "zeros"
    src.mkdir()
    (src / "zeros.bin").write_bytes(bytes(8 * 2**20))  # deflates about 1000:1
    path = bundle(tmp_path, [pub.key("plugin")], kind="plugin", src=src)
    with pytest.raises(
        BundleError, match=r"payload/zeros.bin: compression ratio \d+:1 exceeds the limit 200:1"
    ):
        open_bundle(path, trust=pub.roots(), now=NOW)
    relaxed = BundleLimits(max_ratio=2000)
    with open_bundle(path, trust=pub.roots(), now=NOW, limits=relaxed) as b:
        b.verify_payload()
    with pytest.raises(BundleError, match=r"the payload is 8388608 bytes; the limit is 1000000"):
        open_bundle(path, trust=pub.roots(), now=NOW, limits=BundleLimits(max_total=10**6))


def test_declared_size_is_a_hard_stop(
    tmp_path: Path, pub: Publisher, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A (trusted!) signer declares 1000 bytes; the deflate stream holds 16 MiB of zeros."""
    bomb = deflate(bytes(16 * 2**20))
    declared = bytes(1000)
    doc = {
        "format": 1, "kind": "model", "name": "bomb", "version": "1.0.0",
        "created": "2030-05-31T00:00:00Z", "expires": "2030-07-01T00:00:00Z",
        "files": [{"path": "zeros.bin", "sha256": hashlib.sha256(declared).hexdigest(),
                   "size": 1000}],
        "requirements": {},
    }  # fmt: skip
    manifest, sigs = signed_manifest(doc, [pub.key("model")])
    path = raw_zip(
        tmp_path / "bomb.zip",
        [
            Raw("payload/zeros.bin", bomb, method=8, usize=1000, crc=0),
            Raw("manifest.json", manifest),
            Raw("signatures.json", sigs),
        ],
    )
    written: list[int] = []
    real_write = _extract._write_all
    monkeypatch.setattr(
        _extract, "_write_all", lambda fd, v: (written.append(len(v)), real_write(fd, v))
    )
    with open_bundle(path, trust=pub.roots(), now=NOW) as b:
        with pytest.raises(
            BundleError, match=r"inflates to more than the 1000 bytes .* \(zip bomb\)"
        ):
            b.extract(tmp_path / "out")
        with pytest.raises(BundleError, match=r"zip bomb"):
            b.verify_payload()
    assert sum(written) <= 1000
    assert not (tmp_path / "out").exists()
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".partial")]


# -- writing and extracting --------------------------------------------------------------------


def test_writer_refuses_unsafe_sources(tmp_path: Path, pub: Publisher) -> None:
    key = [pub.key("model")]

    def sign(src: Path) -> None:
        write_bundle(
            src, tmp_path / "out.zip", kind="model", name="x", version="1.0.0", signing_keys=key
        )

    src = source_tree(tmp_path / "src")
    os.symlink("/etc/passwd", src / "sub" / "link")
    with pytest.raises(BundleError, match=r"sub/link is a symbolic link"):
        sign(src)
    os.unlink(src / "sub" / "link")
    os.mkfifo(src / "fifo")
    with pytest.raises(BundleError, match=r"fifo is not a regular file"):
        sign(src)
    os.unlink(src / "fifo")
    (src / "a\\b").write_bytes(b"")
    with pytest.raises(BundleError, match=r"backslash"):
        sign(src)
    os.unlink(src / "a\\b")
    with pytest.raises(BundleError, match=r"inside the folder"):
        write_bundle(src, src / "x.zip", kind="model", name="x", version="1.0.0", signing_keys=key)
    (tmp_path / "empty").mkdir()
    with pytest.raises(BundleError, match=r"no files to bundle"):
        sign(tmp_path / "empty")
    for kwargs, message in (
        ({"kind": "driver"}, "kind 'driver'"),
        ({"version": "1.0"}, "not a semantic version"),
        ({"name": "../x"}, "name '../x'"),
        ({"signing_keys": []}, "at least one key"),
    ):
        args = {"kind": "model", "name": "x", "version": "1.0.0", "signing_keys": key, **kwargs}
        with pytest.raises(BundleError, match=message):
            write_bundle(src, tmp_path / "out.zip", **args)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["empty", "src"]  # no partial output


def test_extract_refuses_an_existing_destination(tmp_path: Path, pub: Publisher) -> None:
    path = bundle(tmp_path, [pub.key("model")])
    (tmp_path / "out").mkdir()
    with (
        open_bundle(path, trust=pub.roots(), now=NOW) as b,
        pytest.raises(BundleError, match="exists"),
    ):
        b.extract(tmp_path / "out")


def test_cancel_leaves_nothing(tmp_path: Path, pub: Publisher) -> None:
    path = bundle(tmp_path, [pub.key("model")])
    token = CancelToken()
    token.cancel("stop")
    with open_bundle(path, trust=pub.roots(), now=NOW) as b, pytest.raises(Cancelled):
        b.extract(tmp_path / "out", cancel=token)
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".out")]


def test_extracted_files_are_regular_and_private_to_the_folder(
    tmp_path: Path, pub: Publisher
) -> None:
    path = bundle(tmp_path, [pub.key("model")])
    with open_bundle(path, trust=pub.roots(), now=NOW) as b:
        out = b.extract(tmp_path / "deep" / "out", fsync=True)
    for item in out.rglob("*"):
        mode = item.lstat().st_mode
        assert stat.S_ISREG(mode) or stat.S_ISDIR(mode)
