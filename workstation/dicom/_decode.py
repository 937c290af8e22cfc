"""Decoding one frame of pixel data with the fastest exact decoder for its transfer syntax.

pydicom 3 decodes compressed pixel data through *plugins* (``pylibjpeg``, ``gdcm``,
``pyjpegls``, ``pillow`` and its own ``pydicom`` RLE decoder). Every installed plugin decodes
our lossless test series exactly, but speeds differ up to 4x and so does robustness: on a
truncated JPEG, JPEG-LS or JPEG lossless codestream ``pylibjpeg`` returns an image without
raising, while the others raise (and pyjpegls takes seconds to do so on JPEG-LS, so a
single-frame file whose data visibly lack the end-of-image marker is rejected up front).
So, per transfer syntax:

* the plugin used first is the fastest available one (measured, see ``RANKING``);
* when it fails, the next ones are tried, except plugins that silently accept truncated data
  (``LENIENT``): a frame that one decoder calls corrupt is reported, never half-decoded.

Measured on a 2-core machine, 512×512 12-bit CT (8-bit for baseline), ms per slice including
the file read, best of 3 × 100 slices (``*``: chosen):

===================  =========  =======  ========  ======  =======
syntax               pylibjpeg  gdcm     pyjpegls  pillow  pydicom
===================  =========  =======  ========  ======  =======
RLE Lossless         1.3*       --       --        --      4.3
JPEG-LS Lossless     19.2       6.5      5.2*      --      --
JPEG 2000 Lossless   29.0       18.7*    --        28.8    --
JPEG Lossless SV1    10.5       5.4*     --        --      --
JPEG Baseline        3.6        2.6      --        1.2*    --
===================  =========  =======  ========  ======  =======

gdcm runs OpenJPEG on every core (18.7 ms wall, 32.6 ms CPU), so pool workers
(:mod:`workstation.dicom._decode_pool`), whose cores are busy anyway, use a single-threaded
JPEG 2000 plugin instead. All plugins decode the lossless series exactly (signed and unsigned,
12 and 16 bits); on lossy JPEG baseline they agree within 1 on grey images (up to 3 on YBR
colour images between pylibjpeg and pillow/gdcm). Reproduce with
``python benchmarks/compressed_load.py --plugins``.

pydicom is imported inside the functions, never when this module is imported. The public API is
:mod:`workstation.dicom.codecs`.
"""

from __future__ import annotations

import os
import struct
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from pydicom.pixels.decoders.base import Decoder

    from workstation.dicom.errors import PixelDecodeError

# Transfer syntax UIDs (spelled out so that importing this module does not import pydicom).
IMPLICIT_LE = "1.2.840.10008.1.2"
EXPLICIT_LE = "1.2.840.10008.1.2.1"
EXPLICIT_BE = "1.2.840.10008.1.2.2"
DEFLATED = "1.2.840.10008.1.2.1.99"
JPEG_BASELINE = "1.2.840.10008.1.2.4.50"
JPEG_EXTENDED = "1.2.840.10008.1.2.4.51"
JPEG_LOSSLESS = "1.2.840.10008.1.2.4.57"
JPEG_LOSSLESS_SV1 = "1.2.840.10008.1.2.4.70"
JPEGLS_LOSSLESS = "1.2.840.10008.1.2.4.80"
JPEGLS_NEAR = "1.2.840.10008.1.2.4.81"
J2K_LOSSLESS = "1.2.840.10008.1.2.4.90"
J2K = "1.2.840.10008.1.2.4.91"
HTJ2K_LOSSLESS = "1.2.840.10008.1.2.4.201"
HTJ2K_RPCL = "1.2.840.10008.1.2.4.202"
HTJ2K = "1.2.840.10008.1.2.4.203"
RLE = "1.2.840.10008.1.2.5"

_NATIVE = frozenset({IMPLICIT_LE, EXPLICIT_LE, EXPLICIT_BE})

#: The pydicom decoding plugins this module knows about.
PLUGINS: tuple[str, ...] = ("pylibjpeg", "gdcm", "pyjpegls", "pillow", "pydicom")

# Fastest first (in-process wall time, table in the module docstring). JPEG Extended: pillow and
# gdcm refuse 12-bit data, the common case, so pylibjpeg leads. Lossy JPEG 2000 / JPEG-LS
# near-lossless use the lossless ranking: all plugins agreed exactly on pydicom's samples.
RANKING: dict[str, tuple[str, ...]] = {
    RLE: ("pylibjpeg", "pydicom"),
    JPEGLS_LOSSLESS: ("pyjpegls", "gdcm", "pylibjpeg"),
    JPEGLS_NEAR: ("pyjpegls", "gdcm", "pylibjpeg"),
    J2K_LOSSLESS: ("gdcm", "pylibjpeg", "pillow"),
    J2K: ("gdcm", "pylibjpeg", "pillow"),
    HTJ2K_LOSSLESS: ("pylibjpeg",),
    HTJ2K_RPCL: ("pylibjpeg",),
    HTJ2K: ("pylibjpeg",),
    JPEG_LOSSLESS_SV1: ("gdcm", "pylibjpeg"),
    JPEG_LOSSLESS: ("gdcm", "pylibjpeg"),
    JPEG_BASELINE: ("pillow", "gdcm", "pylibjpeg"),
    JPEG_EXTENDED: ("pylibjpeg", "gdcm", "pillow"),
}

