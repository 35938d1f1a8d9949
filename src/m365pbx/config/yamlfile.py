"""Read the YAML file: the data, the line of every key, and clear syntax errors."""

from __future__ import annotations

from collections.abc import Hashable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from m365pbx.config.errors import ConfigError, KeyPath, Problem, format_path

_MERGE_TAG = "tag:yaml.org,2002:merge"
_MAX_DEPTH = 64  # a deeper file is not a configuration; stops alias loops too


@dataclass(slots=True)
class Document:
    """A parsed configuration file: its data, where each key is, and problems found so far."""

    source: str | None
    data: dict[str, Any] = field(default_factory=dict)
    lines: dict[KeyPath, int] = field(default_factory=dict)
    problems: list[Problem] = field(default_factory=list)


class _Loader(yaml.SafeLoader):
    """A safe loader that keeps every key as the text written (`on:` stays "on", not True)."""

    def construct_mapping(self, node: MappingNode, deep: bool = False) -> dict[Hashable, Any]:
        self.flatten_mapping(node)
        mapping: dict[Hashable, Any] = {}
        for key_node, value_node in node.value:
            if not isinstance(key_node, ScalarNode):
                raise yaml.constructor.ConstructorError(
                    None, None, "a key must be a plain name, not a list or mapping",
                    key_node.start_mark,
                )
            mapping[key_node.value] = self.construct_object(value_node, deep=deep)
        return mapping


def read_document(path: Path) -> Document:
    """Read and parse a configuration file; ConfigError if it cannot be used at all."""
    source = str(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise _fatal(source, "file not found") from None
    except IsADirectoryError:
        raise _fatal(source, "is a directory, not a configuration file") from None
    except PermissionError:
        raise _fatal(source, "this user may not read the file") from None
    except UnicodeDecodeError as exc:
        raise _fatal(source, f"not UTF-8 text (byte {exc.start})") from None
    except OSError as exc:
        raise _fatal(source, f"cannot read the file: {exc.strerror}") from None
    return parse_document(text, source=source)


def parse_document(text: str, *, source: str | None = None) -> Document:
    """Parse configuration text; ConfigError for syntax errors, an empty text or a non-mapping."""
    loader = _Loader(text)
    try:
        node = loader.get_single_node()
        document = Document(source)
        if node is not None:
            _index(node, (), document, depth=0)
        data = loader.construct_document(node) if node is not None else None
    except yaml.MarkedYAMLError as exc:
        raise _syntax_error(source, exc) from None
    except yaml.YAMLError as exc:
        raise _fatal(source, f"YAML syntax error: {exc}") from None
    finally:
        loader.dispose()
    if data is None:
        raise _fatal(
            source,
            "the file is empty; expected a mapping with keys such as tenants and "
            "pbx_connections (`m365pbx config example` prints a commented example)",
        )
    if not isinstance(data, dict):
        raise _fatal(
            source,
            f"the top level must be a mapping of keys (key: value), not {_kind(data)}",
            line=1,
        )
    document.data = data
    return document


def _index(node: Node, path: KeyPath, document: Document, depth: int) -> None:
    if depth > _MAX_DEPTH:
        return
    if isinstance(node, MappingNode):
        first_line: dict[str, int] = {}
        for key_node, value_node in node.value:
            if not isinstance(key_node, ScalarNode) or key_node.tag == _MERGE_TAG:
                continue
            key, line = key_node.value, key_node.start_mark.line + 1
            if key in first_line:
                document.problems.append(
                    Problem(
                        f"duplicate key {key!r} (first at line {first_line[key]}); "
                        "YAML would silently keep only the last one",
                        format_path((*path, key)),
                        document.source,
                        line,
                    )
                )
                continue
            first_line[key] = line
            document.lines[(*path, key)] = line
            _index(value_node, (*path, key), document, depth + 1)
    elif isinstance(node, SequenceNode):
        for index, item in enumerate(node.value):
            document.lines[(*path, index)] = item.start_mark.line + 1
            _index(item, (*path, index), document, depth + 1)


def _syntax_error(source: str | None, exc: yaml.MarkedYAMLError) -> ConfigError:
    mark = exc.problem_mark or exc.context_mark
    # Only PyYAML's problem and context texts: its snippet of the line could show a secret.
    message = f"YAML syntax error: {exc.problem or exc.context or 'cannot parse'}"
    if exc.context and exc.problem:
        message += f" ({exc.context}"
        if exc.context_mark is not None and exc.context_mark is not mark:
            message += f" at line {exc.context_mark.line + 1}"
        message += ")"
    line = mark.line + 1 if mark is not None else None
    column = mark.column + 1 if mark is not None else None
    return ConfigError([Problem(message, source=source, line=line, column=column)], source=source)


def _fatal(source: str | None, message: str, *, line: int | None = None) -> ConfigError:
    return ConfigError([Problem(message, source=source, line=line)], source=source)


def _kind(value: object) -> str:
    if isinstance(value, list):
        return "a list"
    if isinstance(value, str):
        return "a single text value"
    return f"a single {type(value).__name__} value"
