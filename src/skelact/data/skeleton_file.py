"""Fast, strict reader of NTU RGB+D ``.skeleton`` text files.

Two readers, one answer: the compiled one-pass reader (``_skeleton_fast.c``, built on install)
takes the plain common case, and refuses anything else, which then goes through the NumPy reader
below: it reads every valid file (and is the whole reader where the extension was not built) and
names the line of every error. Both return the same values bit for bit (tests prove it on the
reference files and on mutated ones).

Why not line by line: a file is ~3,600 lines of 12 numbers, and walking it in Python (as the
reference does) runs at ~2 MB/s. Here Python only walks the frame/body headers (a few hundred
lines per file, found with one ``bytes.split``); the joint lines are checked and converted in
bulk: one NumPy pass finds their token boundaries (and so the field count of every line), and the
x, y, z columns -- the only ones used downstream -- are converted with one C-level string->float
cast, correctly rounded like Python's ``float``. The other nine joint fields and the body lines
are checked for their field count and characters but not converted.

Strictness: any deviation from the format (wrong field or joint count, truncation, a non-numeric
token, NaN/inf, text after the last frame) raises :class:`SkeletonFormatError` with the file, the
1-based line number and the problem; a bad token is quoted briefly, however long it is (a 50 MB
one-line file gives a one-line message), and locating it is itself a bulk operation. Both ``\\n``
and ``\\r\\n`` line endings are accepted.
"""

from __future__ import annotations

from functools import cached_property
from itertools import chain
from pathlib import Path

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from skelact.errors import SkelactError, bounded
from skelact.layouts import NTU25

try:
    from skelact.data import _skeleton_fast
except ImportError:  # not compiled (no C compiler at install): the NumPy reader does it all
    _skeleton_fast = None

NUM_JOINTS = NTU25.num_joints

#: The reference reads at most this many Kinect bodies per frame (others are validated, not kept).
MAX_KINECT_BODIES = 4
FIELDS_PER_JOINT = 12
FIELDS_PER_BODY = 10

_ALLOWED = b"0123456789.-+eE \t\r\n"
_BAD_BYTE = np.ones(256, dtype=bool)
_BAD_BYTE[np.frombuffer(_ALLOWED, dtype=np.uint8)] = False
_SPACE = b" \t\r\n"
_EXCERPT = 60  # bytes of a bad token quoted in a message


class SkeletonFormatError(SkelactError, ValueError):
    """A ``.skeleton`` file that does not follow the NTU format; says where and what."""

    def __init__(self, path: str | Path, line: int | None, problem: str) -> None:
        self.path = str(path)
        self.line = line
        self.problem = problem
        where = f"{self.path}:{line}" if line is not None else self.path
        super().__init__(f"{where}: {problem}")


def quote(token: bytes) -> str:
    """A token for a message: its first bytes, and its length when it was cut."""
    text = bounded(token[:_EXCERPT].decode("latin-1"))
    return text if len(token) <= _EXCERPT else f"{text[:-1]}...' ({len(token):,} bytes)"


class _Lines:
    """The file's lines (0-based here, 1-based in messages) and the header checks on them.

    Lines are found with one NumPy newline scan and sliced out only where Python reads them
    (the headers); the list of all lines (``bytes.split``, ~3,600 objects) is made only for
    the error and fallback paths that walk it.
    """

    def __init__(self, data: bytes, path: str) -> None:
        self.data = data
        self.path = path
        self.newlines = np.flatnonzero(np.frombuffer(data, dtype=np.uint8) == 10)
        self.num_lines = len(self.newlines) + 1
        #: line i is ``data[bounds[i] + 1 : bounds[i + 1]]``
        self.bounds = [-1, *self.newlines.tolist(), len(data)]

    @cached_property
    def lines(self) -> list[bytes]:
        return self.data.split(b"\n")

    def line(self, i: int) -> bytes:
        return self.data[self.bounds[i] + 1 : self.bounds[i + 1]]

    def error(self, line: int, problem: str) -> SkeletonFormatError:
        return SkeletonFormatError(self.path, min(line, self.num_lines - 1) + 1, problem)

    def blank_from(self, line: int) -> bool:
        return line >= self.num_lines or not self.data[self.bounds[line] + 1 :].strip()

    def ends_early(self, line: int) -> bool:
        return line >= self.num_lines or (not self.line(line).strip() and self.blank_from(line))

    def count(self, line: int, what: str) -> int:
        """The single non-negative integer on a header line (frame, body or joint count)."""
        if self.ends_early(line):
            raise self.error(line, f"file ends early: expected the {what}")
        text = self.line(line)
        try:
            value = int(text)
        except ValueError:
            fields = _count_fields(text)
            if fields != 1:
                raise self.error(
                    line, f"expected the {what} (one integer), found {fields} fields"
                ) from None
            raise self.error(line, f"{what} {quote(text.strip())} is not an integer") from None
        if value < 0:
            raise self.error(line, f"{what} is negative ({value})")
        return value


