"""Reading policy YAML into plain data, with positions when an error needs them.

ruamel.yaml's parser (its C accelerator when ``ruamel.yaml.clib`` is installed) produces the
event stream; this module builds dicts/lists from it with the YAML 1.2 core schema. Building
from events rather than through ruamel's constructor is what keeps a 1,000-rule policy fast to
load, and it gives every node's position: normally only duplicate keys need one, and when a
policy turns out to be invalid it is read once more with ``track=True`` so that each error can be
reported as ``file:line:col``.

Supported: block and flow style, quoting, anchors/aliases, merge keys (``<<``), the core tags
(``!!str !!int !!float !!bool !!null !!map !!seq``). Anything else is a load error.
"""

from __future__ import annotations

import re
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml import events as ev
from ruamel.yaml.error import MarkedYAMLError, YAMLError

from aegis.errors import PolicyError, PolicyIssue

try:  # ruamel's own C accelerator (ruamel.yaml.clib)
    from _ruamel_yaml import CParser  # type: ignore[import-not-found,unused-ignore]
except ImportError:  # pragma: no cover - the pure-Python parser is slower but equivalent
    CParser = None

Path = tuple[str | int, ...]
#: ("k", path) -> position of the key naming path; ("v", path) -> position of the value.
Locations = dict[tuple[str, Path], tuple[int, int]]

_TAG = "tag:yaml.org,2002:"
_NULLS = frozenset({"", "~", "null", "Null", "NULL"})
_BOOLS = {"true": True, "True": True, "TRUE": True, "false": False, "False": False, "FALSE": False}
_INT = re.compile(r"[-+]?[0-9]+\Z")
_FLOAT = re.compile(r"[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?\Z")
_SPECIAL_FLOATS = {
    ".inf": float("inf"),
    ".Inf": float("inf"),
    ".INF": float("inf"),
    "+.inf": float("inf"),
    "+.Inf": float("inf"),
    "+.INF": float("inf"),
    "-.inf": float("-inf"),
    "-.Inf": float("-inf"),
    "-.INF": float("-inf"),
    ".nan": float("nan"),
    ".NaN": float("nan"),
    ".NAN": float("nan"),
}


_SCALAR_TAGS: dict[str, type] = {"int": int, "float": float, "bool": bool, "null": type(None)}


class _YamlProblem(Exception):
    def __init__(self, message: str, mark: Any) -> None:
        super().__init__(message)
        self.message = message
        self.mark = mark


def _resolve_plain(text: str) -> Any:
    if text in _NULLS:
        return None
    first = text[0]
    if first in "-+.0123456789":
        if _INT.match(text):
            return int(text)
        if _FLOAT.match(text):
            return float(text)
        if text in _SPECIAL_FLOATS:
            return _SPECIAL_FLOATS[text]
        if text.startswith("0o") and len(text) > 2:
            try:
                return int(text[2:], 8)
            except ValueError:
                return text
        if text.startswith("0x") and len(text) > 2:
            try:
                return int(text[2:], 16)
            except ValueError:
                return text
        return text
    boolean = _BOOLS.get(text)
    return text if boolean is None else boolean


def _tag_name(tag: Any) -> str | None:
    if tag is None:
        return None
    text = str(getattr(tag, "value", tag))
    return None if text in ("!", "") else text


def _scalar(event: Any) -> Any:
    tag = _tag_name(event.tag)
    value = event.value
    if tag is None:
        return _resolve_plain(value) if event.implicit[0] else value
    kind = tag[len(_TAG) :] if tag.startswith(_TAG) else ""
    if kind == "str":
        return value
    wanted = _SCALAR_TAGS.get(kind)
    if wanted is None:
        raise _YamlProblem(f"unsupported YAML tag {tag!r}", event.start_mark)
    resolved = _resolve_plain(value)
    if kind == "float" and isinstance(resolved, int) and not isinstance(resolved, bool):
        return float(resolved)
    if type(resolved) is not wanted:
        raise _YamlProblem(f"{value!r} is not a valid !!{kind}", event.start_mark)
    return resolved


def _pos(mark: Any) -> tuple[int, int]:
    return (mark.line + 1, mark.column + 1)


