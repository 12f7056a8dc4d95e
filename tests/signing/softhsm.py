"""SoftHSM2 tokens for the PKCS#11 vault tests, in a temporary token directory.

SoftHSM reads SOFTHSM2_CONF once, at C_Initialize, and python-pkcs11 loads (and
initializes) a module once per process. So a test process gets one token directory, set
up before the first `pkcs11.lib()` call, holding every token its tests use: a token made
later would not be seen by the already initialized module.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path
from typing import NamedTuple

import pytest

MODULE_PATHS = (
    Path("/usr/lib/softhsm/libsofthsm2.so"),
    Path("/usr/lib/x86_64-linux-gnu/softhsm/libsofthsm2.so"),
    Path("/usr/lib/aarch64-linux-gnu/softhsm/libsofthsm2.so"),
)
NOT_INSTALLED = "softhsm2 is not installed (apt-get install softhsm2); .ci/run installs it"
SO_PIN = "so-pin-12345678"


class SoftHsmToken(NamedTuple):
    module: Path
    label: str
    pin: str


def softhsm_module() -> Path:
    """The SoftHSM2 PKCS#11 module, or skip the test when softhsm2 is not installed."""
    module = next((path for path in MODULE_PATHS if path.is_file()), None)
    if module is None or shutil.which("softhsm2-util") is None:
        pytest.skip(NOT_INSTALLED)
    return module


def configure_softhsm(directory: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Point SoftHSM2 at a fresh token directory under `directory`, for this process and
    the softhsm2-util it runs, until `monkeypatch` undoes it; returns the configuration."""
    tokens = directory / "tokens"
    tokens.mkdir(parents=True, exist_ok=True)
    conf = directory / "softhsm2.conf"
    conf.write_text(
        f"directories.tokendir = {tokens}\nobjectstore.backend = file\nlog.level = ERROR\n"
    )
    monkeypatch.setenv("SOFTHSM2_CONF", str(conf))
    return conf


def init_token(label: str, pin: str) -> SoftHsmToken:
    """A new, empty token in the configured directory (call configure_softhsm first)."""
    module = softhsm_module()
    if "SOFTHSM2_CONF" not in os.environ:
        raise RuntimeError("configure_softhsm() first, or the token lands in /var/lib/softhsm")
    command = ["softhsm2-util", "--init-token", "--free", "--label", label]
    subprocess.run(
        [*command, "--so-pin", SO_PIN, "--pin", pin],
        check=True,
        capture_output=True,
        text=True,
    )
    return SoftHsmToken(module, label, pin)
