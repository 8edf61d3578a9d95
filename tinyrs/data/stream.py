"""Read a JSON array one element at a time, with memory bounded by the largest element.

The real VHM lists are 1.0-1.5 GB JSON arrays; ``json.load`` turns one into several GB of Python
objects. This reader decodes UTF-8 incrementally into a sliding text buffer and lets the C scanner
(``json.JSONDecoder.raw_decode``) parse one element at a time. Bad input (truncated file, invalid
UTF-8, a syntax error, a top level that is not an array) raises ``ArrayError`` (a ``DataError``)
naming the file, the byte offset and the index of the element being read. An element holding a string
that is not valid Unicode (a lone surrogate, which JSON can write as the escape ``\ud800``) is yielded
as an ``InvalidText`` saying where, never as the value: no such string reaches a caller, which could
not write it as UTF-8.

``ArrayReader`` can also start in the middle of the file, so that several processes can each read
a byte range: started at an arbitrary offset with ``sync`` (the text records begin with, from
``element_start``) it skips to the next place where that text follows a comma. That guess can be
wrong (the text may be inside a string); callers check that each range starts where the previous
one ended (``first_offset`` against the previous ``next_offset``) and reread a range when it does not.
"""
from __future__ import annotations

import codecs
import json
import os
import re
from typing import Any, BinaryIO, Iterator, NamedTuple

from tinyrs.io import DataError

CHUNK_BYTES = 4 << 20
_WHITESPACE = re.compile(r"[ \t\n\r]*")
_COMMA = re.compile(r"[ \t\n\r]*,[ \t\n\r]*")
_FIRST_KEY = re.compile(r'\[[ \t\n\r]*(\{[ \t\n\r]*"(?:[^"\\]|\\.)*"[ \t\n\r]*:)')
_DECODER = json.JSONDecoder()
_NUMBER_CHARS = frozenset("0123456789.eE+-")
_LONGEST_TOKEN = 6  # 'false' or a \uXXXX escape: a token cut at the buffer end starts this close to it
# A surrogate escape not in a high-low pair (a pair, how ASCII-only JSON writes an emoji, decodes to one character).
# It may also match text after an escaped backslash: a match is only a reason to look at the parsed value.
_LONE_SURROGATE_ESCAPE = re.compile(  # starts with a literal, so the scan is a fast prefix search
    r"\\u[dD](?:[89abAB][0-9a-fA-F]{2}(?!\\u[dD][c-fC-F])|(?<!\\u[dD][89abAB][0-9a-fA-F]{2}\\u[dD])[c-fC-F])"
)
_SURROGATE = re.compile("[\ud800-\udfff]")


class ArrayError(DataError):
    """A JSON array that cannot be read; ``index`` counts elements from where the reader started."""

    def __init__(self, path: str, byte: int, index: int, what: str):
        super().__init__(f"{path}: byte {byte}, record {index}: {what}")
        self.path, self.byte, self.index, self.what = path, byte, index, what

    def __reduce__(self):  # worker processes send these back to the main process
        return ArrayError, (self.path, self.byte, self.index, self.what)

    def counted_from(self, first_index: int) -> "ArrayError":
        """The same error with the element index counted from ``first_index``."""
        return ArrayError(self.path, self.byte, first_index + self.index, self.what)


class InvalidText(NamedTuple):
    """Stands for an element holding a lone surrogate: ``field`` says where ("" for the element itself)."""

    field: str
    detail: str


def invalid_text(value: Any) -> InvalidText | None:
    """Where ``value`` (parsed JSON) holds a string that is not valid Unicode (a lone surrogate), or None."""
    stack = [("", value)]
    while stack:
        where, item = stack.pop()
        if isinstance(item, str):
            found = _SURROGATE.search(item)
            if found:
                return InvalidText(where, f"lone surrogate {found.group()!r} at character {found.start()}: "
                                          "not valid Unicode")
        elif isinstance(item, dict):
            for key in item:
                found = _SURROGATE.search(key)
                if found:
                    return InvalidText(where, f"the key {key!r} holds a lone surrogate {found.group()!r}: "
                                              "not valid Unicode")
            stack.extend((f"{where}.{key}" if where else key, inner) for key, inner in reversed(item.items()))
        elif isinstance(item, list):
            stack.extend((f"{where}[{number}]", inner) for number, inner in reversed(list(enumerate(item))))
    return None


