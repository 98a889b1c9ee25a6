"""Untrusted JSON and text files, read bounded: a size limit, a nesting limit, duplicate
keys refused, and every problem located at its line (the state files and the lock)."""

from __future__ import annotations

import json
import os
import re
import stat
from typing import Any

MAX_JSON_DEPTH = 16


def locate(raw: bytes, *keys: object) -> int:
    """The line of ``raw`` (JSON) where the breadcrumb ``keys`` is written: each key found
    as a quoted string after the previous one; 0 when it is not found."""
    offset, found = 0, -1
    for key in keys:
        if not isinstance(key, str):
            continue
        needle = json.dumps(key).encode()
        at = raw.find(needle, offset)
        if at < 0:
            break
        found = at
        offset = at + len(needle)
    return raw.count(b"\n", 0, found) + 1 if found >= 0 else 0


class JSONProblem(ValueError):
    """Why bytes are not acceptable JSON; ``line`` and ``col`` are 0 when no place applies."""

    def __init__(self, line: int, col: int, message: str) -> None:
        self.line, self.col, self.message = line, col, message
        super().__init__(message)

    def __str__(self) -> str:
        return f"line {self.line} column {self.col}: {self.message}" if self.line else self.message


def load_json(raw: bytes, max_depth: int = MAX_JSON_DEPTH) -> Any:
    """Parse JSON whose nesting is at most ``max_depth``.

    The depth is measured on the parsed value (one pass over its containers);
    deeper input than the parser's own recursion limit is refused with the
    same message.
    """
    duplicated: list[str] = []

    def pairs(items: list[tuple[str, Any]]) -> dict[str, Any]:
        obj = dict(items)
        if len(obj) != len(items) and not duplicated:
            duplicated.append(next(k for i, (k, _) in enumerate(items) if k in dict(items[:i])))
        return obj

    try:
        data = json.loads(raw.decode("utf-8"), object_pairs_hook=pairs)
    except UnicodeDecodeError:
        raise JSONProblem(0, 0, "invalid UTF-8") from None
    except json.JSONDecodeError as exc:
        raise JSONProblem(exc.lineno, exc.colno, f"invalid JSON: {exc.msg}") from None
    except RecursionError:
        raise JSONProblem(0, 0, f"nested deeper than {max_depth} levels") from None
    if duplicated:  # json keeps the last one silently; a reviewer would read the first
        line, col = _duplicate_at(raw.decode("utf-8"))
        raise JSONProblem(line, col, f"the key {json.dumps(duplicated[0])} appears twice")
    stack: list[tuple[Any, int]] = [(data, 1)]
    while stack:
        value, depth = stack.pop()
        if depth > max_depth:
            raise JSONProblem(0, 0, f"nested deeper than {max_depth} levels")
        children = value.values() if isinstance(value, dict) else value
        stack.extend((v, depth + 1) for v in children if isinstance(v, (dict, list)))
    return data


_TOKEN = r'"(?:[^"\\]|\\.)*"|[{}\[\]:,]'


def _duplicate_at(text: str) -> tuple[int, int]:
    """Line and column of the first key that repeats one of its object (``text`` is
    valid JSON: one pass over its strings and punctuation, keys tracked per object)."""
    stack: list[set[str] | None] = []  # a set of keys per open object, None per array
    expect_key = False
    for m in re.finditer(_TOKEN, text):
        tok = m.group()
        if tok == "{":
            stack.append(set())
            expect_key = True
        elif tok == "[":
            stack.append(None)
        elif tok in "}]":
            stack.pop()
            expect_key = False
        elif tok == ",":
            expect_key = bool(stack) and stack[-1] is not None
        elif tok == ":":
            expect_key = False
        elif expect_key:
            keys = stack[-1]
            assert keys is not None
            if tok in keys:
                start = m.start()
                line = text.count("\n", 0, start) + 1
                return line, start - (text.rfind("\n", 0, start) + 1) + 1
            keys.add(tok)
            expect_key = False
    return 0, 0


def read_bounded(path: str, limit: int, *, over: bool = False) -> bytes:
    """At most ``limit`` bytes of the regular file ``path``; ValueError when it is longer
    or not a regular file (opened without blocking and checked before the first read,
    so a FIFO never hangs and a device is never read), OSError when it cannot be read.
    With ``over``, a longer file gives its first ``limit + 1`` bytes instead (the caller
    reports the size)."""
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    try:
        mode = os.fstat(fd).st_mode
        if stat.S_ISDIR(mode):
            raise ValueError("is a folder, not a file")
        if not stat.S_ISREG(mode):
            raise ValueError("is not a regular file (a FIFO, socket or device); use a file")
        chunks, size = [], 0
        while size <= limit:
            chunk = os.read(fd, limit + 1 - size)
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
    finally:
        os.close(fd)
    if size > limit and not over:
        raise ValueError(f"larger than {limit:,} bytes")
    return b"".join(chunks)
