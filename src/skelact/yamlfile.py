"""Strict YAML reading, shared by ``params.yaml`` and layout files.

Why strict: PyYAML silently keeps the last of two equal keys and reads ``1e-4`` as a string (YAML
1.1), so a duplicated or mistyped setting would be used without a word. Here a duplicate key is an
error naming both lines, and exponent floats are floats (the YAML 1.2 rule).
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

import yaml

from skelact.errors import SkelactError

__all__ = ["StrictLoader", "parse_scalar", "read_yaml"]


class StrictLoader(yaml.SafeLoader):
    """SafeLoader that refuses duplicate keys and reads ``1e-4`` as a float (YAML 1.2 rule)."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict:
        self.flatten_mapping(node)
        seen: dict[Any, int] = {}
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=True)
            line = key_node.start_mark.line + 1
            if isinstance(key, str | int | float | bool) and key in seen:
                raise yaml.constructor.ConstructorError(
                    None, None, f"duplicate key {key!r} (first on line {seen[key]})",
                    key_node.start_mark,
                )  # fmt: skip
            if isinstance(key, str | int | float | bool):
                seen[key] = line
        return super().construct_mapping(node, deep)


StrictLoader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(?:[0-9][0-9_]*)(?:\.[0-9_]*)?[eE][-+]?[0-9]+$"),
    list("-+0123456789"),
)


def parse_scalar(text: str) -> Any:
    """One command-line value read as a YAML scalar (``1``, ``0.5``, ``true``); else the text."""
    try:
        return yaml.load(text, Loader=StrictLoader)  # noqa: S506 - a SafeLoader subclass
    except yaml.YAMLError:
        return text


def read_yaml(path: str | os.PathLike[str], error: type[SkelactError], what: str = "file") -> Any:
    """Parse a YAML file; any problem raises ``error`` naming ``file:line`` and the problem."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise error(f"{p}: no such {what}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise error(f"{p}: cannot read: {exc}") from None
    try:
        return yaml.load(text, Loader=StrictLoader)  # noqa: S506 - a SafeLoader subclass
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{p}:{mark.line + 1}" if mark is not None else str(p)
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise error(f"{where}: not valid YAML: {problem}") from None
