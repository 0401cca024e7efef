"""What a raw folder holds: the ``.skeleton`` samples, and everything that is not one.

A raw folder is rarely clean (a missing-list ``.txt``, archives, a subfolder per setup, a broken
symlink into an unmounted disk), and a stage that quietly reads part of it trains on part of the
data. So the listing says what it found and what it left out: dangling ``.skeleton`` links are
bad input, ``.skeleton`` files below subfolders are counted (and read with ``recursive``).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from skelact.errors import SkelactError

SUFFIX = ".skeleton"


class PreprocessError(SkelactError, ValueError):
    """A user-facing problem with the preprocessing input (folder, file, option); says which.

    Defined here, the first module of the stage, so that every part of it raises the same class
    (``skelact.data.preprocess`` re-exports it).
    """


@dataclass
class RawListing:
    """The samples of a raw folder, sorted by name, and what was not taken."""

    files: list[tuple[str, Path]] = field(default_factory=list)  # (stem, path)
    other: int = 0  # entries that are neither a .skeleton file nor a folder
    dangling: list[Path] = field(default_factory=list)  # .skeleton links to nothing
    in_subfolders: int = 0  # .skeleton files below subfolders, not taken (recursive=False)


def list_raw_dir(raw_dir: Path, recursive: bool = False) -> RawListing:
    """List ``raw_dir``; with ``recursive``, its subfolders' samples are taken too.

    Symlinked folders are not followed (no loops); a sample name found twice is an error that
    names both places, because either choice would silently drop one of them.
    """
    if not raw_dir.exists():
        raise PreprocessError(f"raw directory {raw_dir} does not exist")
    if not raw_dir.is_dir():
        raise PreprocessError(f"raw directory {raw_dir} is not a directory")
    listing = RawListing()
    seen: dict[str, Path] = {}
    pending = [(raw_dir, True)]
    while pending:
        folder, take = pending.pop()
        for entry in _scan(folder):
            path = Path(entry.path)
            if entry.is_dir(follow_symlinks=False):
                pending.append((path, take and recursive))
            elif not entry.name.endswith(SUFFIX):
                listing.other += folder == raw_dir
            elif not take:
                listing.in_subfolders += entry.is_file()
            elif entry.is_file():
                stem = entry.name[: -len(SUFFIX)]
                if stem in seen:
                    raise PreprocessError(f"sample {stem} is found twice: {seen[stem]} and {path}")
                seen[stem] = path
                listing.files.append((stem, path))
            elif entry.is_symlink() and not path.exists():
                listing.dangling.append(path)
            else:
                listing.other += folder == raw_dir
    listing.files.sort()
    listing.dangling.sort()
    return listing


def _scan(folder: Path) -> list[os.DirEntry]:
    try:
        with os.scandir(folder) as entries:
            return list(entries)
    except OSError as exc:
        raise PreprocessError(
            f"cannot read raw directory {folder}: {exc.strerror or exc}"
        ) from None
