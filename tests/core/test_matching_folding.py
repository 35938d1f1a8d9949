"""The matcher's one-call folding (with its memory) gives what fold_unicode then casefold give."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from m365pbx.core.matching import fold_unicode, strip_domain, text_normalizer

LATIN = st.text(st.characters(min_codepoint=0x20, max_codepoint=0x24F), max_size=20)
ANY = st.text(max_size=20)


@given(st.lists(st.one_of(LATIN, ANY), max_size=8))
def test_folding_equals_the_steps(values: list[str]) -> None:
    folded = text_normalizer(casefold=True, unicode_normalize=True, domain=False)
    kept = text_normalizer(casefold=False, unicode_normalize=True, domain=False)
    domain = text_normalizer(casefold=True, unicode_normalize=True, domain=True)
    for value in values + values:  # the second time from memory
        assert folded(value) == fold_unicode(value).casefold()
        assert kept(value) == fold_unicode(value)
        assert domain(value) == strip_domain(fold_unicode(value).casefold())


def test_the_other_combinations() -> None:
    assert text_normalizer(casefold=True, unicode_normalize=False, domain=False)("ÄB") == "äb"
    assert text_normalizer(casefold=False, unicode_normalize=False, domain=True)("a@b") == "a"
    assert text_normalizer(casefold=False, unicode_normalize=False, domain=False)(" A ") == " A "
