"""A search query read once: a number (its key and digit prefixes) or folded words."""

from __future__ import annotations

from dataclasses import dataclass

from m365pbx.core.contacts.entry import Phone, fold, looks_like_number, number_key, words_of

EXACT, PREFIX, FUZZY = 0, 1, 2
FUZZY_MIN_LENGTH = 4  # shorter words only match exactly or as a prefix
FUZZY_TWO_EDITS = 8  # words this long may be two edits away


@dataclass(frozen=True, slots=True)
class Query:
    """What a search asks, in the form the buckets compare with."""

    number: bool
    key: str | None = None  # the number's key (number queries)
    prefixes: tuple[str, ...] = ()  # digit strings a number form may begin with
    words: tuple[str, ...] = ()  # folded words (word queries)
    whole: str = ""  # the folded words joined: equal to a full name is exact
    address: str | None = None  # the folded query when it may be a whole mail address

    @property
    def fuzzy(self) -> bool:
        """Whether fuzzy matches are looked for (a word long enough)."""
        return any(len(word) >= FUZZY_MIN_LENGTH for word in self.words)


def read_query(text: str, region: str) -> Query:
    """The query of a search text under the viewer's number region."""
    if looks_like_number(text):
        key = number_key(text, region)
        prefixes = {"".join(c for c in text if c.isdigit())}
        if key is not None and not key.startswith("#"):
            forms = Phone("", text, key).digit_forms()
            # Full and national with its 0: "+49 (0)30 12" and "030 12" both begin 030 12...
            prefixes |= {forms[0], forms[-1]}
        return Query(True, key, tuple(sorted(prefixes)))
    wanted = tuple(words_of(text))
    address = fold(text.strip())
    # Only a query with an @ can be a whole mail address.
    return Query(False, words=wanted, whole=" ".join(wanted),
                 address=address if "@" in address else None)


def near(word: str, wanted: str) -> bool:
    """Whether `word` is within the fuzzy distance of query word `wanted`."""
    limit = 2 if len(wanted) >= FUZZY_TWO_EDITS else 1
    return (word[:1] == wanted[:1] and abs(len(word) - len(wanted)) <= limit
            and within_edits(word, wanted, limit))


def within_edits(a: str, b: str, limit: int) -> bool:
    """Whether `a` becomes `b` with at most `limit` insertions, deletions or substitutions."""
    previous = list(range(len(b) + 1))
    for i, char in enumerate(a, 1):
        current = [i]
        for j, other in enumerate(b, 1):
            current.append(min(previous[j] + 1, current[j - 1] + 1,
                               previous[j - 1] + (char != other)))
        if min(current) > limit:
            return False
        previous = current
    return previous[-1] <= limit
