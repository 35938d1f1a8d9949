"""The JSON report of `m365pbx match`: one matched, unmatched or ambiguous user per line.

`json.dumps(..., indent=2)` runs Python's own encoder (the C one only writes without indent),
and building a dict per entry for the C encoder still cost 0.15 s at 50,000 users. Each entry
is written here as a line of its own from strings escaped by the C string encoder; the document
is the same JSON as `MatchResult.as_dict()`, with the warnings of the input files added
(tests/cli/test_match_json.py).
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from json.encoder import encode_basestring as _s

from m365pbx.core.matching import MatchResult


def _section(name: str, lines: Iterable[str], last: bool = False) -> str:
    body = ",\n    ".join(lines)
    value = f"[\n    {body}\n  ]" if body else "[]"
    return f'  "{name}": {value}{"" if last else ","}\n'


def json_report(result: MatchResult, warnings: list[str]) -> str:
    """Return the report as JSON text ending in a newline."""
    matched = [
        f'{{"pbx": {_s(item.pbx)}, "teams": {_s(item.teams)}, "rule": {_s(item.rule)}}}'
        for item in result.matched
    ]
    unmatched = [
        f'{{"side": {_s(item.side)}, "key": {_s(item.key)}, "reason": {_s(item.reason)}}}'
        for item in result.unmatched
    ]
    ambiguous = [
        f'{{"pbx": {_s(item.pbx)}, "candidates": [{", ".join(map(_s, item.candidates))}], '
        f'"reason": {_s(item.reason)}}}'
        for item in result.ambiguous
    ]
    summary = json.dumps(result.summary(), ensure_ascii=False)
    return "".join([
        "{\n",
        _section("matched", matched),
        _section("unmatched", unmatched),
        _section("ambiguous", ambiguous),
        _section("warnings", map(_s, warnings)),
        f'  "summary": {summary}\n',
        "}\n",
    ])
