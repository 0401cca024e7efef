"""The .skeleton reader: exact values, both line endings, and a precise error for each bad input."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from skelact.data.skeleton_file import SkeletonFormatError, parse_skeleton, read_skeleton

BODY_LINE = "72057594037991994 0 1 1 1 1 0 0.1820031 0.1191541 2"


def skeleton_text(frames: list[list[np.ndarray]], newline: str = "\r\n") -> str:
    """NTU-format text: each frame is a list of (25, 3) bodies; unused fields are filler."""
    lines = [str(len(frames))]
    for bodies in frames:
        lines.append(str(len(bodies)))
        for body in bodies:
            lines += [BODY_LINE, "25"]
            lines += [f"{x:.7g} {y:.7g} {z:.7g} 239.05 232.661 903.5 608.8 -0.02 -0.7 0.2 0.6 2"
                      for x, y, z in body]  # fmt: skip
    return newline.join(lines) + newline


def naive_read(path: Path) -> np.ndarray:
    """Line-by-line reader with Python floats: the independent check of the fast reader."""
    lines = path.read_text().splitlines()
    num_frames = int(lines[0])
    out = np.zeros((4, num_frames, 25, 3))
    i = 1
    for t in range(num_frames):
        num_bodies = int(lines[i])
        i += 1
        for m in range(num_bodies):
            i += 2
            for j in range(25):
                if m < 4:
                    out[m, t, j] = [float(v) for v in lines[i].split()[:3]]
                i += 1
    return out


def raw_files(reference_dir: Path) -> list[Path]:
    return sorted((reference_dir / "ntu_prep" / "raw").glob("*.skeleton"))


def test_matches_naive_reader_bit_for_bit(reference_dir) -> None:
    for path in raw_files(reference_dir)[::3]:
        assert np.array_equal(read_skeleton(path), naive_read(path)), path.name


def test_lf_and_crlf_give_the_same_values(reference_dir) -> None:
    data = raw_files(reference_dir)[0].read_bytes()
    assert b"\r\n" in data
    assert np.array_equal(parse_skeleton(data), parse_skeleton(data.replace(b"\r\n", b"\n")))


def test_scientific_notation_and_bodies_beyond_four(tmp_path) -> None:
    rng = np.random.default_rng(0)
    bodies = [rng.normal(size=(25, 3)) for _ in range(5)]
    bodies[0][0] = [-7.257856e-05, 1.5e-3, 2.0]
    frames = [bodies, [], bodies[:1]]  # 5 bodies, then no body, then one
    text = skeleton_text(frames).replace("-7.257856e-05", "-7.257856E-05")
    assert "E-05" in text
    out = parse_skeleton(text.encode())
    assert out.shape == (4, 3, 25, 3)
    assert out[0, 0, 0, 0] == float("-7.257856E-05")
    np.testing.assert_allclose(out[:, 0], np.stack(bodies[:4]), rtol=1e-6)
    assert not out[:, 1].any()
    assert not out[1:, 2].any()


def test_long_sequences_are_kept_whole() -> None:
    rng = np.random.default_rng(1)
    frames = [[rng.normal(size=(25, 3))] for _ in range(450)]
    out = parse_skeleton(skeleton_text(frames, "\n").encode())
    assert out.shape == (4, 450, 25, 3)


def _bad(text: bytes, line: int | None, match: str) -> None:
    with pytest.raises(SkeletonFormatError, match=match) as info:
        parse_skeleton(text, "bad.skeleton")
    assert info.value.line == line
    assert str(info.value).startswith(f"bad.skeleton:{line}" if line else "bad.skeleton")


@pytest.fixture(scope="module")
def good() -> list[str]:
    rng = np.random.default_rng(2)
    frames = [[rng.normal(size=(25, 3))], [rng.normal(size=(25, 3)), rng.normal(size=(25, 3))]]
    return skeleton_text(frames).split("\r\n")


def _join(lines: list[str]) -> bytes:
    return "\r\n".join(lines).encode()


def test_good_fixture_parses(good) -> None:
    assert parse_skeleton(_join(good)).shape == (4, 2, 25, 3)


def test_empty_file() -> None:
    _bad(b"", None, "empty file")
    _bad(b"\r\n  \r\n", None, "empty file")


def test_truncated_file(good) -> None:
    _bad(_join(good[:40]), 40, "file ends early")  # cut after a whole line
    cut = _join(good)[: len(_join(good[:40])) - 20]  # cut inside a joint line
    _bad(cut, 40, "file ends early inside frame 2, body 1")
    lines = list(good)
    lines[10] = " ".join(lines[10].split()[:7])
    _bad(_join(lines), 11, "joint line has 7 fields, expected 12")
    _bad(_join(good[:29]), 29, "file ends early: expected the body count of frame 2")


def test_non_numeric_token_and_nan(good) -> None:
    lines = list(good)
    lines[10] = lines[10].replace("239.05", "2x9.05")
    _bad(_join(lines), 11, "non-numeric token '2x9.05'")
    lines = list(good)
    lines[10] = "NaN " + lines[10].split(" ", 1)[1]
    _bad(_join(lines), 11, "NaN value 'NaN'")
    lines = list(good)
    lines[10] = "1.2.3 " + lines[10].split(" ", 1)[1]
    _bad(_join(lines), 11, "invalid number '1.2.3'")
    lines = list(good)
    lines[10] = "1e999 " + lines[10].split(" ", 1)[1]
    _bad(_join(lines), 11, "invalid number '1e999'")
    lines = list(good)
    lines[1] = "one"
    _bad(_join(lines), 2, "non-numeric token 'one'")
    _bad(b"3\r\n1.5\r\n", 2, "body count of frame 1 '1.5' is not an integer")


def test_wrong_joint_count(good) -> None:
    lines = list(good)
    lines[3] = "24"
    _bad(_join(lines), 4, "joint count is 24 .*expected 25")


def test_body_line_with_too_few_fields(good) -> None:
    lines = list(good)
    lines[2] = lines[2].rsplit(" ", 1)[0]
    _bad(_join(lines), 3, "body line .* has 9 fields, expected 10")


def test_joint_line_with_extra_field_and_trailing_data(good) -> None:
    lines = list(good)
    lines[20] += " 7"
    _bad(_join(lines), 21, "joint line has 13 fields, expected 12")
    _bad(_join([*good[:-1], "5", ""]), len(good), "unexpected data after the last of the 2 frames")


def test_zero_frames_and_unreadable_file(tmp_path) -> None:
    _bad(b"0\r\n", 1, "no frames")
    with pytest.raises(SkeletonFormatError, match="cannot read file"):
        read_skeleton(tmp_path / "absent.skeleton")


def test_field_moved_between_lines_is_caught(good) -> None:
    """The bulk field check must see a wrong count on a line even when the file's total is right."""
    lines = list(good)
    head, last = lines[10].rsplit(" ", 1)
    lines[10], lines[11] = head, f"{lines[11]} {last}"
    _bad(_join(lines), 11, "joint line has 11 fields, expected 12")
    lines = list(good)
    lines[2], lines[4] = f"{lines[2]} 7", lines[4].rsplit(" ", 1)[0]
    _bad(_join(lines), 3, "body line .* has 11 fields, expected 10")


