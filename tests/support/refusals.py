"""Checking a runner call that SaltOps refused (see saltops.runnerkit)."""

import re

from saltops.runnerkit import is_refusal


def assert_refused(result, match=None):
    """``result`` is a refusal whose error matches the regular expression ``match``."""
    assert is_refusal(result), f"expected a refusal, got {result!r}"
    assert result["retcode"] == 1
    if match is not None:
        assert re.search(match, result["error"], re.DOTALL), f"{match!r} not in {result['error']!r}"
    return result
