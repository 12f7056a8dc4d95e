"""Where passkeys are valid: the relying party from the settings every replica shares."""

from __future__ import annotations

from pathlib import Path

from evaluation.identity.passkeys import relying_party, rp_id_is_address
from models.settings import Settings


def _settings(tmp_path: Path, **values: str) -> Settings:
    return Settings(data_dir=tmp_path, **values)  # type: ignore[arg-type]


def test_the_rp_id_is_the_public_urls_host_name(tmp_path: Path) -> None:
    rp = relying_party(_settings(tmp_path, public_url="https://evalsign.example.org"))
    assert rp.rp_id == "evalsign.example.org"
    assert rp.origins == {"https://evalsign.example.org"}
    assert not rp_id_is_address(_settings(tmp_path, public_url="https://evalsign.example.org"))


def test_an_address_falls_back_to_localhost_and_is_warned_about(tmp_path: Path) -> None:
    local = relying_party(_settings(tmp_path, public_url="http://127.0.0.1:8000"))
    assert local.rp_id == "localhost"
    assert local.origins == {"http://127.0.0.1:8000", "http://localhost:8000"}
    assert not rp_id_is_address(_settings(tmp_path, public_url="http://127.0.0.1:8000"))
    lan = _settings(tmp_path, public_url="https://192.168.1.20:8443")
    assert rp_id_is_address(lan)  # phones on the LAN could not bind


def test_explicit_rp_id_and_origins_win(tmp_path: Path) -> None:
    settings = _settings(
        tmp_path,
        public_url="https://192.168.1.20:8443",
        webauthn_rp_id="evalsign.lan",
        webauthn_origins="https://evalsign.lan:8443/, https://sign.evalsign.lan",
    )
    rp = relying_party(settings)
    assert rp.rp_id == "evalsign.lan"
    assert rp.origins == {"https://evalsign.lan:8443", "https://sign.evalsign.lan"}
    assert not rp_id_is_address(settings)
