"""path_map: prefix rewrites that carry a catalog written on one machine onto another.

Labs acquire on Windows (``D:\\Dropbox\\Lab\\experimental_data\\rat1\\...``) and analyse a
copy on a Linux server. Rather than rewriting every row, a deployment states once where
each acquisition root lives under data_path::

    {"D:\\\\Dropbox\\\\Lab\\\\experimental_data": ".", "E:\\\\scope": "scope_copy"}

Rules are tried in order and the first whose prefix matches wins. Matching is by whole
path components and ignores separator style and case, as Windows does, so ``d:/dropbox/lab``
matches ``D:\\Dropbox\\Lab\\`` but not ``D:\\Dropbox\\Laboratory``. The rewritten path is
then validated like any other catalog cell: it must stay inside data_path.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

from ace_assets.catalog.cells import preview
from ace_assets.errors import AceInputError

_SEPARATORS = re.compile(r"[\\/]+")
_DRIVE = re.compile(r"^[A-Za-z]:$")
#: where a deployment sets the map; named in every message about it
SETTING = "path_map (run config resources.paths.config.path_map, ACE_PATH_MAP, or --path-map)"


def split_path(text: str) -> tuple[str, tuple[str, ...]]:
    """(root, components): root is ``//`` (UNC), ``/`` (absolute) or ``""``; ``.`` dropped."""
    s = text.strip().strip('"').strip()
    if re.match(r"^[\\/]{2}", s):
        root = "//"
    elif s[:1] in ("/", "\\"):
        root = "/"
    else:
        root = ""
    parts = tuple(p for p in _SEPARATORS.split(s) if p not in ("", "."))
    return root, parts


def is_absolute(text: str) -> bool:
    """Absolute on either system: a root, a UNC share, a drive letter or a home folder."""
    root, parts = split_path(text)
    return bool(root) or bool(parts and (_DRIVE.match(parts[0]) or parts[0].startswith("~")))


@dataclass(frozen=True)
class Rule:
    prefix: str
    replacement: str

    def __str__(self) -> str:
        return f"'{self.prefix}' -> '{self.replacement}'"


@dataclass(frozen=True)
class Mapped:
    """A cell rewritten by a rule: the new text and the rule that did it (for messages)."""

    text: str
    rule: Rule


@dataclass(frozen=True)
class PathMap:
    rules: tuple[Rule, ...] = ()

    def __bool__(self) -> bool:
        return bool(self.rules)

    def apply(self, text: str) -> Mapped | None:
        """The cell with the first matching prefix replaced, or None when no rule matches."""
        root, parts = split_path(text)
        folded = tuple(p.casefold() for p in parts)
        for rule in self.rules:
            rule_root, rule_parts = split_path(rule.prefix)
            n = len(rule_parts)
            if rule_root != root or tuple(p.casefold() for p in rule_parts) != folded[:n]:
                continue
            _, head = split_path(rule.replacement)
            return Mapped("/".join((*head, *parts[n:])) or ".", rule)
        return None

    def as_dict(self) -> dict[str, str]:
        return {r.prefix: r.replacement for r in self.rules}

    @classmethod
    def of(cls, rules: Mapping[str, str] | Iterable[tuple[str, str]], source: str = "") -> PathMap:
        """Checked rules: non-empty prefixes, replacements relative to data_path."""
        pairs = list(rules.items()) if isinstance(rules, Mapping) else list(rules)
        out = []
        for prefix, replacement in pairs:
            where = f"path_map rule '{preview(str(prefix))}'"
            if not isinstance(prefix, str) or not isinstance(replacement, str):
                raise _error(f"{where}: prefix and replacement must both be text", source)
            if not split_path(prefix)[1] and not split_path(prefix)[0]:
                raise _error(f"{where}: the prefix is empty", source)
            if is_absolute(replacement):
                raise _error(
                    f"{where}: the replacement '{preview(replacement)}' is absolute; it must be "
                    "relative to data_path ('.' for data_path itself)",
                    source,
                )
            out.append(Rule(prefix, replacement))
        return cls(tuple(out))

    @classmethod
    def parse(cls, value: str | None) -> PathMap:
        """From JSON text, or from the path of a JSON file: an object or a list of pairs."""
        if value is None or not value.strip():
            return cls()
        text = value.strip()
        source = ""
        if text[0] not in '{["':
            path = Path(text).expanduser()
            source = str(path)
            try:
                text = path.read_text(encoding="utf-8-sig")
            except OSError as exc:
                raise _error(
                    f"path_map file cannot be read ({exc.strerror or exc}); give a JSON file "
                    'such as {"D:\\\\Lab\\\\data": "."}, or the JSON itself',
                    source,
                ) from None
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise _error(
                f"path_map is not valid JSON ({exc.msg} at line {exc.lineno} column {exc.colno}); "
                'write each Windows backslash twice ("D:\\\\Lab") or use forward slashes '
                '("D:/Lab"): matching ignores separator style',
                source,
            ) from None
        if isinstance(data, dict):
            return cls.of(data, source)
        if isinstance(data, list) and all(isinstance(p, list) and len(p) == 2 for p in data):
            return cls.of([(p[0], p[1]) for p in data], source)
        raise _error(
            'path_map must be a JSON object {"prefix": "replacement", ...} or a list of '
            '["prefix", "replacement"] pairs, tried in order',
            source,
        )


def _error(message: str, source: str) -> AceInputError:
    return AceInputError(f"{message}. Set it in {SETTING}.", file=source or None, column="path_map")