# Inside pool workers every core is busy: prefer single-threaded decoders (less CPU per frame).
_WORKER_RANKING: dict[str, tuple[str, ...]] = {
    J2K_LOSSLESS: ("pylibjpeg", "pillow", "gdcm"),
    J2K: ("pylibjpeg", "pillow", "gdcm"),
}

# Plugins that return an image from a truncated codestream instead of raising: used when they are
# the best available, never as a fallback after a stricter plugin found the data corrupt.
LENIENT: dict[str, frozenset[str]] = {
    uid: frozenset({"pylibjpeg"})
    for uid in (
        JPEGLS_LOSSLESS,
        JPEGLS_NEAR,
        JPEG_LOSSLESS,
        JPEG_LOSSLESS_SV1,
        JPEG_BASELINE,
        JPEG_EXTENDED,
    )
}

#: Exceptions that mean "this frame cannot be decoded". pydicom wraps plugin failures in
#: RuntimeError; the rest come from unreadable files, bad elements and wrong frame indices.
DECODE_FAILURES: tuple[type[BaseException], ...] = (
    RuntimeError,
    ValueError,
    NotImplementedError,
    AttributeError,
    KeyError,
    IndexError,
    TypeError,
    OSError,
    EOFError,
    struct.error,
)


# -- transfer syntaxes and plugins --------------------------------------------------------------
def is_compressed(transfer_syntax_uid: str) -> bool:
    """Whether pixel data in this transfer syntax must be decoded (cannot be read as raw bytes).

    True for the encapsulated syntaxes (JPEG family, RLE, video), the deflated syntax (the whole
    dataset is zlib-compressed) and unknown UIDs; False for the three native syntaxes.
    """
    return str(transfer_syntax_uid).strip() not in _NATIVE


def _decoder(transfer_syntax_uid: str) -> Decoder | None:
    """pydicom's decoder for the syntax, or None when pydicom has none (video, unknown UIDs)."""
    from pydicom.pixels import get_decoder

    try:
        return get_decoder(str(transfer_syntax_uid).strip())
    except NotImplementedError:
        return None


def plugin_order(transfer_syntax_uid: str, *, worker: bool = False) -> list[str]:
    """Available plugins to try for the syntax, best first; ``[""]`` for native data.

    Unranked plugins (registered by third parties) come after the ranked ones.
    """
    uid = str(transfer_syntax_uid).strip()
    decoder = _decoder(uid)
    if decoder is None:
        return []
    if not decoder.is_encapsulated:
        return [""]
    available = decoder.available_plugins
    ranking = (_WORKER_RANKING.get(uid) if worker else None) or RANKING.get(uid, ())
    order = [name for name in ranking if name in available]
    order += [name for name in available if name not in order]
    return order


def decoder_for(transfer_syntax_uid: str) -> str | None:
    """Name of the pydicom decoding plugin used first for this transfer syntax.

    The fastest available plugin among those that decode exactly (measured; see the module
    docstring). Native and deflated syntaxes need no plugin and give ``"pydicom"``; ``None``
    when no installed plugin (or no pydicom decoder at all) handles the syntax.
    """
    order = plugin_order(transfer_syntax_uid)
    if not order:
        return None
    return order[0] or "pydicom"


def decoder_availability() -> dict[str, dict[str, str]]:
    """For every transfer syntax pydicom can decode: plugin name -> ``"available"`` or why not.

    Reasons are pydicom's own (``"requires pylibjpeg-openjpeg"``) or ``"does not support
    <syntax>"`` for a plugin with no decoder for it. Native and deflated syntaxes report
    ``{"pydicom": "available"}``.
    """
    from pydicom.pixels.decoders import base
    from pydicom.uid import UID

    report: dict[str, dict[str, str]] = {}
    for uid in list(base._PIXEL_DATA_DECODERS):  # the registry; no public accessor exists
        decoder = _decoder(uid)
        if decoder is None:
            continue
        if not decoder.is_encapsulated:
            report[str(uid)] = {"pydicom": "available"}
            continue
        missing = {}
        for line in decoder.missing_dependencies:
            name, _, reason = line.partition(" - ")
            missing[name.strip()] = reason.strip() or "unavailable"
        status: dict[str, str] = {}
        for name in (*PLUGINS, *decoder.available_plugins, *missing):
            if name in status:
                continue
            if name in decoder.available_plugins:
                status[name] = "available"
            elif name in missing:
                status[name] = missing[name]
            else:
                status[name] = f"does not support {UID(uid).name}"
        report[str(uid)] = status
    return report


