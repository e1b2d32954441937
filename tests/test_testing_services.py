"""The rule for tests that need a service (``scimd.testing.services``): a failure under
``CI=true``, a reasoned skip elsewhere."""

from __future__ import annotations

import pytest

from scimd.testing.services import in_ci, service_missing


@pytest.mark.parametrize("value", ["true", "1", "TRUE", "yes"])
def test_a_missing_service_fails_in_ci(monkeypatch: pytest.MonkeyPatch, value: str) -> None:
    monkeypatch.setenv("CI", value)
    assert in_ci()
    with pytest.raises(pytest.fail.Exception, match="required in CI: slapd not available"):
        service_missing("slapd not available")


@pytest.mark.parametrize("value", [None, "", "false", "0"])
def test_a_missing_service_is_a_reasoned_skip_elsewhere(
    monkeypatch: pytest.MonkeyPatch, value: str | None
) -> None:
    if value is None:
        monkeypatch.delenv("CI", raising=False)
    else:
        monkeypatch.setenv("CI", value)
    assert not in_ci()
    with pytest.raises(pytest.skip.Exception, match="apt-get install slapd"):
        service_missing("slapd not available: apt-get install slapd")
