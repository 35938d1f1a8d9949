"""XML parsing for bodies from the network: no DTDs, no entities, bounded size and depth.

PIDF and dialog-info bodies come from phones and servers we do not control. A document
type declaration is refused outright, which rules out entity expansion attacks ("billion
laughs", quadratic blowup) and external entities, the same policy as `defusedxml` with
`forbid_dtd=True`, built on the standard library's expat so no extra package is needed.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from xml.parsers import expat


class XmlError(ValueError):
    """A body that is not well-formed XML, or is refused as unsafe or too large."""


class _Refused(Exception):
    pass


MAX_XML_BYTES = 65_536
MAX_XML_DEPTH = 32
MAX_XML_ELEMENTS = 5_000


def _qualified(name: str) -> str:
    # expat with namespace_separator=" " reports "uri local"; ElementTree writes "{uri}local".
    uri, space, local = name.rpartition(" ")
    return f"{{{uri}}}{local}" if space else name


def parse_xml(
    data: bytes,
    *,
    max_bytes: int = MAX_XML_BYTES,
    max_depth: int = MAX_XML_DEPTH,
    max_elements: int = MAX_XML_ELEMENTS,
) -> ET.Element:
    """Parse `data` into an Element tree, or raise XmlError (unsafe, malformed, too big)."""
    if len(data) > max_bytes:
        raise XmlError(f"XML body of {len(data)} bytes exceeds {max_bytes}")
    builder = ET.TreeBuilder()
    parser = expat.ParserCreate(namespace_separator=" ")
    parser.SetParamEntityParsing(expat.XML_PARAM_ENTITY_PARSING_NEVER)
    depth = 0
    elements = 0

    def refuse(*_: object) -> None:
        raise _Refused("document type declarations and entities are not accepted")

    def refuse_external(*_: object) -> int:
        raise _Refused("external entities are not accepted")

    def start(name: str, attributes: dict[str, str]) -> None:
        nonlocal depth, elements
        depth += 1
        elements += 1
        if depth > max_depth:
            raise _Refused(f"XML nested deeper than {max_depth}")
        if elements > max_elements:
            raise _Refused(f"more than {max_elements} XML elements")
        builder.start(_qualified(name), {_qualified(k): v for k, v in attributes.items()})

    def end(name: str) -> None:
        nonlocal depth
        depth -= 1
        builder.end(_qualified(name))

    parser.StartDoctypeDeclHandler = refuse
    parser.EntityDeclHandler = refuse
    parser.UnparsedEntityDeclHandler = refuse
    parser.ExternalEntityRefHandler = refuse_external
    parser.StartElementHandler = start
    parser.EndElementHandler = end
    parser.CharacterDataHandler = builder.data
    parser.buffer_text = True
    try:
        parser.Parse(data, True)
    except _Refused as exc:
        raise XmlError(str(exc)) from None
    except expat.ExpatError as exc:
        raise XmlError(f"not well-formed XML: {exc}") from None
    try:
        return builder.close()
    except AssertionError:  # pragma: no cover - expat guarantees balanced elements
        raise XmlError("not well-formed XML") from None
