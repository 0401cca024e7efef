"""``classes.txt``: the action names of a data set, one per line, in class-index order.

``skelact import`` writes it next to the pickles it makes, because custom labels are names and
the pickles hold only indices; test, predict and the report read it back so that a confusion
matrix says "wave" rather than NTU's "drink water" for class 0. NTU data has no such file and
keeps NTU's own action names. The file is looked for in the pickle's folder and in the folder
above it (the prepared-data root, when the pickles sit in one folder per benchmark).
"""

from __future__ import annotations

from pathlib import Path

from skelact.data.safe_pickle import DatasetError

__all__ = ["CLASSES_FILE", "find_classes", "read_classes"]

CLASSES_FILE = "classes.txt"


def find_classes(data_path: str | Path) -> Path | None:
    """The ``classes.txt`` belonging to a data pickle, or None when there is none."""
    folder = Path(data_path).parent
    for candidate in (folder / CLASSES_FILE, folder.parent / CLASSES_FILE):
        if candidate.is_file():
            return candidate
    return None


def read_classes(path: str | Path, num_classes: int | None = None) -> list[str]:
    """The class names in ``path``; ``num_classes``, when given, must equal their count.

    An empty file, a blank line or a name listed twice is an error naming the file and line:
    the line number is the class index, so a stray line would shift every name after it. Blank
    lines at the end shift nothing and are ignored, as is a UTF-8 byte-order mark (editors on
    Windows write one); ``skelact import --classes`` reads the user's list with these rules too.
    """
    path = Path(path)
    try:
        lines = path.read_text(encoding="utf-8-sig").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise DatasetError(f"{path}: cannot read the class names: {exc}") from None
    while lines and not lines[-1].strip():
        lines.pop()
    if not lines:
        raise DatasetError(f"{path}: no class names (one name per line, in class-index order)")
    seen: dict[str, int] = {}
    for number, line in enumerate(lines, start=1):
        name = line.strip()
        if not name:
            raise DatasetError(f"{path}:{number}: blank line; one class name per line")
        if name in seen:
            raise DatasetError(
                f"{path}:{number}: {name!r} is listed twice (also line {seen[name]})"
            )
        seen[name] = number
    if num_classes is not None and len(lines) != num_classes:
        raise DatasetError(
            f"{path}: {len(lines)} class name(s), but the model has {num_classes} classes; the "
            "file must list one name per class, in index order"
        )
    return [line.strip() for line in lines]