class _Builder:
    """Turns the event stream into data; one instance per document read.

    Without ``track`` no paths are built (that is most of the cost); a duplicate key is only
    noted, and the caller re-reads with ``track=True`` to say where.
    """

    def __init__(self, file: str, track: bool) -> None:
        self.file = file
        self.track = track
        self.locs: Locations = {}
        self.issues: list[PolicyIssue] = []
        self.duplicates = False
        self.anchors: dict[str, Any] = {}
        #: How much data each anchor stands for (nodes, long strings counting extra).
        self.anchor_sizes: dict[str, int] = {}

    def build(self, next_event: Any) -> Any:
        # A frame: [container, path, pending key (or _MISSING), key mark, merges, anchor,
        #           size when opened]
        stack: list[list[Any]] = []
        size = 0  # the document's size with every alias expanded (see MAX_ALIAS_EXPANSION)
        via_aliases = 0
        sizes = self.anchor_sizes
        root: Any = None
        documents = 0
        track = self.track
        locs = self.locs
        missing = _MISSING
        scalar_cls, alias_cls = ev.ScalarEvent, ev.AliasEvent
        map_start, seq_start = ev.MappingStartEvent, ev.SequenceStartEvent
        map_end, seq_end = ev.MappingEndEvent, ev.SequenceEndEvent
        path: Path = ()
        while True:
            event = next_event()
            if event is None:
                break
            cls = type(event)
            if cls is scalar_cls:
                try:
                    if event.tag is None and event.implicit[0]:
                        value = _resolve_plain(event.value)
                    elif event.tag is None:
                        value = event.value
                    else:
                        value = _scalar(event)
                except ValueError:  # int(): more digits than Python converts (4300 by default)
                    raise _YamlProblem(
                        f"number too large to read ({len(event.value)} characters)",
                        event.start_mark,
                    ) from None
                weight = 1 + (len(event.value) >> 5)
                size += weight
                if event.anchor:
                    self.anchors[event.anchor] = value
                    sizes[event.anchor] = weight
                opened = False
            elif cls is map_start or cls is seq_start:
                tag = _tag_name(event.tag)
                if tag is not None and tag not in (_TAG + "map", _TAG + "seq"):
                    raise _YamlProblem(f"unsupported YAML tag {tag!r}", event.start_mark)
                value = {} if cls is map_start else []
                size += 1
                if event.anchor:
                    self.anchors[event.anchor] = value
                opened = True
            elif cls is map_end or cls is seq_end:
                frame = stack.pop()
                if frame[4]:
                    self._apply_merges(frame[0], frame[4])
                if frame[5]:
                    sizes[frame[5]] = size - frame[6]
                continue
            elif cls is alias_cls:
                if event.anchor not in self.anchors:
                    raise _YamlProblem(f"unknown alias *{event.anchor}", event.start_mark)
                value = self.anchors[event.anchor]
                expands = sizes.get(event.anchor, 1)
                size += expands
                via_aliases += expands
                if via_aliases > MAX_ALIAS_EXPANSION:
                    raise _YamlProblem(
                        f"aliases expand this policy by more than {MAX_ALIAS_EXPANSION:,}"
                        f" nodes (an alias bomb?); alias *{event.anchor} goes past it",
                        event.start_mark,
                    )
                opened = False
            elif cls is ev.DocumentStartEvent:
                documents += 1
                if documents > 1:
                    raise _YamlProblem("a policy file holds one YAML document", event.start_mark)
                continue
            elif cls is ev.StreamEndEvent:
                break
            else:
                continue
            if not stack:
                root = value
                if track:
                    locs[("v", ())] = _pos(event.start_mark)
            else:
                frame = stack[-1]
                container = frame[0]
                if type(container) is list:
                    if track:
                        path = (*frame[1], len(container))
                        locs[("v", path)] = _pos(event.start_mark)
                    container.append(value)
                elif frame[2] is missing:
                    if opened or isinstance(value, list | dict):
                        raise _YamlProblem("mapping keys must be plain values", event.start_mark)
                    frame[2] = value
                    frame[3] = event.start_mark
                    if value == "<<" and cls is scalar_cls and event.implicit[0]:
                        frame[2] = _MERGE
                    continue
                else:
                    key = frame[2]
                    frame[2] = missing
                    if key is _MERGE:
                        frame[4].append((value, event.start_mark))
                        path = frame[1]
                    else:
                        if key in container:
                            self._duplicate(key, frame)
                        container[key] = value
                        if track:
                            path = (*frame[1], key)
                            locs[("k", path)] = _pos(frame[3])
                            locs[("v", path)] = _pos(event.start_mark)
            if opened:
                stack.append([value, path if track else (), missing, None, [], event.anchor, size])
        return root

    def _duplicate(self, key: Any, frame: list[Any]) -> None:
        self.duplicates = True
        if not self.track:
            return
        path = (*frame[1], key)
        line, col = _pos(frame[3])
        first = self.locs.get(("k", path))
        where = f" (first at line {first[0]})" if first else ""
        self.issues.append(
            PolicyIssue(f"duplicate key {key!r}{where}", self.file, line, col, _render_path(path))
        )

    def _apply_merges(self, mapping: Any, merges: list[tuple[Any, Any]]) -> None:
        for source, mark in merges:
            sources = source if isinstance(source, list) else [source]
            for item in sources:
                if not isinstance(item, dict):
                    raise _YamlProblem("a merge key (<<) needs a mapping", mark)
                for key, value in item.items():
                    mapping.setdefault(key, value)


_MISSING = object()
_MERGE = object()

#: How much aliases may add to a policy, in nodes (a string counts one node per 32
#: characters). Generous for any real use of anchors, and it stops a few hundred bytes of
#: nested aliases from expanding into gigabytes when the policy is validated or hashed.
MAX_ALIAS_EXPANSION = 100_000


def _render_path(path: Path) -> str:
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + str(part)
    return out


render_path = _render_path


def _event_source(text: str) -> Any:
    """``next_event()`` over the text: ruamel's C parser if installed, else its Python one."""
    if CParser is not None:
        return CParser(text).get_event
    events = YAML(typ="safe", pure=True).parse(text)
    return lambda: next(events, None)


def parse(text: str, file: str, *, track: bool = False) -> tuple[Any, list[PolicyIssue], Locations]:
    """Data, duplicate-key issues, and positions (all of them only when tracking).

    A YAML syntax error raises PolicyError located at the problem. Without ``track``, a
    duplicate key triggers a second, tracking read so the issue can say where.
    """
    builder = _Builder(file, track)
    try:
        data = builder.build(_event_source(text))
    except _YamlProblem as exc:
        line, col = _pos(exc.mark) if exc.mark is not None else (None, None)
        raise PolicyError(PolicyIssue(exc.message, file, line, col)) from None
    except MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line, col = _pos(mark) if mark is not None else (None, None)
        message = " ".join(p for p in (exc.context, exc.problem) if p) or "invalid YAML"
        raise PolicyError(PolicyIssue(f"YAML syntax error: {message}", file, line, col)) from None
    except YAMLError as exc:
        raise PolicyError(PolicyIssue(f"YAML error: {exc}", file)) from None
    if builder.duplicates and not track:
        return parse(text, file, track=True)
    return data, builder.issues, builder.locs
