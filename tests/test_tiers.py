"""The tiers cannot be escaped: a test with no tier marker, or with two, is reported by the collection check."""

import pytest

from tests.helpers import TIERS, tier_problems

pytestmark = pytest.mark.unit


class _Collected:
    def __init__(self, nodeid: str, *marks: str) -> None:
        self.nodeid = nodeid
        self._marks = [getattr(pytest.mark, name) for name in marks]

    def iter_markers(self):
        return iter(mark.mark for mark in self._marks)


def test_a_test_with_one_tier_passes_and_one_without_or_with_two_is_named():
    items = [
        _Collected("tests/test_a.py::test_ok", "unit", "slow"),
        _Collected("tests/test_b.py::test_none", "slow"),
        _Collected("tests/test_c.py::test_two", "unit", "e2e"),
    ]
    assert tier_problems(items) == ["tests/test_b.py::test_none: no tier", "tests/test_c.py::test_two: unit, e2e"]


def test_every_tier_is_a_registered_marker(pytestconfig):
    registered = {line.split(":")[0].strip() for line in pytestconfig.getini("markers")}
    assert set(TIERS) <= registered


def test_this_session_has_every_test_in_exactly_one_tier(request):
    assert tier_problems(request.session.items) == []
