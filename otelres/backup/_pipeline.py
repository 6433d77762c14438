"""Serializing in one thread while another compresses, hashes and writes.

A large backup spends its time in two places: turning the state into JSON (which holds
the GIL) and compressing, hashing and writing it (zlib, zstd, hashlib and file writes
release the GIL). Running them as a two-stage pipeline lets them overlap on two cores,
so a backup costs about the slower of the two instead of their sum.

:func:`json_pieces` serializes a value in slices that concatenate to valid JSON equal
in value to ``json.dumps(value)``: big lists and dicts (at the top and one level down)
are cut into runs of items, each serialized by the C encoder.
"""

from __future__ import annotations

import json
import queue
import threading
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

__all__ = ["SLICE", "is_large", "json_pieces", "pipelined"]

SLICE = 2048
"""Items per slice of a big list or dict."""
_BATCH = 1 << 20
_T = TypeVar("_T")
_P = TypeVar("_P")
_END = object()
_STOP = object()


class _Stopped(Exception):
    """The producer failed; the consumer stops without finishing its output."""


def _dumps(value: Any, default: Callable[[Any], Any] | None) -> str:
    """Compact, ASCII-only JSON (``ensure_ascii`` keeps lone surrogates round-tripping)."""
    return json.dumps(value, separators=(",", ":"), default=default)


def is_large(value: Any) -> bool:
    """Whether *value* is worth serializing in slices (a big list or dict, or holds one)."""
    if isinstance(value, (list, dict)) and len(value) > SLICE:
        return True
    if isinstance(value, dict):
        return any(isinstance(v, (list, dict)) and len(v) > SLICE for v in value.values())
    return False


def _pieces(value: Any, default: Callable[[Any], Any] | None, depth: int) -> Iterator[str]:
    """The JSON text of *value* in pieces, cutting big lists and dicts down to *depth* 2."""
    if depth < 2 and isinstance(value, list) and len(value) > SLICE:
        yield "["
        for start in range(0, len(value), SLICE):
            if start:
                yield ","
            yield _dumps(value[start : start + SLICE], default)[1:-1]
        yield "]"
    elif depth < 2 and isinstance(value, dict) and (len(value) > SLICE or is_large(value)):
        yield "{"
        items = list(value.items())
        first = True
        for start in range(0, len(items), SLICE):
            run = items[start : start + SLICE]
            small = [(k, v) for k, v in run if not is_large(v)]
            if small:
                text = _dumps(dict(small), default)[1:-1]
                if text:
                    yield text if first else "," + text
                    first = False
            for key, child in run:
                if is_large(child):
                    # json.dumps({key: None}) is '{' + KEY + ':null}': the key exactly as
                    # json encodes it (int, float, bool and None keys become strings).
                    key_json = _dumps({key: None}, default)[1:-6]
                    yield ("" if first else ",") + key_json + ":"
                    first = False
                    yield from _pieces(child, default, depth + 1)
        yield "}"
    else:
        yield _dumps(value, default)


def json_pieces(value: Any, default: Callable[[Any], Any] | None = None) -> Iterator[bytes]:
    """The JSON of *value* as ASCII byte chunks of about 1 MiB.

    Key order differs from ``json.dumps`` only where a big child is emitted after its
    small siblings of the same slice; the decoded value is the same.
    """
    batch: list[str] = []
    size = 0
    for piece in _pieces(value, default, 0):
        batch.append(piece)
        size += len(piece)
        if size >= _BATCH:
            yield "".join(batch).encode("ascii")
            batch.clear()
            size = 0
    if batch:
        yield "".join(batch).encode("ascii")


def _consume(channel: queue.Queue[Any]) -> Iterator[Any]:
    """Yield the chunks put on *channel* until the producer says it ended or failed."""
    while True:
        item = channel.get()
        if item is _END:
            return
        if item is _STOP:
            raise _Stopped
        yield item


def pipelined(pieces: Iterator[_P], sink: Callable[[Iterator[_P]], _T]) -> _T:
    """Run ``sink(chunks)`` in a worker thread while this thread produces *pieces*.

    An exception on either side stops both and is raised here (the producer's first);
    the worker never outlives the call.
    """
    channel: queue.Queue[Any] = queue.Queue(maxsize=4)
    outcome: list[_T] = []
    failure: list[BaseException] = []

    def run() -> None:
        try:
            outcome.append(sink(_consume(channel)))
        except BaseException as exc:
            failure.append(exc)

    worker = threading.Thread(target=run, name="otelres-backup-writer", daemon=True)
    worker.start()

    def offer(item: Any) -> bool:
        while worker.is_alive():
            try:
                channel.put(item, timeout=0.05)
                return True
            except queue.Full:
                continue
        return False

    try:
        for piece in pieces:
            if not offer(piece):
                break
    except BaseException:
        offer(_STOP)
        worker.join()
        raise
    offer(_END)
    worker.join()
    if failure:
        raise failure[0]
    return outcome[0]