def test_extra_whitespace_between_fields_is_accepted(good) -> None:
    spaced = [line.replace(" ", " \t ") for line in good]
    assert np.array_equal(parse_skeleton(_join(spaced)), parse_skeleton(_join(good)))


def _tokens_at(tokens: list[str]) -> tuple[bytes, np.ndarray]:
    data = " ".join(tokens).encode()
    return data, np.cumsum([0] + [len(t) + 1 for t in tokens[:-1]])


def test_bulk_decimal_conversion_is_float_bit_for_bit() -> None:
    """The vectorised fast path rounds exactly like ``float``, or declines (never guesses)."""
    from skelact.data.skeleton_file import _decimals

    rng = np.random.default_rng(3)
    tokens = ["0", "-0", "-0.0", "+.5", "1.", "007", "1e5", "1E+05", "-3.308793e-05",
              "123456789012345", "0.000000000001", "9.999999e22", "4.030961e-05"]  # fmt: skip
    for digits in range(1, 10):
        values = rng.normal(size=300) * 10.0 ** rng.integers(-12, 8, size=300)
        tokens += [f"{v:.{digits}g}" for v in values] + [f"{v:.{digits}f}" for v in values]
    tokens = [t for t in tokens if len(t) <= 15]
    data, starts = _tokens_at(tokens)
    got = _decimals(data, starts)
    want = np.array([float(t) for t in tokens])
    assert got is not None and got.tobytes() == want.tobytes()  # -0.0 included


@pytest.mark.parametrize(
    "token",
    ["1.2.3", "--1", "1-", "1e", "e5", ".", "-", "1e5.2", "1e+-5", "1ee5", ".e5", "1e+",
     "1234567890123456", "123456789012345e", "12345678901234e5", "1e99", "1e-30", "1e12345",
     "+-1"],
)  # fmt: skip
def test_bulk_decimal_conversion_declines_what_it_cannot_take(token: str) -> None:
    """Malformed, too long or out-of-range tokens go to the general converter (and its errors)."""
    from skelact.data.skeleton_file import _decimals

    data, starts = _tokens_at(["1.5", token, "2"])
    assert _decimals(data, starts) is None
