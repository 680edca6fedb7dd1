"""The last test of a whole run: no NHS number, date of birth, mobile or one-time code that any test used
reached the run's log, as the service writes it (tests/run_log.py; collected in tests/conftest.py)."""

import pytest

from tests.builders import IDENTIFIERS_USED
from tests.conftest import RUN_LOG, WHOLE_RUN


def test_no_identifier_any_test_used_reached_the_log_of_the_whole_run(request: pytest.FixtureRequest) -> None:
    if not request.config.stash.get(WHOLE_RUN, False):
        pytest.skip("checks the log of the whole run: it runs last when every test file runs (`make test`)")
    run_log = request.config.stash[RUN_LOG]
    kinds = {kind for kind, _ in IDENTIFIERS_USED}
    assert {"NHS number", "date of birth", "code"} <= kinds, f"the run used too few identifiers to check: {kinds}"
    assert len(run_log.lines) > 100, "the run logged almost nothing: the check would prove little"
    leaks = run_log.leaks(IDENTIFIERS_USED)
    assert not leaks, f"{len(leaks)} log lines name an identifier a test used:\n" + "\n".join(map(str, leaks[:20]))
