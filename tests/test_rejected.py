"""Every rejected input raises early, with a message naming the argument and the rule."""

import pytest

from tests.cases import REJECTED


@pytest.mark.parametrize("case", REJECTED, ids=lambda c: c.name)
def test_rejected_input_raises_clear_error(case):
    with pytest.raises(case.error, match=case.match):
        case.call()
