"""Every case of ``cases.py``, asked to Knot and to nameserverd, compared section by section."""

from __future__ import annotations

import pytest

from .accepted import ACCEPTED_LOG
from .case import Case
from .cases import CASES
from .compare import compare, report
from .conftest import Servers, alive
from .wire import exchange

_FIRST_ID = 0x1000


@pytest.mark.parametrize("index", range(len(CASES)), ids=[case.id for case in CASES])
def test_same_answer_as_knot(index: int, request: pytest.FixtureRequest) -> None:
    case: Case = CASES[index]
    both: Servers = alive(request.getfixturevalue(f"{case.profile}_servers"))
    query_id = _FIRST_ID + index
    knot = exchange(case, query_id, both.knot.port)
    ours = exchange(case, query_id, both.ours.port)
    outcome = compare(case, query_id, knot, ours)
    ACCEPTED_LOG.extend((case.id, rule.name) for _, rule in outcome.accepted)
    if not outcome.ok:
        pytest.fail(report(outcome), pytrace=False)
