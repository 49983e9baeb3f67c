"""Images are built once per set of inputs: a second run reuses them, a changed input rebuilds."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from testbed import images


def _image_id(tag: str) -> str:
    done = subprocess.run(
        ["docker", "image", "inspect", "-f", "{{.Id}}", tag],
        capture_output=True,
        text=True,
        check=True,
    )
    return done.stdout.strip()


def test_second_build_reuses_every_image(testbed: object) -> None:
    first = images.build_all()
    ids = {tag: _image_id(tag) for tag in [images.base_tag(), *first.values()]}
    second = images.build_all()
    assert second == first
    assert {tag: _image_id(tag) for tag in ids} == ids


def test_a_changed_input_changes_the_tag(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    copy = tmp_path / "testbed"
    for service in images.SERVICE_DIRS:
        shutil.copytree(images.HERE / service, copy / service)
    monkeypatch.setattr(images, "HERE", copy)
    before = {s: images.service_tag(s) for s in images.SERVICE_DIRS}
    (copy / "backend" / "app.py").write_text((copy / "backend" / "app.py").read_text() + "\n# x\n")
    assert images.service_tag("backend") != before["backend"]
    assert images.service_tag("db") == before["db"]