class _TextWindow:
    """The not-yet-parsed part of the file as text, refilled chunk by chunk, with byte bookkeeping."""

    def __init__(self, handle: BinaryIO, path: str, chunk_bytes: int, start_byte: int):
        handle.seek(start_byte)
        self.handle = handle
        self.path = path
        self.chunk_bytes = chunk_bytes
        self.decoder = codecs.getincrementaldecoder("utf-8-sig" if start_byte == 0 else "utf-8")("strict")
        self.text = ""
        self.pos = 0
        self.bytes_read = start_byte
        self.eof = False
        self.index = 0  # element being read, for error messages
        self._cursor = (0, start_byte)  # a text position and its byte offset, moved forward as we go
        self._next_escape: int | None = None  # where the next surrogate escape is (len(text): none); None: unknown

    def byte_offset(self, pos: int | None = None) -> int:
        """Byte offset in the file of ``self.text[pos]`` (incremental: positions mostly move forward)."""
        pos = self.pos if pos is None else pos
        cursor_pos, cursor_byte = self._cursor
        if pos < cursor_pos:
            cursor_pos, cursor_byte = 0, self._cursor[1] - len(self.text[: self._cursor[0]].encode("utf-8"))
        if self.text.isascii():
            byte = cursor_byte + pos - cursor_pos
        else:
            byte = cursor_byte + len(self.text[cursor_pos:pos].encode("utf-8"))
        self._cursor = (pos, byte)
        return byte

    def refill(self) -> bool:
        """Append the next chunk; drop the consumed prefix. False at end of file."""
        if self.eof:
            return False
        if self.pos:
            self._cursor = (0, self.byte_offset(self.pos))
            self.text = self.text[self.pos :]
            self.pos = 0
        self._next_escape = None
        raw = self.handle.read(self.chunk_bytes)
        try:
            self.text += self.decoder.decode(raw, final=not raw)
        except UnicodeDecodeError as err:
            offset = self.bytes_read - len(self.decoder.getstate()[0]) + err.start
            raise ArrayError(self.path, offset, self.index, f"invalid UTF-8: {err.reason}") from None
        self.bytes_read += len(raw)
        self.eof = not raw
        return True

    def skip_whitespace(self) -> str:
        """The next non-blank character, or '' at end of file."""
        while True:
            self.pos = _WHITESPACE.match(self.text, self.pos).end()
            if self.pos < len(self.text):
                return self.text[self.pos]
            if not self.refill():
                return ""

    def error(self, what: str, pos: int | None = None) -> ArrayError:
        return ArrayError(self.path, self.byte_offset(pos), self.index, what)

    def next_value(self) -> Any:
        """Parse the value that starts at the window position, refilling until it is complete.

        A value holding a lone surrogate comes back as ``InvalidText``.
        """
        while True:
            try:
                value, end = _DECODER.raw_decode(self.text, self.pos)
            except json.JSONDecodeError as err:
                if _may_be_cut_off(err, len(self.text)) and self.refill():
                    continue
                raise self.error(f"invalid or truncated JSON ({err.msg} at byte {self.byte_offset(err.pos)})") from None
            if end >= len(self.text) - _LONGEST_TOKEN and _may_continue(value, self.text, end) and self.refill():
                continue
            start, self.pos = self.pos, end
            if self._escapes_surrogate(start, end):
                return invalid_text(value) or value
            return value

    def _escapes_surrogate(self, start: int, end: int) -> bool:
        """Whether ``text[start:end]`` holds a lone surrogate escape: one regex scan per chunk, not one per value."""
        if self._next_escape is None or self._next_escape < start:
            found = _LONE_SURROGATE_ESCAPE.search(self.text, start)
            self._next_escape = found.start() if found else len(self.text)
        return self._next_escape < end


