"""Reading input files as text and JSON, with errors that name the file and the place."""

from __future__ import annotations

import codecs
import json
from pathlib import Path

from m365pbx.errors import UserInputError

_UTF16_BOMS = (codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)


def read_bytes(path: Path) -> bytes:
    """Return the file's bytes, or raise UserInputError when it cannot be read."""
    try:
        return path.read_bytes()
    except FileNotFoundError:
        raise UserInputError("file not found", source=str(path)) from None
    except IsADirectoryError:
        raise UserInputError("is a directory, not a file", source=str(path)) from None
    except OSError as exc:
        raise UserInputError(f"cannot read the file: {exc.strerror}", source=str(path)) from None


def decode_text(data: bytes, source: str, encoding: str | None = None) -> str:
    """Decode UTF-8 (with or without BOM; UTF-16 with BOM) or the encoding the caller names."""
    if encoding is None:
        # Excel's "Unicode text" export is UTF-16 with a BOM: unambiguous, so accept it.
        encoding = "utf-16" if data.startswith(_UTF16_BOMS) else "utf-8-sig"
        hint = "; if a Windows program (e.g. Excel) saved it, try --encoding cp1252"
    else:
        try:
            codecs.lookup(encoding)
        except LookupError:
            raise UserInputError(
                f"unknown encoding {encoding!r}; try utf-8 or cp1252", source=source
            ) from None
        hint = ""
    try:
        text = data.decode(encoding)
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise UserInputError(
            f"not valid {exc.encoding} text: byte 0x{data[exc.start]:02x} at offset {exc.start}"
            + hint,
            source=source,
            location=f"line {line}",
        ) from None
    return text.removeprefix("\ufeff")


def parse_json(text: str, source: str) -> object:
    """Parse JSON text, naming line and column when it is broken."""
    if not text.strip():
        raise UserInputError("the file is empty; expected JSON", source=source)
    try:
        document: object = json.loads(text)
    except json.JSONDecodeError as exc:
        raise UserInputError(
            f"not valid JSON: {exc.msg}",
            source=source,
            location=f"line {exc.lineno}, column {exc.colno}",
        ) from None
    return document
