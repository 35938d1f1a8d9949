"""The chroot helper: the mirror it builds from, and a cached build used as it is."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.pbx.asterisk import chroot


def test_the_mirror_is_the_hosts_debian_one(tmp_path: Path) -> None:
    (tmp_path / "sources.list.d").mkdir()
    (tmp_path / "sources.list.d" / "debian.sources").write_text(
        "Types: deb\nURIs: http://security.example/debian-security\nSuites: bookworm-security\n"
        "\nTypes: deb\nURIs: http://mirror.example/debian/\nSuites: bookworm\n")
    assert chroot.debian_mirror(tmp_path) == "http://mirror.example/debian"
    empty = tmp_path / "empty"
    empty.mkdir()
    assert chroot.debian_mirror(empty) == chroot.DEFAULT_MIRROR


def test_a_finished_build_is_reused_and_a_half_built_one_is_not(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(chroot, "CACHE", tmp_path)
    root = chroot.chroot_root("v-test")
    root.mkdir(parents=True)
    (root / ".m365pbx-complete").write_text("v-test")
    assert chroot.ensure_chroot("v-test") == (root, 0.0)
    # Without mmdebstrap a tree without the marker (an interrupted build) is refused.
    monkeypatch.setattr(chroot.shutil, "which", lambda _name: None)
    (tmp_path / "v-other" / "root").mkdir(parents=True)
    if chroot.os.geteuid() == 0:
        with pytest.raises(chroot.ChrootUnavailable, match="mmdebstrap"):
            chroot.ensure_chroot("v-other")