def _count_fields(text: bytes) -> int:
    """Whitespace-separated fields of ``text``; in bulk for a long line (it may be megabytes)."""
    if len(text) < 4096:
        return len(text.split())
    tok = np.frombuffer(text, dtype=np.uint8) > 32
    return int(tok[:1].sum() + np.count_nonzero(tok[1:] > tok[:-1]))


def _bad_char_error(data: bytes, path: str) -> SkeletonFormatError:
    """The error for the first byte that cannot be part of a number (located in bulk)."""
    pos = int(np.argmax(_BAD_BYTE[np.frombuffer(data, dtype=np.uint8)]))
    start = max(data.rfind(c, 0, pos) for c in (b" ", b"\t", b"\r", b"\n")) + 1
    ends = [i for i in (data.find(c, pos) for c in (b" ", b"\t", b"\r", b"\n")) if i >= 0]
    token = data[start : min(ends, default=len(data))]
    line = data.count(b"\n", 0, pos) + 1
    if token.lower().lstrip(b"+-") == b"nan":
        return SkeletonFormatError(path, line, f"NaN value {quote(token)}")
    if data[pos] < 32 or data[pos] > 126:
        return SkeletonFormatError(
            path, line, f"unexpected byte 0x{data[pos]:02x} (not a text number)"
        )
    return SkeletonFormatError(path, line, f"non-numeric token {quote(token)}")


_JOINTS = frozenset((str(NUM_JOINTS).encode(), str(NUM_JOINTS).encode() + b"\r"))


