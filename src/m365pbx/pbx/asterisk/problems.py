"""The configuration problems an Asterisk connection found, by area, as one text."""

from __future__ import annotations

__all__ = ["Problems"]


class Problems:
    """Problems by area (write, events, dnd, users, resync); a fix clears its area."""

    def __init__(self) -> None:
        self._by_area: dict[str, str] = {}

    def set(self, area: str, text: str | None) -> bool:
        """Record (or with None clear) the problem of `area`; True if anything changed."""
        before = self._by_area.get(area)
        if text is None:
            self._by_area.pop(area, None)
        else:
            self._by_area[area] = text
        return before != text

    def has(self, area: str) -> bool:
        """Whether `area` has a problem now."""
        return area in self._by_area

    def __bool__(self) -> bool:
        return bool(self._by_area)

    def text(self) -> str:
        """Every problem, in the order found, as one sentence list."""
        return "; ".join(self._by_area.values())
