"""The parsers settings share: numbers in a range, one of a few words."""

from __future__ import annotations

import pytest

from webapp.config import parsers


@pytest.mark.parametrize("raw", ["", "x", "1.5", "0", "11", "nan"])
def test_a_whole_number_outside_its_range_or_not_one_is_refused(raw):
    with pytest.raises(ValueError, match=r"^must be a whole number from 1 to 10$"):
        parsers.int_between(1, 10)(raw)


@pytest.mark.parametrize("raw", ["", "soon", "0.01", "10.5", "nan", "inf"])
def test_seconds_outside_their_range_or_not_a_number_are_refused(raw):
    with pytest.raises(ValueError, match=r"^must be a number of seconds from 0.1 to 10$"):
        parsers.seconds_between(0.1, 10.0)(raw)


def test_numbers_in_range_parse_to_their_type():
    assert parsers.int_between(1, 10)(" 10 ") == 10
    assert parsers.seconds_between(0.1, 10.0)("0.1") == 0.1


def test_one_of_takes_any_case_and_names_the_choices():
    parse = parsers.one_of(("off", "allowed"))
    assert parse(" Allowed ") == "allowed"
    with pytest.raises(ValueError, match=r"^must be one of off, allowed$"):
        parse("sometimes")
    assert parsers.client_ip_header("X-Real-IP") == "x-real-ip"
