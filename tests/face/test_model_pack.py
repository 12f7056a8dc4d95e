"""Model packs: the shipped default and a center's own directory load only when every file
is the one its manifest names; the runtime is the headless OpenCV and our own pipeline."""

from __future__ import annotations

import importlib.metadata
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from face.engine import FaceEngine
from face.model_pack import (
    MANIFEST_FILE,
    ROLES,
    ModelPackError,
    file_sha256,
    load_model_pack,
    verify_model_pack,
)
from tests.face.corpus import MODEL_DIR, engine, portraits

REPO = Path(__file__).resolve().parents[2]


def _custom_manifest(directory: Path, **overrides: Any) -> dict[str, Any]:
    """A manifest naming the default pack's three files, which are linked into
    ``directory``; ``overrides`` replace whole entries of ``files``."""
    default = load_model_pack()
    files: dict[str, Any] = {}
    for role, model in default.files.items():
        (directory / model.path.name).symlink_to(model.path)
        files[role] = {"file": model.path.name, "sha256": model.sha256}
    files.update(overrides)
    return {"name": "center-pack", "license": "for tests", "files": files}


def _write(directory: Path, manifest: dict[str, Any]) -> Path:
    (directory / MANIFEST_FILE).write_text(json.dumps(manifest))
    return directory


def test_default_pack_verifies_and_names_its_three_roles() -> None:
    pack = load_model_pack()

    verify_model_pack(pack)

    assert set(pack.files) == set(ROLES)
    for role, model in pack.files.items():
        assert model.role == role
        assert model.path.parent == MODEL_DIR
        assert len(model.sha256) == 64


def test_model_id_binds_templates_to_the_recognizer_file() -> None:
    pack = load_model_pack()
    recognizer = pack.files["recognizer"]

    assert file_sha256(recognizer.path).startswith(recognizer.sha256[:16])
    assert recognizer.sha256[:16] in pack.model_id
    assert engine().model_id == pack.model_id


def test_center_pack_directory_embeds_exactly_like_the_default(tmp_path: Path) -> None:
    pack = load_model_pack(_write(tmp_path, _custom_manifest(tmp_path)))
    portrait = portraits()["yaoming-0"]
    default_engine = engine()

    custom_engine = FaceEngine(pack)

    assert pack.name == "center-pack"
    assert pack.files["detector"].path.parent == tmp_path
    [face] = custom_engine.detect(portrait)
    [default_face] = default_engine.detect(portrait)
    assert np.allclose(face.bbox, default_face.bbox)
    embedding = custom_engine.embed(custom_engine.align(portrait, face))
    expected = default_engine.embed(default_engine.align(portrait, default_face))
    np.testing.assert_allclose(embedding, expected, atol=1e-6)
    # Same recognizer bytes, so templates made with either stay comparable.
    assert pack.model_id.split("/")[1] == load_model_pack().model_id.split("/")[1]


def test_file_with_another_hash_is_refused_naming_role_and_both_hashes(tmp_path: Path) -> None:
    wrong = "0" * 64
    actual = load_model_pack().files["landmarks"].sha256
    manifest = _custom_manifest(tmp_path, landmarks={"file": "2d106det.onnx", "sha256": wrong})
    pack = load_model_pack(_write(tmp_path, manifest))

    with pytest.raises(ModelPackError) as caught:
        FaceEngine(pack)

    message = str(caught.value)
    assert "landmarks" in message
    assert wrong in message
    assert actual in message


def test_manifest_hash_in_capitals_still_matches(tmp_path: Path) -> None:
    manifest = _custom_manifest(tmp_path)
    for entry in manifest["files"].values():
        entry["sha256"] = entry["sha256"].upper()

    verify_model_pack(load_model_pack(_write(tmp_path, manifest)))


def test_missing_model_file_is_refused_naming_its_path(tmp_path: Path) -> None:
    manifest = _custom_manifest(
        tmp_path,
        recognizer={"file": "glint360k_r100.onnx", "sha256": "ab" * 32},
    )
    pack = load_model_pack(_write(tmp_path, manifest))

    with pytest.raises(ModelPackError) as caught:
        verify_model_pack(pack)

    assert str(tmp_path / "glint360k_r100.onnx") in str(caught.value)
    assert "recognizer" in str(caught.value)


def test_directory_without_manifest_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ModelPackError, match=MANIFEST_FILE) as caught:
        load_model_pack(tmp_path)

    assert str(tmp_path) in str(caught.value)


def test_manifest_that_is_not_json_is_refused(tmp_path: Path) -> None:
    (tmp_path / MANIFEST_FILE).write_text('{"name": "center-pack", "files": {')

    with pytest.raises(ModelPackError, match="cannot read"):
        load_model_pack(tmp_path)


@pytest.mark.parametrize(
    "damage",
    ["without-recognizer", "without-sha256", "without-name", "files-is-a-list", "json-array"],
)
def test_manifest_lacking_a_role_or_field_is_refused(tmp_path: Path, damage: str) -> None:
    manifest: Any = _custom_manifest(tmp_path)
    if damage == "without-recognizer":
        del manifest["files"]["recognizer"]
    elif damage == "without-sha256":
        del manifest["files"]["detector"]["sha256"]
    elif damage == "without-name":
        del manifest["name"]
    elif damage == "files-is-a-list":
        manifest["files"] = list(manifest["files"].values())
    else:
        manifest = [manifest]

    with pytest.raises(ModelPackError) as caught:
        load_model_pack(_write(tmp_path, manifest))

    assert all(role in str(caught.value) for role in ROLES)


def test_opencv_is_the_headless_build_only() -> None:
    # The GUI build drags in X11/Qt libraries a server image does not have.
    with pytest.raises(importlib.metadata.PackageNotFoundError):
        importlib.metadata.distribution("opencv-python")
    assert importlib.metadata.distribution("opencv-python-headless").version
    import cv2

    assert cv2.Laplacian is not None


def test_application_code_never_uses_insightface_face_analysis() -> None:
    # FaceAnalysis downloads model packs at runtime and loads every model it finds; the
    # engine loads the verified files by path instead.
    sources = [
        path for package in ("face", "evaluation", "api") for path in (REPO / package).rglob("*.py")
    ]
    assert len(sources) > 10
    users = [str(path.relative_to(REPO)) for path in sources if "FaceAnalysis(" in path.read_text()]
    assert users == []