class ArrayReader:
    """Elements of the JSON array in ``path``, from its start or from byte ``start``.

    After iterating ``elements``: ``first_offset`` is the byte offset of the first element read (None
    when there was none), ``next_offset`` that of the element after the last one read (None when
    the array ended).
    """

    def __init__(
        self, path: str | os.PathLike, start: int = 0, sync: str | None = None, chunk_bytes: int = CHUNK_BYTES
    ):
        self.path = str(path)
        self.start = start
        self.sync = None if sync is None else re.compile(r",[ \t\n\r]*(?=" + re.escape(sync) + ")")
        self.chunk_bytes = chunk_bytes
        self.first_offset: int | None = None
        self.next_offset: int | None = None

    def elements(self, stop: int | None = None) -> Iterator[tuple[int, Any]]:
        """Yield ``(byte offset, element)`` for each element that starts before byte ``stop``."""
        with open(self.path, "rb") as handle:
            start = _character_start(handle, self.start) if self.sync else self.start
            window = _TextWindow(handle, self.path, self.chunk_bytes, start)
            if self.start == 0:
                if not self._open_array(window):
                    return
            elif self.sync and not self._sync(window, stop):
                return
            while True:  # the window is at the start of an element
                offset = window.byte_offset()
                if stop is not None and offset >= stop:
                    self.next_offset = offset
                    return
                if self.first_offset is None:
                    self.first_offset = offset
                yield offset, window.next_value()
                window.index += 1
                comma = _COMMA.match(window.text, window.pos)  # the usual case, without refilling
                if comma and comma.end() < len(window.text) and window.text[comma.end()] != "]":
                    window.pos = comma.end()
                    continue
                separator = window.skip_whitespace()
                if separator == ",":
                    window.pos += 1
                    following = window.skip_whitespace()
                    if following == "]":
                        raise window.error("trailing comma before ']'")
                    if not following:
                        raise window.error("truncated: the file ends inside the array")
                elif separator == "]":
                    window.pos += 1
                    self._expect_end(window)
                    return
                elif not separator:
                    raise window.error("truncated: the array is not closed with ']'")
                else:
                    raise window.error(f"expected ',' or ']' after record {window.index - 1}, found {separator!r}")

    def _open_array(self, window: _TextWindow) -> bool:
        """Step over '['; False for an empty array."""
        first = window.skip_whitespace()
        if first != "[":
            found = repr(first) if first else "end of file"
            raise window.error(f"expected a JSON array starting with '[', found {found}")
        window.pos += 1
        following = window.skip_whitespace()
        if not following:
            raise window.error("truncated: the file ends inside the array")
        if following == "]":
            window.pos += 1
            self._expect_end(window)
            return False
        return True

    def _sync(self, window: _TextWindow, stop: int | None) -> bool:
        """Move to the first element start that ``sync`` recognises; False when none starts before ``stop``."""
        while True:
            found = self.sync.search(window.text, window.pos)
            if found:
                window.pos = found.end()
                return stop is None or window.byte_offset() < stop
            window.pos = max(window.pos, len(window.text) - 64)  # keep a comma cut at the buffer end
            if (stop is not None and window.byte_offset() >= stop) or not window.refill():
                return False

    def _expect_end(self, window: _TextWindow) -> None:
        extra = window.skip_whitespace()
        if extra:
            raise window.error(f"unexpected data after the closing ']': {extra!r}")


def element_start(path: str | os.PathLike) -> str:
    """How the first element of the array begins, up to its first key (e.g. ``{"id":``), or ``{``.

    Records of one list are written alike, so this text after a comma marks a likely record start,
    while nested objects (the turns of a conversation) begin with other keys.
    """
    with open(path, "rb") as handle:
        head = handle.read(64 << 10).decode("utf-8-sig", errors="ignore")
    found = _FIRST_KEY.match(head.lstrip())
    return found.group(1) if found else "{"


def _character_start(handle: BinaryIO, offset: int) -> int:
    """The first offset at or after ``offset`` that does not fall inside a UTF-8 multi-byte character."""
    handle.seek(offset)
    continuation = 0
    for byte in handle.read(4):
        if byte & 0xC0 != 0x80:
            break
        continuation += 1
    return offset + continuation


def iter_json_array(path: str | os.PathLike, chunk_bytes: int = CHUNK_BYTES) -> Iterator[tuple[int, Any]]:
    """Yield ``(index, element)`` for each element of the JSON array in ``path``."""
    for index, (_, element) in enumerate(ArrayReader(path, chunk_bytes=chunk_bytes).elements()):
        yield index, element


def _may_continue(value: Any, text: str, end: int) -> bool:
    """Whether a parsed value may be the start of a longer one cut at the buffer end (a number)."""
    if end == len(text):
        return True
    is_number = isinstance(value, (int, float)) and not isinstance(value, bool)
    return is_number and end >= len(text) - _LONGEST_TOKEN and text[end] in _NUMBER_CHARS


def _may_be_cut_off(err: json.JSONDecodeError, text_length: int) -> bool:
    """Whether the error could vanish with more text: it sits at the buffer end or in an open string.

    Anything else is a syntax error that more data cannot fix, reported at once instead of
    reading the rest of the file into the buffer.
    """
    return err.pos >= text_length - _LONGEST_TOKEN or err.msg.startswith("Unterminated string")
