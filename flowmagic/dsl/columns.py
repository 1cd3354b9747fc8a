"""UTF-8 byte offsets to character offsets in one line, without rereading the line each time.

``ast`` gives column offsets in UTF-8 bytes; carets and source slices need
characters. Encoding the line up to the offset on every lookup makes a step that
reads many names quadratic in the length of its line, so a line is measured once,
in blocks, and each lookup decodes at most one block.
"""

from __future__ import annotations

from bisect import bisect_right

#: Characters per block: a lookup decodes at most this many.
BLOCK = 1024


class ByteColumns:
    """Maps byte offsets in ``text`` (as UTF-8) to character offsets."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.ascii = text.isascii()
        self.starts: list[int] = []  # the byte offset at which each block of BLOCK characters starts
        if not self.ascii:
            total = 0
            for i in range(0, len(text), BLOCK):
                self.starts.append(total)
                total += len(_utf8(text[i : i + BLOCK]))

    def char(self, byte: int) -> int:
        """The character offset of byte offset ``byte`` (clamped to the line; a character cut in two does not count)."""
        if byte <= 0:
            return 0
        if self.ascii:
            return min(byte, len(self.text))
        k = bisect_right(self.starts, byte) - 1
        first = k * BLOCK
        block = _utf8(self.text[first : first + BLOCK])
        return first + len(block[: byte - self.starts[k]].decode("utf-8", errors="ignore"))


def _utf8(text: str) -> bytes:
    # surrogatepass: a lone surrogate counts the 3 bytes Python's parser would give it
    return text.encode("utf-8", errors="surrogatepass")
