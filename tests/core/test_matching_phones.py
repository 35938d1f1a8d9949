"""Phone number keys, and the shortcut that files plain numbers by their last digits."""

from __future__ import annotations

import phonenumbers
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from m365pbx.core.matching import check_phone_region, normalize_phone, phone_key
from m365pbx.core.matching.lookups import SAFE_NATIONAL_DIGITS, digits_suffix, plain_suffix
from m365pbx.errors import UserInputError


@pytest.mark.parametrize(
    "written",
    [
        "+49 (30) 1234-567",
        "030 1234567",
        "0049 30 1234567",
        "+49 (0)30 1234567",
        "030/1234567",
        "tel:+49-30-1234567",
        "＋４９ ３０ １２３４５６７",
    ],
)
def test_one_number_written_many_ways_has_one_key(written: str) -> None:
    assert normalize_phone(written, "DE") == "+49301234567"


def test_region_decides_what_a_national_number_means() -> None:
    assert normalize_phone("030 1234567", "DE") == "+49301234567"
    assert normalize_phone("030 1234567", "AT") == "+43301234567"


def test_numbers_that_do_not_parse_keep_their_digits() -> None:
    assert normalize_phone("030 1234567", None) == "0301234567"
    assert normalize_phone("+999 123", "DE") == "999123"  # no such country code
    assert phone_key("no digits", "DE").key == ""


def test_extension_is_part_of_the_key() -> None:
    assert normalize_phone("+1 425 555 0109 ext. 12", None) == "+14255550109;ext=12"


def test_region_codes_are_checked() -> None:
    assert check_phone_region(" de ") == "DE"
    assert check_phone_region(None) is None
    with pytest.raises(UserInputError, match="unknown phone region 'Germany'"):
        check_phone_region("Germany")


REGIONS = [None, *sorted(phonenumbers.SUPPORTED_REGIONS)]
plain_numbers = st.builds(
    lambda plus, chunks, seps: (
        ("+" if plus else "")
        + "".join(chunk + sep for chunk, sep in zip(chunks, seps, strict=False))
    ),
    st.booleans(),
    st.lists(st.text("0123456789", min_size=1, max_size=5), min_size=2, max_size=6),
    st.lists(st.sampled_from(["", " ", "-", "/", ".", "(", ")"]), min_size=6, max_size=6),
)


@settings(max_examples=3000, deadline=None)
@given(plain_numbers, st.sampled_from(REGIONS))
def test_plain_numbers_end_in_the_digits_of_their_key(written: str, region: str | None) -> None:
    """The property PhoneLookup relies on to skip parsing most Microsoft numbers."""
    suffix = plain_suffix(written)
    key = phone_key(written, region)
    if suffix is None or key.national_digits < SAFE_NATIONAL_DIGITS:
        return
    assert digits_suffix(key.key) == suffix
