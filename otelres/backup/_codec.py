"""Compression of entries: none, gzip (standard library) or zstd (the ``zstd`` extra).

gzip streams are written with ``zlib`` in gzip framing: the header carries no file name
and an mtime of 0, so the same input always yields the same bytes and any ``gunzip``
reads them. zstd needs the ``zstandard`` package, imported the first time it is used.

Decompression is always bounded: :func:`iter_plain` yields at most ``CHUNK`` bytes at a
time and stops with :class:`PlainTooLarge` as soon as the output passes a limit, so a
small entry that would expand to gigabytes (a "decompression bomb") costs nothing.
"""

from __future__ import annotations

import hashlib
import zlib
from collections.abc import Iterator
from typing import TYPE_CHECKING, BinaryIO, Literal, Protocol

from otelres.backup._errors import BackupError, CompressionUnavailableError

if TYPE_CHECKING:
    from types import ModuleType

__all__ = [
    "CHUNK",
    "COMPRESSIONS",
    "Compression",
    "HashingReader",
    "PlainTooLarge",
    "check_level",
    "compressor",
    "iter_plain",
    "suffix",
]

Compression = Literal["none", "gzip", "zstd"]
COMPRESSIONS: tuple[Compression, ...] = ("none", "gzip", "zstd")
CHUNK = 1 << 20
_SUFFIX = {"none": "", "gzip": ".gz", "zstd": ".zst"}
_GZIP_WBITS = 31  # zlib's gzip framing: header with mtime 0 and no name


class PlainTooLarge(BackupError):
    """An entry decompressed past the allowed number of bytes."""


class Compressor(Protocol):
    """The streaming compressor shape both zlib and zstandard objects have."""

    def compress(self, data: bytes, /) -> bytes: ...

    def flush(self) -> bytes: ...


class _Identity:
    __slots__ = ()

    def compress(self, data: bytes, /) -> bytes:
        return data

    def flush(self) -> bytes:
        return b""


def suffix(compression: str) -> str:
    """The file name suffix of an entry stored with *compression* (``.gz``, ``.zst``, none)."""
    return _SUFFIX[compression]


def _zstandard() -> ModuleType:
    """The ``zstandard`` module, or :class:`CompressionUnavailableError` naming the extra."""
    try:
        import zstandard
    except ImportError:
        raise CompressionUnavailableError(
            "backup.compression = 'zstd' needs the zstandard package: "
            "pip install 'otelres[zstd]' (or set compression = 'gzip')"
        ) from None
    return zstandard


def check_level(compression: str, level: int) -> None:
    """Raise :class:`BackupError` naming the setting when *level* does not fit *compression*."""
    if compression not in COMPRESSIONS:
        raise BackupError(
            f"backup.compression: expected one of 'gzip', 'zstd', got {compression!r}"
        )
    if compression == "gzip" and not 1 <= level <= 9:
        raise BackupError(f"backup.compression_level: gzip takes 1..9, got {level}")
    if compression == "zstd":
        if not 1 <= level <= 22:
            raise BackupError(f"backup.compression_level: zstd takes 1..22, got {level}")
        _zstandard()


def compressor(compression: str, level: int) -> Compressor:
    """A fresh streaming compressor for one entry."""
    if compression == "gzip":
        return zlib.compressobj(level, zlib.DEFLATED, _GZIP_WBITS)
    if compression == "zstd":
        zstd = _zstandard()
        cctx = zstd.ZstdCompressor(level=level, write_checksum=True)
        obj: Compressor = cctx.compressobj()
        return obj
    return _Identity()


class HashingReader:
    """Wraps a binary file: everything read through it is hashed (SHA-256) and counted."""

    __slots__ = ("_raw", "count", "digest")

    def __init__(self, raw: BinaryIO) -> None:
        self._raw = raw
        self.digest = hashlib.sha256()
        self.count = 0

    def read(self, size: int = -1) -> bytes:
        data = self._raw.read(size)
        if data:
            self.digest.update(data)
            self.count += len(data)
        return data

    def drain(self) -> None:
        """Read (and hash) whatever the decompressor left unread, e.g. trailing garbage."""
        while self.read(CHUNK):
            pass


def iter_plain(compression: str, source: HashingReader, limit: int) -> Iterator[bytes]:
    """Decompress *source* in chunks; raise :class:`PlainTooLarge` past *limit* bytes.

    A stream that is cut short or has bytes after its end raises :class:`BackupError`.
    """
    total = 0
    if compression == "none":
        chunks: Iterator[bytes] = iter(lambda: source.read(CHUNK), b"")
    elif compression == "gzip":
        chunks = _gunzip(source)
    elif compression == "zstd":
        chunks = _unzstd(source)
    else:
        raise BackupError(f"unknown compression {compression!r}")
    for chunk in chunks:
        total += len(chunk)
        if total > limit:
            raise PlainTooLarge(f"decompresses past the limit of {limit} bytes")
        yield chunk


def _gunzip(source: HashingReader) -> Iterator[bytes]:
    """Inflate one gzip member from *source*, at most ``CHUNK`` output bytes per step."""
    engine = zlib.decompressobj(_GZIP_WBITS)
    try:
        while not _finished(engine):
            data = source.read(CHUNK)
            if not data:
                raise BackupError("compressed stream is cut short")
            while data:
                out = engine.decompress(data, CHUNK)
                if out:
                    yield out
                data = b"" if _finished(engine) else engine.unconsumed_tail
    except zlib.error as exc:
        raise BackupError(f"not a valid gzip stream ({exc})") from None
    if engine.unused_data or source.read(1):
        raise BackupError("unexpected bytes after the end of the gzip stream")


def _finished(engine: zlib._Decompress) -> bool:
    """Whether *engine* reached the end of its stream (a function, so mypy re-reads it)."""
    return bool(engine.eof)


def _unzstd(source: HashingReader) -> Iterator[bytes]:
    """Decompress one zstd frame from *source* through a bounded stream reader."""
    zstd = _zstandard()
    reader = zstd.ZstdDecompressor().stream_reader(source, read_size=CHUNK, closefd=False)
    try:
        while True:
            out = reader.read(CHUNK)
            if not out:
                break
            yield out
    except zstd.ZstdError as exc:
        raise BackupError(f"not a valid zstd stream ({exc})") from None
    finally:
        reader.close()
    source.drain()