# -- decoding one frame -----------------------------------------------------------------------
def pixel_decode_error(message: str, path: str) -> PixelDecodeError:
    from workstation.dicom.errors import PixelDecodeError

    return PixelDecodeError(message, path=path)


def _transfer_syntax(path: str) -> str | None:
    """The file's transfer syntax from its meta header; None when it has none."""
    from pydicom.filereader import read_file_meta_info

    uid = read_file_meta_info(path).get("TransferSyntaxUID")
    return None if uid is None else str(uid)


def decode(path: str, frame: int, *, worker: bool = False) -> np.ndarray:
    """Decode one frame, trying plugins in order; raise PixelDecodeError when none succeeds.

    ``worker``: rank plugins for a pool worker (single-threaded decoders first).
    """
    from pydicom import dcmread
    from pydicom.errors import InvalidDicomError
    from pydicom.pixels import pixel_array

    name = os.path.basename(path)
    try:
        uid = _transfer_syntax(path)
    except InvalidDicomError:
        uid = None  # no preamble / meta header
    except DECODE_FAILURES as error:
        raise pixel_decode_error(f"cannot read {name}: {error}", path) from error
    if uid is None:
        return _decode_without_meta(path, frame)
    order = plugin_order(uid, worker=worker)
    if not order:
        raise pixel_decode_error(
            f"cannot decode {name}: no decoder is installed for transfer syntax {uid}", path
        )
    if uid in (JPEGLS_LOSSLESS, JPEGLS_NEAR) and _jpegls_truncated(path):
        raise pixel_decode_error(
            f"cannot decode {name}: the JPEG-LS data are truncated (no end-of-image marker)", path
        )
    lenient = LENIENT.get(uid, frozenset())
    failures: list[str] = []
    # Reading from the path touches only the frame's bytes. A dataset whose encoding disagrees
    # with its meta header defeats that fast reader, so after a failure the file is read whole.
    for source in ("path", "dataset"):
        if source == "dataset":
            try:
                src: Any = dcmread(path)
            except (InvalidDicomError, *DECODE_FAILURES):
                break
        else:
            src = path
        for plugin in order:
            if failures and plugin in lenient:
                continue  # it would hide the corruption the stricter plugins found
            try:
                return pixel_array(src, index=frame, decoding_plugin=plugin)
            except (InvalidDicomError, *DECODE_FAILURES) as error:
                reason = _last_line(error)
                if plugin and not reason.startswith(f"{plugin}:"):
                    reason = f"{plugin}: {reason}"
                if reason not in failures:
                    failures.append(reason)
    reasons = "; ".join(failures)
    raise pixel_decode_error(
        f"cannot decode frame {frame} of {name} (the pixel data may be corrupt): {reasons}", path
    )


def _decode_without_meta(path: str, frame: int) -> np.ndarray:
    """A file with no meta header (so no transfer syntax): native encoding, guessed by pydicom."""
    from pydicom import dcmread
    from pydicom.dataset import FileMetaDataset
    from pydicom.errors import InvalidDicomError
    from pydicom.pixels import pixel_array

    name = os.path.basename(path)
    try:
        ds = dcmread(path, force=True)
        implicit, little = ds.original_encoding
        if implicit is None or "PixelData" not in ds:
            raise pixel_decode_error(f"{name} is not a DICOM image", path)
        ds.file_meta = FileMetaDataset()
        syntax = IMPLICIT_LE if implicit else EXPLICIT_LE if little else EXPLICIT_BE
        ds.file_meta.TransferSyntaxUID = syntax
        return pixel_array(ds, index=frame)
    except (InvalidDicomError, *DECODE_FAILURES) as error:
        raise pixel_decode_error(f"cannot decode {name}: {_last_line(error)}", path) from error


_SEQUENCE_DELIMITER = b"\xfe\xff\xdd\xe0\x00\x00\x00\x00"


def _jpegls_truncated(path: str) -> bool:
    """Whether a single-frame JPEG-LS file's codestream visibly lacks its end-of-image marker.

    CharLS (pyjpegls, gdcm) rejects such data, but pyjpegls spends seconds doing so. Reads the
    file's last bytes: encapsulated pixel data at the end of the file close with the sequence
    delimiter, preceded by the last fragment's ``FF D9`` (and a pad byte). Any other layout, or
    a multi-frame file (the tail is only the last frame's), gives no verdict (False).
    """
    from pydicom import dcmread

    with open(path, "rb") as handle:
        size = handle.seek(0, os.SEEK_END)
        if size < 64:
            return False
        handle.seek(size - 16)
        tail = handle.read(16)
    if tail[-8:] != _SEQUENCE_DELIMITER or tail[:-8].rstrip(b"\x00").endswith(b"\xff\xd9"):
        return False
    ds = dcmread(path, stop_before_pixels=True, specific_tags=["NumberOfFrames"])
    return int(ds.get("NumberOfFrames", 1) or 1) <= 1


def _last_line(error: BaseException) -> str:
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    return lines[-1] if lines else type(error).__name__
