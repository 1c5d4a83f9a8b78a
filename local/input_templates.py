"""What a target receives of an event, as EventBridge and EventBridge Pipes shape it: JSON paths
(``$``, ``$.a.b``, ``$.a[0].b``: a rule's ``InputPath``, a pipe's placeholders and dynamic
parameters) and Pipes' input templates (``<$.path>`` placeholders, ``<aws.pipes.*>`` variables).
Syntax beyond those (wildcards, filters) is refused rather than guessed at."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any

_SEGMENT = re.compile(r"([^.\[\]*]+)((?:\[\d+\])*)")  # a name (no wildcard), then [n] indices


class TemplateError(ValueError):
    """An input template or dynamic path that cannot be applied to this payload (the message says why)."""


class _Missing:
    pass


MISSING = _Missing()


def supported_path(path: str) -> bool:
    """Whether :func:`json_path` reads ``path``: ``$``, or ``$.`` then names joined by dots, each
    with any number of ``[n]`` indices."""
    if path == "$":
        return True
    return path.startswith("$.") and all(_SEGMENT.fullmatch(segment) for segment in path[2:].split("."))


def json_path(payload: Any, path: str) -> Any:
    """The value at ``path`` (``$``, ``$.a.b``, ``$.a[0].b``); ``MISSING`` if there is none. Other
    JSONPath syntax (wildcards, filters, slices) is refused with a TemplateError, whatever the payload."""
    if not supported_path(path):
        raise TemplateError(f"{path!r} is not supported locally: only $, names and [n] indices ($.a.b[0].c)")
    if path == "$":
        return payload
    current = payload
    for segment in path[2:].split("."):
        match = _SEGMENT.fullmatch(segment)
        assert match is not None  # supported_path checked every segment
        name, indices = match.groups()
        if not isinstance(current, Mapping) or name not in current:
            return MISSING
        current = current[name]
        for index in re.findall(r"\[(\d+)\]", indices):
            if not isinstance(current, list) or int(index) >= len(current):
                return MISSING
            current = current[int(index)]
    return current


def render_template(template: str, payload: Any, reserved: Mapping[str, Any]) -> Any:
    """Pipes' ``InputTemplate`` applied to ``payload``: a JSON value when the result is JSON, else text.

    In a JSON template (``{...}`` or ``[...]``), a placeholder inside a string (``"id": "<$.id>"``)
    inserts the value's text and one outside (``"id": <$.id>``) the value as JSON; a template that is
    one placeholder gives its value; in free text (``Hello, <$.name>``) a string goes in as it is. A
    path that finds nothing is a TemplateError."""
    if template == "":
        return payload
    json_mode = template.lstrip()[:1] in ("{", "[")
    out: list[str] = []
    quoted = escaped = False
    index = 0
    while index < len(template):
        char = template[index]
        if char == "<":
            end = template.find(">", index)
            name = template[index + 1 : end] if end > 0 else ""
            if name.startswith("$") or name in reserved:
                value = reserved[name] if name in reserved else json_path(payload, name)
                if value is MISSING:
                    raise TemplateError(f"<{name}> finds nothing in this payload")
                if template.strip() == f"<{name}>":
                    return value
                if not json_mode and isinstance(value, str):
                    out.append(value)  # free text takes the string as it is
                else:
                    out.append(_inserted(name, value, quoted))
                index = end + 1
                continue
        if escaped:
            escaped = False
        elif char == "\\":
            escaped = True
        elif char == '"':
            quoted = not quoted
        out.append(char)
        index += 1
    text = "".join(out)
    try:
        return json.loads(text)
    except ValueError:
        return text


def _inserted(name: str, value: Any, quoted: bool) -> str:
    if not quoted:
        return json.dumps(value, separators=(",", ":"))
    if isinstance(value, (dict, list)):
        raise TemplateError(f"<{name}> is an object or array: place it outside quotes")
    text = value if isinstance(value, str) else json.dumps(value)
    return json.dumps(text)[1:-1]


def dynamic(value: Any, payload: Any) -> Any:
    """A target parameter: a ``$.path`` into the payload (the whole value must be the path), else as is."""
    if not isinstance(value, str) or not value.startswith("$"):
        return value
    found = json_path(payload, value)
    if found is MISSING:
        raise TemplateError(f"dynamic parameter {value} finds nothing in this payload")
    return found
