"""``classes.txt``: one reader for the files import writes and the ``--classes`` list it reads."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from skelact.data.classes import read_classes
from skelact.data.importer import ImportDataError, _read_classes
from skelact.data.safe_pickle import DatasetError


def test_a_byte_order_mark_and_blank_lines_at_the_end_are_ignored(tmp_path: Path) -> None:
    path = tmp_path / "classes.txt"
    path.write_bytes("\ufeffwave\n jump \nsit\n\n  \n".encode())
    assert read_classes(path) == ["wave", "jump", "sit"]
    assert read_classes(path, num_classes=3) == ["wave", "jump", "sit"]
    assert _read_classes(path) == ["wave", "jump", "sit"]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", ": no class names (one name per line"),
        ("\n\n", ": no class names (one name per line"),
        ("wave\n\njump\n", ":2: blank line; one class name per line"),
        ("wave\njump\nwave\n", ":3: 'wave' is listed twice (also line 1)"),
    ],
)
def test_a_bad_list_names_the_file_and_line(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "classes.txt"
    path.write_text(text)
    expected = "^" + re.escape(f"{path}{message}")
    with pytest.raises(DatasetError, match=expected):
        read_classes(path)
    with pytest.raises(ImportDataError, match=expected):  # import's --classes: the same words
        _read_classes(path)


def test_an_unreadable_list_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "classes.txt"
    path.write_bytes(b"wave\n\xff\xfe\n")
    with pytest.raises(ImportDataError, match="^" + re.escape(f"{path}: cannot read the class")):
        _read_classes(path)
    with pytest.raises(ImportDataError, match=re.escape(f"{tmp_path / 'none.txt'}: cannot read")):
        _read_classes(tmp_path / "none.txt")