def _parse(data: bytes, path: str, max_bodies: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """:func:`parse_skeleton`'s result, the kept joints' x, y, z and their 0-based file lines."""
    if not data or data.isspace():  # as ``not data.strip()``, without copying the file
        raise SkeletonFormatError(path, None, "empty file")
    if data.translate(None, _ALLOWED):  # C-speed check that every byte is allowed
        raise _bad_char_error(data, path)
    text = _Lines(data, path)
    num_frames = text.count(0, "frame count")
    if num_frames == 0:
        raise text.error(0, "frame count is 0: the file holds no frames")
    bodies: list[tuple[int, int]] = []  # (frame, slot) of every body, in file order
    blocks: list[int] = []  # its first joint line
    try:
        line = _walk(text, num_frames, bodies, blocks)
        if not text.blank_from(line):
            extra = next(i for i in range(line, text.num_lines) if text.line(i).strip())
            raise text.error(extra, f"unexpected data after the last of the {num_frames} frames")
    except SkeletonFormatError:
        _check_fields(text, blocks, bodies)  # a bad line before it is the first error
        raise
    layout = _token_layout(text, blocks, line)
    if layout is None:
        _check_fields(text, blocks, bodies)  # names the first bad line
        raise AssertionError("unreachable: _check_fields raises")
    out = np.zeros((max_bodies, num_frames, NUM_JOINTS, 3), dtype=np.float64)
    kept = [i for i, (_, slot) in enumerate(bodies) if slot < max_bodies]
    if not kept:
        return out, np.zeros((0, NUM_JOINTS, 3)), np.zeros((0, NUM_JOINTS), dtype=np.int64)
    xyz, lines = _joint_xyz(text, [blocks[i] for i in kept], layout)
    frames, slots = np.asarray([bodies[i] for i in kept], dtype=np.intp).T
    out[slots, frames] = xyz
    return out, xyz, lines


def _walk(text: _Lines, num_frames: int, bodies: list, blocks: list) -> int:
    """The frame and body headers (Python touches only these); returns the line after them.

    The common case costs one ``int()`` per frame and one comparison per body; anything else
    goes through the checks that name the problem. Body and joint lines are checked in bulk
    afterwards (:func:`_check_fields`).
    """
    data, bounds, n = text.data, text.bounds, text.num_lines
    line = 1
    for frame in range(num_frames):
        try:
            num_bodies = int(data[bounds[line] + 1 : bounds[line + 1]])
        except (ValueError, IndexError):
            num_bodies = -1
        if num_bodies < 0:
            num_bodies = text.count(line, f"body count of frame {frame + 1}")  # raises
        line += 1
        for body in range(num_bodies):
            if line + 1 >= n or data[bounds[line + 1] + 1 : bounds[line + 2]] not in _JOINTS:
                _check_body_header(text, line, f"frame {frame + 1}, body {body + 1}")
            bodies.append((frame, body))
            blocks.append(line + 2)
            line += 2 + NUM_JOINTS
            if line > n:
                where = f"frame {frame + 1}, body {body + 1}"
                raise text.error(n - 1, f"file ends early inside {where}")
    return line


def _check_body_header(text: _Lines, line: int, where: str) -> None:
    """Raise the error of a body line + joint count line that are not as expected, if any."""
    if text.ends_early(line):
        raise text.error(line, f"file ends early: expected the {where} line")
    fields = _count_fields(text.line(line))
    if fields != FIELDS_PER_BODY:
        raise text.error(
            line, f"body line ({where}) has {fields} fields, expected {FIELDS_PER_BODY}"
        )
    joints = text.count(line + 1, f"joint count ({where})")
    if joints != NUM_JOINTS:
        raise text.error(line + 1, f"joint count is {joints} ({where}), expected {NUM_JOINTS}")


def _field_counts(lines: list[bytes]) -> tuple[np.ndarray, bytes, np.ndarray]:
    """Fields of each line in one pass over their bytes; also the joined bytes and token starts.

    Returns (counts, joined, first) where ``first`` marks token starts in ``joined``.
    """
    joined = b"\n".join(lines) + b"\n"
    buf = np.frombuffer(joined, dtype=np.uint8)
    tok = buf > 32
    first = np.empty(len(buf), dtype=np.uint8)  # 1 where a token starts
    first[0] = tok[0]
    np.greater(tok[1:], tok[:-1], out=first[1:].view(bool))
    line_starts = np.zeros(len(lines), dtype=np.int64)
    lengths = np.fromiter(map(len, lines[:-1]), np.int64, len(lines) - 1)
    np.cumsum(lengths + 1, out=line_starts[1:])
    return np.add.reduceat(first, line_starts, dtype=np.int64), joined, first


_SPAN = NUM_JOINTS + 2  # body line, joint count line, joint lines
_EXPECTED = np.array([FIELDS_PER_BODY, 1] + [FIELDS_PER_JOINT] * NUM_JOINTS)


def _check_fields(text: _Lines, blocks: list[int], bodies: list[tuple[int, int]]) -> None:
    """Every body line has 10 fields and every joint line 12 (one bulk pass); else the error.

    Only whole bodies are checked (after a truncation error the last one may be cut short).
    """
    while blocks and blocks[-1] + NUM_JOINTS > text.num_lines:
        blocks = blocks[:-1]
    if not blocks:
        return
    rows = text.lines
    span = list(chain.from_iterable(rows[b - 2 : b + NUM_JOINTS] for b in blocks))
    counts = _field_counts(span)[0].reshape(len(blocks), _SPAN)
    bad = counts != _EXPECTED
    if not bad.any():
        return
    i, j = divmod(int(np.argmax(bad)), _SPAN)
    line, n = blocks[i] - 2 + j, int(counts[i, j])
    frame, body = bodies[i]
    if n == 0 and text.blank_from(line):
        what = f"the frame {frame + 1}, body {body + 1} line" if j == 0 else "a joint line"
        raise text.error(line, f"file ends early: expected {what}")
    if j == 0:
        where = f"frame {frame + 1}, body {body + 1}"
        raise text.error(line, f"body line ({where}) has {n} fields, expected {FIELDS_PER_BODY}")
    raise text.error(line, f"joint line has {n} fields, expected {FIELDS_PER_JOINT}")


def _token_layout(text: _Lines, blocks: list[int], end_line: int) -> tuple | None:
    """Token starts and each line's first token index, if every line has its expected fields.

    Expected: 10 fields on a body line, 12 on a joint line, 1 on every other line (the frame,
    body and joint counts, which :func:`_walk` has read with ``int``). Rather than counting the
    fields of each line, it checks that the first token of every line is where the cumulative
    expected counts put it: the token before it lies on an earlier line and it does not. That
    holds for every line exactly when each line has its expected count (tokens never cross a
    newline) -- the common case, at the cost of one token-start scan. ``None`` when it fails;
    :func:`_check_fields` then names the line.
    """
    buf = np.frombuffer(text.data, dtype=np.uint8)
    newlines = text.newlines
    line_starts = np.concatenate(([0], newlines[: end_line - 1] + 1))
    end = int(newlines[end_line - 1]) if end_line <= len(newlines) else len(buf)
    tok = np.zeros(end + 1, dtype=bool)
    np.greater(buf[:end], 32, out=tok[1:])
    starts = np.flatnonzero(tok[1:] > tok[:-1])  # byte offset of every token
    expected = np.ones(end_line, dtype=np.int64)
    if blocks:
        first = np.asarray(blocks)
        expected[first - 2] = FIELDS_PER_BODY
        expected[(first[:, None] + np.arange(NUM_JOINTS)).ravel()] = FIELDS_PER_JOINT
    cum = np.cumsum(expected)
    if len(starts) != cum[-1]:
        return None
    line_first = cum - expected  # index of each line's first token
    if (starts[line_first] >= line_starts).all() and (
        starts[line_first[1:] - 1] < line_starts[1:]
    ).all():
        return starts, line_first
    return None


def _joint_xyz(
    text: _Lines, blocks: list[int], layout: tuple[np.ndarray, np.ndarray]
) -> tuple[np.ndarray, np.ndarray]:
    """x, y, z of the bodies whose joint lines start at ``blocks`` (their fields checked).

    Returns ``(len(blocks), NUM_JOINTS, 3)`` float64 and the file line of each joint. The common
    case is :func:`_decimals` on the x, y, z tokens (found in ``layout``, see
    :func:`_token_layout`); anything it does not take is converted by NumPy's C text reader
    (``loadtxt`` on the lines), which rounds like ``float`` too and whose refusal is the error.
    """
    file_line = (np.asarray(blocks)[:, None] + np.arange(NUM_JOINTS)).ravel()
    starts, line_first = layout
    values = _decimals(text.data, starts[(line_first[file_line][:, None] + _XYZ).ravel()])
    if values is None:
        values = _loadtxt_xyz(text, blocks, file_line)
    return values.reshape(len(blocks), NUM_JOINTS, 3), file_line.reshape(-1, NUM_JOINTS)


_XYZ = np.arange(3)


def _loadtxt_xyz(text: _Lines, blocks: list[int], file_line: np.ndarray) -> np.ndarray:
    """x, y, z of the joint lines by ``loadtxt``, or the error naming the first bad number."""
    rows = text.lines
    joint_lines = list(chain.from_iterable(rows[b : b + NUM_JOINTS] for b in blocks))
    try:
        values = np.loadtxt(joint_lines, np.float64, comments=None, usecols=(0, 1, 2), ndmin=2)
    except ValueError:  # a token of allowed characters that is no number, e.g. '1.2.3'
        values = None
    if values is None or not np.isfinite(values).all():
        _, joined, first = _field_counts(joint_lines)
        buf = np.frombuffer(joined, dtype=np.uint8)
        starts = np.flatnonzero(first)
        ends = _token_ends(buf)
        tokens = (np.arange(len(joint_lines))[:, None] * FIELDS_PER_JOINT + _XYZ).ravel()
        bad = _first_invalid(buf, starts[tokens], ends[tokens])
        token = joined[starts[tokens[bad]] : ends[tokens[bad]]]
        raise text.error(int(file_line[bad // 3]), f"invalid number {quote(token)}")
    return values


_WIDTH = 16  # bytes looked at per token by _decimals: tokens of up to 15 bytes
#: Powers of ten that float64 holds exactly (10**22 is the largest).
_POW10 = np.array([float(10**k) for k in range(23)])
_ONES = np.uint64(0x0101010101010101)  # the lowest bit of every byte
_U64 = np.uint64


def _words(mask: np.ndarray) -> np.ndarray:
    """A ``(2, N, 8)`` uint8 / bool array (word-major, see :func:`_decimals`) as ``(2, N)`` uint64.

    Word-major, because then every operation on "the first word of each token" is one tight loop
    over contiguous memory; rows of 2 words (or 16 bytes) would run row by row, many times slower.
    """
    return mask.view(np.uint64).reshape(mask.shape[:2])


def _count(mask: np.ndarray) -> np.ndarray:
    """True bytes per token of a word-major bool array (a popcount per word)."""
    bits = np.bitwise_count(_words(mask))
    return (bits[0] + bits[1]).astype(np.intp)


def _before(mask: np.ndarray) -> np.ndarray:
    """Per token of a word-major bool array: True in the bytes before its first True.

    On the uint64 words (bytes are 0 or 1, the first byte lowest): ``(w & -w) - 1`` sets the
    bits below the first set one; keeping each byte's lowest bit makes it a bool array again.
    The second word counts only where the first one holds no True.
    """
    words = _words(mask)
    low = words & (_U64(0) - words)
    low -= _U64(1)
    low &= _ONES
    low[1] *= words[0] == 0
    return low.view(bool).reshape(mask.shape)


def _shift(mask: np.ndarray) -> np.ndarray:
    """A word-major uint8 / bool array moved one byte on (the first byte becomes 0)."""
    words = _words(mask)
    out = words << _U64(8)
    out[1] |= words[0] >> _U64(56)
    return out.view(mask.dtype).reshape(mask.shape)


def _digits_value(digits: np.ndarray) -> np.ndarray:
    """``sum(digit j * 10**(15 - j))`` per token of a word-major uint8 array of digits 0..9.

    Eight digits per uint64 in three multiplications each (the SWAR method of fast JSON
    parsers; the overflowing bits are the ones shifted out), exact in uint64.
    """
    words = _words(digits) * _U64(10 * 256 + 1)
    words >>= _U64(8)
    words &= _U64(0x00FF00FF00FF00FF)
    words *= _U64(100 * 2**16 + 1)
    words >>= _U64(16)
    words &= _U64(0x0000FFFF0000FFFF)
    words *= _U64(10000 * 2**32 + 1)
    words >>= _U64(32)
    return words[0] * _U64(10**8) + words[1]


def _decimals(data: bytes, starts: np.ndarray) -> np.ndarray | None:
    """The tokens at byte offsets ``starts`` as float64, or ``None`` if one is unusual.

    Why: a C-level text reader spends its time on every character of every token; here each
    step is one vectorised pass over all tokens at once (the bytes are known to be digits,
    ``.+-eE`` or whitespace). Bit-identical to ``float``: a token is taken only when it is
    ``[sign] digits [. digits] [(e|E) [sign] digits]`` with a mantissa digit, at most 15 bytes
    (at most 6 from the e on). Its mantissa digits m are then an exact integer (< 10**15 <
    2**53), and when its decimal exponent k is within +-22, 10**|k| is exact too and one IEEE
    multiplication or division rounds m * 10**k correctly -- Clinger's fast path, the one
    ``strtod`` itself takes for such input. Any other token (longer, an exponent out of range,
    malformed) makes it return ``None``: the caller then uses the general converter, which
    also names the error.
    """
    n = len(starts)
    if not n:
        return np.zeros(0)
    buf = np.frombuffer(data, dtype=np.uint8)
    if len(buf) - int(starts.max()) <= _WIDTH:  # a token near the end: pad with NULs
        buf = np.concatenate((buf, np.zeros(_WIDTH, dtype=np.uint8)))
    windows = np.ndarray((len(buf) - _WIDTH + 1,), f"V{_WIDTH}", buf, strides=(1,))
    # each token and what follows it, word-major: c[0, i] are bytes 0-7 of token i, c[1, i] 8-15
    c = windows[starts].view(np.uint64).reshape(n, 2).T.copy().view(np.uint8).reshape(2, n, 8)
    space = c <= 32
    is_e = (c | 32) == 101
    inside = _before(space)  # the token's bytes
    mantissa = _before(is_e | space)  # before the exponent
    integer = _before(is_e | space | (c == 46))  # before the point
    length, epos, dpos = _count(inside), _count(mantissa), _count(integer)
    first = c[0, :, 0]
    lead = (first == 43) | (first == 45)
    has_dot = dpos < epos
    has_e = epos < length
    rows_e = np.flatnonzero(has_e)  # rare: most tokens have no exponent
    exp_sign = np.zeros(n, dtype=bool)
    if len(rows_e):
        column = np.minimum(epos[rows_e] + 1, _WIDTH - 1)  # (a 16-byte token is refused)
        after_e = c[column >> 3, rows_e, column & 7]
        exp_sign[rows_e] = (after_e == 43) | (after_e == 45)
    value = c - 48
    digit = value < 10
    # The bytes other than digits can only be the sign (first), the point (at dpos), the e
    # (at epos) and the exponent's sign (after it): they are, exactly when the digits are
    # all the rest.
    if not (
        (length < _WIDTH).all()  # the token ends within the window
        and (_count(digit & inside) == length - lead - has_dot - has_e - exp_sign).all()
        and (epos - lead - has_dot >= 1).all()  # a mantissa digit
        and (~has_e | (length - epos - 1 - exp_sign >= 1)).all()  # an exponent digit
        and (length - epos <= 6).all()  # at most 6 bytes from the e on
    ):
        return None
    fraction = digit & mantissa & ~integer
    # the integer digits one column to the right: then digit j weighs 10**(15 - j) in both parts
    moved = _shift(value * (digit & integer)) | value * fraction
    m = _digits_value(moved).astype(np.float64) / _POW10[15 - epos + has_dot]  # exact
    m *= 1.0 - 2.0 * (first == 45)  # the sign (-0.0 too), exactly
    k = dpos + has_dot - epos  # minus the fraction digits
    if len(rows_e):  # the exponents, one token at a time
        where = zip(
            starts[rows_e].tolist(), epos[rows_e].tolist(), length[rows_e].tolist(), strict=True
        )
        k[rows_e] += [int(data[s + e + 1 : s + n]) for s, e, n in where]
    if (np.abs(k) > 22).any():
        return None
    scale = _POW10[np.abs(k)]
    return np.where(k >= 0, m * scale, m / scale)


def _token_ends(buf: np.ndarray) -> np.ndarray:
    tok = buf > 32
    return np.flatnonzero(tok[:-1] > tok[1:]) + 1


def _to_float(buf: np.ndarray, start: np.ndarray, end: np.ndarray) -> np.ndarray | None:
    """The tokens ``buf[start:end]`` as float64 (one strided row gather and one C-level cast)."""
    length = end - start
    width = int(length.max())
    padded = np.concatenate((buf, np.zeros(width, dtype=np.uint8)))
    chars = sliding_window_view(padded, width)[start]
    chars *= np.arange(width) < length[:, None]  # NUL after the token = end of an "S" string
    try:
        return chars.view(f"S{width}").ravel().astype(np.float64)
    except ValueError:
        return None


def _first_invalid(buf: np.ndarray, start: np.ndarray, end: np.ndarray) -> int:
    """Index of the first token that is not a finite number, by bisection with bulk casts."""
    lo, hi = 0, len(start)  # the first bad token is in [lo, hi)
    while hi - lo > 1:
        mid = (lo + hi) // 2
        part = _to_float(buf, start[lo:mid], end[lo:mid])
        if part is not None and np.isfinite(part).all():
            lo = mid
        else:
            hi = mid
    return lo


def parse_skeleton(
    data: bytes | bytearray | memoryview,
    path: str | Path = "<bytes>",
    max_bodies: int = MAX_KINECT_BODIES,
) -> np.ndarray:
    """Joint positions of the first ``max_bodies`` bodies of every frame.

    Returns float64 ``(max_bodies, T, NUM_JOINTS, 3)`` with zeros where a frame has fewer bodies,
    T being the file's frame count, i.e. exactly what the reference reads before it selects
    bodies. Every value is finite.
    """
    if not isinstance(data, bytes):
        data = bytes(data)  # a bytearray or memoryview (both readers need bytes)
    plain = _parse_plain(data, max_bodies)
    if plain is not None:  # else not the plain case: the NumPy reader reads it or says why
        return plain
    return _parse(data, str(path), max_bodies)[0]


def _parse_plain(data: bytes, max_bodies: int) -> np.ndarray | None:
    """:func:`parse_skeleton` by the compiled reader, or ``None`` (not built, or it declined)."""
    if _skeleton_fast is None:
        return None
    plain = _skeleton_fast.parse(data, max_bodies, NUM_JOINTS, FIELDS_PER_BODY, FIELDS_PER_JOINT)
    if plain is None:
        return None
    frames, values = plain
    return np.frombuffer(values, np.float64).reshape(max_bodies, frames, NUM_JOINTS, 3)


def line_of_largest(data: bytes, path: str | Path = "<bytes>") -> tuple[int, float]:
    """1-based line and value of the file's largest-magnitude coordinate (for overflow errors)."""
    _, xyz, lines = _parse(data, str(path), MAX_KINECT_BODIES)
    if not lines.size:
        return 1, 0.0
    flat = int(np.argmax(np.abs(xyz)))
    return int(lines.ravel()[flat // 3]) + 1, float(xyz.ravel()[flat])


def read_skeleton(path: str | Path, max_bodies: int = MAX_KINECT_BODIES) -> np.ndarray:
    """Read one ``.skeleton`` file; see :func:`parse_skeleton`."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise SkeletonFormatError(path, None, f"cannot read file: {exc.strerror or exc}") from exc
    return parse_skeleton(data, path, max_bodies)
