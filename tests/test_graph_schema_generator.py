"""The generator of tests/fixtures/graph-schema, on a small CSDL document of its own."""

from __future__ import annotations

import json
from pathlib import Path

from tests.fixtures.generate_graph_schemas import main

CSDL = """<?xml version="1.0" encoding="utf-8"?>
<edmx:Edmx Version="4.0" xmlns:edmx="http://docs.oasis-open.org/odata/ns/edmx">
 <edmx:DataServices>
  <Schema Namespace="microsoft.graph" Alias="graph" xmlns="http://docs.oasis-open.org/odata/ns/edm">
   <EnumType Name="color"><Member Name="red" Value="0"/><Member Name="blue" Value="1"/></EnumType>
   <EntityType Name="entity" Abstract="true">
    <Key><PropertyRef Name="id"/></Key>
    <Property Name="id" Type="Edm.String" Nullable="false"/>
   </EntityType>
   <ComplexType Name="itemBody"><Property Name="content" Type="Edm.String"/></ComplexType>
   <EntityType Name="presence" BaseType="graph.entity" OpenType="true">
    <Property Name="availability" Type="Edm.String"/>
    <Property Name="phones" Type="Collection(Edm.String)" Nullable="false"/>
    <Property Name="colors" Type="Collection(graph.color)"/>
    <Property Name="note" Type="graph.itemBody"/>
    <Property Name="sequenceNumber" Type="Edm.String"/>
    <NavigationProperty Name="owner" Type="graph.presence"/>
   </EntityType>
   <Action Name="setPresence" IsBound="true">
    <Parameter Name="bindingParameter" Type="graph.presence"/>
    <Parameter Name="availability" Type="Edm.String" Nullable="false"/>
    <Parameter Name="StartTime" Type="graph.itemBody"/>
   </Action>
   <Annotations Target="microsoft.graph.presence/sequenceNumber">
    <Annotation Term="Org.OData.Core.V1.Computed" Bool="true"/>
   </Annotations>
  </Schema>
 </edmx:DataServices>
</edmx:Edmx>
"""


def _load(folder: Path, relative: str) -> dict:
    return json.loads((folder / relative).read_text())


def test_the_generator_flattens_bases_resolves_aliases_and_writes_both_variants(
        tmp_path: Path, monkeypatch) -> None:
    import tests.fixtures.generate_graph_schemas as generator

    monkeypatch.setattr(generator, "ROOT_TYPES", ("presence",))
    monkeypatch.setattr(generator, "ACTIONS", (("setPresence", "presence"),))
    csdl = tmp_path / "tiny.csdl"
    csdl.write_text(CSDL)
    assert main(["generate", str(csdl), str(tmp_path / "out")]) == 0
    out = tmp_path / "out"

    presence = _load(out, "types/presence.json")
    assert presence["x-base-types"] == ["microsoft.graph.entity"]
    assert presence["properties"]["id"] == {"type": "string"}
    assert presence["properties"]["availability"] == {"type": ["string", "null"]}
    # Nullable="false" on a collection: the items are not null, the array never is.
    assert presence["properties"]["phones"] == {"type": "array", "items": {"type": "string"}}
    assert presence["properties"]["colors"]["items"]["anyOf"][0] == {"$ref": "color.json"}
    assert presence["properties"]["sequenceNumber"]["readOnly"] is True
    assert "owner" not in presence["properties"]
    assert presence["additionalProperties"] is True and presence["x-open-type"] is True
    assert _load(out, "types-strict/presence.json")["additionalProperties"] is False
    assert _load(out, "types/color.json")["enum"] == ["red", "blue"]

    action = _load(out, "actions/setPresence.request.json")
    assert action["required"] == ["availability"]
    assert set(action["properties"]) == {"availability", "StartTime", "startTime"}
    assert action["properties"]["startTime"]["anyOf"][0] == {
        "$ref": "../types-strict/itemBody.json"}
