"""The compiled one-pass reader: built, bit-identical to the NumPy reader, and never more lenient.

Its contract (``_skeleton_fast.c``) is to read a subset of what the NumPy reader reads, with the
same values bit for bit, and to decline everything else, so that errors keep their one
implementation. These tests check each half: equality on real and generated files, and, on
thousands of mutated files, that whatever it accepts the NumPy reader reads the same way.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from skelact.data import skeleton_file
from skelact.data.skeleton_file import NUM_JOINTS, SkeletonFormatError, parse_skeleton

fast = skeleton_file._skeleton_fast


def numpy_reader(data: bytes, max_bodies: int = 4) -> np.ndarray:
    return skeleton_file._parse(data, "x.skeleton", max_bodies)[0]


def c_reader(data: bytes, max_bodies: int = 4) -> np.ndarray | None:
    return skeleton_file._parse_plain(data, max_bodies)


def test_the_extension_is_built() -> None:
    """Built on install (CI has a C compiler); without it only the NumPy reader would run."""
    assert fast is not None, "skelact.data._skeleton_fast was not compiled (pip install -e .)"


@pytest.fixture(scope="module")
def raw(reference_dir: Path) -> list[bytes]:
    return [p.read_bytes() for p in sorted((reference_dir / "ntu_prep" / "raw").glob("*.skeleton"))]


@pytest.mark.parametrize("newline", [b"\r\n", b"\n"])
@pytest.mark.parametrize("max_bodies", [4, 1])
def test_reference_files_bit_for_bit(raw: list[bytes], newline: bytes, max_bodies: int) -> None:
    for data in raw:
        data = data.replace(b"\r\n", newline)
        got = c_reader(data, max_bodies)
        assert got is not None  # the plain case: the compiled reader takes every reference file
        want = numpy_reader(data, max_bodies)
        assert got.shape == want.shape and got.tobytes() == want.tobytes()


def _file(tokens: list[str], newline: str = "\n") -> bytes:
    """One frame per 25*3 tokens, one body per frame; the other fields are filler."""
    body = "72057594037991994 0 1 1 1 1 0 0.1820031 0.1191541 2"
    lines = [str(len(tokens) // (NUM_JOINTS * 3))]
    for f in range(0, len(tokens), NUM_JOINTS * 3):
        lines += ["1", body, "25"]
        for j in range(f, f + NUM_JOINTS * 3, 3):
            lines.append(" ".join(tokens[j : j + 3]) + " 239.05 232.661 903.5 608.8 -0.02 -1 0 1 2")
    return (newline.join(lines) + newline).encode()


def _exact_path(token: str) -> bool:
    """Whether ``token`` is in the exact path: digits m <= 2**53, decimal exponent k in +-22."""
    mantissa, _, exponent = token.lower().partition("e")
    whole, _, fraction = mantissa.lstrip("+-").partition(".")
    digits = whole + fraction
    k = int(exponent or 0) - len(fraction)
    return len(digits) <= 19 and int(digits) <= 2**53 and -22 <= k <= 22


def test_numbers_round_like_float() -> None:
    """A plain decimal in the exact path is converted like ``float``; any other one is declined."""
    rng = np.random.default_rng(5)
    tokens = ["0", "-0", "-0.0", "+.5", "1.", "007", "1e5", "1E+05", "-3.308793e-05", "9e22",
              "9007199254740992", "0.000000000001", "4.030961e-05", "1e-22", "+1.5E-3"]  # fmt: skip
    for digits in range(1, 18):
        values = rng.normal(size=100) * 10.0 ** rng.integers(-14, 10, size=100)
        tokens += [f"{v:.{digits}g}" for v in values] + [f"{v:.{digits}f}" for v in values]
    exact = [t for t in tokens if _exact_path(t)]
    assert len(exact) > 2000 and len(tokens) - len(exact) > 100
    for t in tokens:  # the boundary, token by token
        assert (c_reader(_file([t] * NUM_JOINTS * 3)) is not None) == _exact_path(t), t
    exact += ["0"] * (-len(exact) % (NUM_JOINTS * 3))
    data = _file(exact)
    got = c_reader(data)
    assert got is not None
    want = np.array([float(t) for t in exact])
    assert got[0].tobytes() == want.tobytes()  # -0.0 included
    assert got.tobytes() == numpy_reader(data).tobytes()


@pytest.mark.parametrize(
    "token", ["12345678901234567890", "9007199254740993", "1e23", "1e-23", "1e300", "0.5e-30"]
)
def test_numbers_outside_the_exact_path_are_declined_and_read_by_numpy(token: str) -> None:
    tokens = [token] + ["1.5"] * (NUM_JOINTS * 3 - 1)
    data = _file(tokens)
    assert c_reader(data) is None
    assert parse_skeleton(data)[0, 0, 0, 0] == float(token)  # the NumPy reader takes it


@pytest.mark.parametrize(
    "edit",
    [
        lambda d: d.replace(b"1\n", b"+1\n", 1),  # a signed count (int() takes it)
        lambda d: b" " + d,  # a space before the frame count
        lambda d: d.replace(b"\n25\n", b"\n25 \n", 1),  # a space after the joint count
        lambda d: d.replace(b"\n25\n", b"\n025\n", 1),
    ],
)
def test_unusual_but_valid_headers_are_declined_and_read_by_numpy(edit) -> None:
    data = _file(["0.25"] * (NUM_JOINTS * 3))
    changed = edit(data)
    assert changed != data
    if c_reader(changed) is None:
        assert parse_skeleton(changed).tobytes() == numpy_reader(data).tobytes()
    else:  # '025' is plain enough for both
        assert c_reader(changed).tobytes() == numpy_reader(changed).tobytes()


def test_mutated_files_are_declined_or_read_identically() -> None:
    """Thousands of one-byte edits: where the compiled reader answers, the NumPy one agrees."""
    rng = np.random.default_rng(11)
    frames = [[rng.normal(size=(NUM_JOINTS, 3)) for _ in range(n)] for n in (1, 2, 0, 5)]
    lines = [str(len(frames))]
    for bodies in frames:
        lines.append(str(len(bodies)))
        for body in bodies:
            lines += ["72057594037991994 0 1 1 1 1 0 0.1820031 0.1191541 2", "25"]
            lines += [f"{x:.7g} {y:.5e} {z:.3f} 1 2 3 4 5 -0.5 0.5 1e-3 2" for x, y, z in body]
    base = ("\r\n".join(lines) + "\r\n").encode()
    alphabet = np.frombuffer(b"0123456789.-+eE \t\r\nx\x00", dtype=np.uint8)
    accepted = declined = 0
    for _ in range(3000):
        data = bytearray(base)
        pos = int(rng.integers(len(data)))
        kind = rng.integers(3)
        byte = int(rng.choice(alphabet))
        if kind == 0:
            data[pos] = byte
        elif kind == 1:
            data.insert(pos, byte)
        else:
            del data[pos]
        data = bytes(data)
        got = c_reader(data)
        if got is None:
            declined += 1
            continue
        accepted += 1
        try:
            want = numpy_reader(data)
        except SkeletonFormatError as exc:  # the compiled reader must never be more lenient
            raise AssertionError(f"compiled reader accepted a bad file: {exc}") from None
        assert got.shape == want.shape and got.tobytes() == want.tobytes()
    assert accepted > 1000 and declined > 300  # both halves of the contract were exercised


def test_non_bytes_input_goes_through_numpy(raw: list[bytes]) -> None:
    data = raw[0]
    assert parse_skeleton(bytearray(data)).tobytes() == parse_skeleton(data).tobytes()
    assert parse_skeleton(memoryview(data)).tobytes() == parse_skeleton(data).tobytes()
