"""Fixtures for the signing tests: SoftHSM2 tokens for the PKCS#11 vault.

One token directory per test process (see tests/signing/softhsm.py for why), with every
token made before any test loads the module: `softhsm_token` for the tests' keys, and
`softhsm_idle_token`, which only wrong-PIN tests log in to, so a wrong PIN reaches the
token's own C_Login rather than a session that is already logged in.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.signing.softhsm import SoftHsmToken, configure_softhsm, init_token, softhsm_module


@pytest.fixture(scope="session")
def _softhsm_tokens(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[dict[str, SoftHsmToken]]:
    softhsm_module()  # skips when softhsm2 is missing
    # Session scope cannot use the function-scoped `monkeypatch` fixture.
    with pytest.MonkeyPatch.context() as patch:
        configure_softhsm(tmp_path_factory.mktemp("softhsm"), patch)
        yield {
            "main": init_token("evalsign-test", "test-pin-2468"),
            "idle": init_token("evalsign-idle", "idle-pin-1357"),
        }


@pytest.fixture(scope="session")
def softhsm_token(_softhsm_tokens: dict[str, SoftHsmToken]) -> SoftHsmToken:
    """(module, label, pin) of a SoftHSM2 token shared by the whole test process."""
    return _softhsm_tokens["main"]


@pytest.fixture(scope="session")
def softhsm_idle_token(_softhsm_tokens: dict[str, SoftHsmToken]) -> SoftHsmToken:
    return _softhsm_tokens["idle"]
