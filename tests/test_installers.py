"""The installers and the version a person sees: the .deb, the Windows installer's script, ``--version``.

Quick tests package a stand-in app (a few files) the way build/debian.py and
build/windows/pipedesk.nsi package the real one. The test marked ``build`` packages the
app the build tests make (the session's ``packaged_app``, never a second build) into a
``.deb``, installs it with apt (as root), runs ``/usr/bin/pipedesk --smoke-test`` on the
bundled tiny models, removes it and checks nothing of it is left.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image

from tests.support import ROOT, need
from tests.support.build_script import BUILD_TIMEOUT, build_module

build = build_module()
sys.path.insert(0, str(ROOT / "build"))
import debian  # noqa: E402
from version import project_version  # noqa: E402

VERSION = project_version()
ENTRY = Path("usr/share/applications/org.pipedesk.Pipedesk.desktop")
METAINFO = Path("usr/share/metainfo/org.pipedesk.Pipedesk.metainfo.xml")
ICONS = [Path(f"usr/share/icons/hicolor/{n}x{n}/apps/pipedesk.png") for n in (48, 64, 128, 256, 512)]
#: Every path the package installs outside /opt/pipedesk.
DOCS = [Path("usr/share/doc/pipedesk/copyright"), Path("usr/share/doc/pipedesk/changelog.gz")]
INSTALLED = [Path("usr/bin/pipedesk"), ENTRY, METAINFO, *ICONS, *DOCS]


def _run(*command: str | Path, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run([str(c) for c in command], capture_output=True, text=True, timeout=300, **kwargs)


def _stand_in_app(folder: Path) -> Path:
    """A onedir app's shape: an executable and ``_internal`` with a file in it."""
    (folder / "_internal" / "assets").mkdir(parents=True)
    (folder / "_internal" / "assets" / "app.css").write_text("body {}\n")
    exe = folder / "Pipedesk"
    exe.write_text("#!/bin/sh\necho stand-in\n")
    exe.chmod(0o755)
    return folder


def test_the_version_is_pyprojects_in_the_cli_and_the_window_title():
    import desktop
    from desktop.shell import window

    assert desktop.__version__ == VERSION, "reinstall (pip install -e .): the metadata is stale"
    done = _run(sys.executable, "-m", "desktop", "--version", cwd=ROOT)
    assert done.returncode == 0 and done.stdout.strip() == f"pipedesk {VERSION}", done.stdout + done.stderr
    title = window.TITLE
    assert title == f"Pipedesk {VERSION}"
    assert debian.deb_name(VERSION) == f"pipedesk_{VERSION}_amd64.deb"


def test_deb_of_a_stand_in_app_holds_the_app_launcher_menu_entry_icons_and_metainfo(tmp_path):
    need(shutil.which("dpkg-deb") is not None, "dpkg-deb is not installed (Debian/Ubuntu only)")
    app = _stand_in_app(tmp_path / "Pipedesk")
    deb = debian.build_deb(
        app, tmp_path / "out", tmp_path / "work", VERSION, ROOT / "assets" / "icon.png", "none"
    )
    assert deb.name == f"pipedesk_{VERSION}_amd64.deb"

    info = _run("dpkg-deb", "--info", deb).stdout
    assert "Package: pipedesk" in info and f"Version: {VERSION}" in info
    depends = next(line for line in info.splitlines() if line.strip().startswith("Depends:"))
    for library in ("libnss3", "libxcb-cursor0", "libxkbcommon-x11-0", "libegl1", "libasound2"):
        assert library in depends
    assert "postrm" not in info and "postinst" not in info, "no maintainer scripts"

    contents = _run("dpkg-deb", "--contents", deb).stdout.splitlines()
    listed = {line.split()[5].removeprefix("./").rstrip("/"): line for line in contents}
    for path in ("opt/pipedesk/Pipedesk", "opt/pipedesk/_internal/assets/app.css", *map(str, INSTALLED)):
        assert path in listed, path
        assert " root/root " in listed[path], listed[path]
    assert listed["usr/bin/pipedesk"].endswith("-> /opt/pipedesk/Pipedesk")
    assert listed["opt/pipedesk/Pipedesk"].startswith("-rwxr-xr-x")

    unpacked = tmp_path / "unpacked"
    assert _run("dpkg-deb", "-x", deb, unpacked).returncode == 0
    for size, icon in zip((48, 64, 128, 256, 512), ICONS, strict=True):
        with Image.open(unpacked / icon) as image:
            assert image.size == (size, size) and image.mode == "RGBA"
    _assert_valid_entry_and_metainfo(unpacked)


def _assert_valid_entry_and_metainfo(root: Path) -> None:
    """desktop-file-validate and appstreamcli (offline) find nothing to complain about."""
    need(shutil.which("desktop-file-validate") is not None, "desktop-file-validate (desktop-file-utils)")
    need(shutil.which("appstreamcli") is not None, "appstreamcli (appstream)")
    checked = _run("desktop-file-validate", root / ENTRY)
    assert checked.returncode == 0 and not checked.stdout.strip(), checked.stdout + checked.stderr
    checked = _run("appstreamcli", "validate", "--no-net", root / METAINFO)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert f'version="{VERSION}"' in (root / METAINFO).read_text(encoding="utf-8")


def test_windows_installer_script_compiles_against_a_stand_in_folder(tmp_path):
    """build/windows/pipedesk.nsi compiles (warnings are errors), so a broken script fails here first."""
    need(shutil.which("makensis") is not None, "makensis is not installed (apt-get install nsis)")
    app = _stand_in_app(tmp_path / "Pipedesk")
    (app / "Pipedesk").rename(app / "Pipedesk.exe")
    target = tmp_path / f"Pipedesk-{VERSION}-windows-x86_64-setup.exe"
    command = [("-V4" if part == "-V2" else part) for part in build.nsis_command(VERSION, app, target)]
    done = _run(*command)
    assert done.returncode == 0, done.stdout + done.stderr
    log = done.stdout  # what the compiler put in: the stand-in's files, the per-user places, the entry
    for line in (
        'File: "Pipedesk.exe"', 'File: "app.css"', 'InstallDir: "$LOCALAPPDATA\\Programs\\Pipedesk"',
        f"HKCU\\Software\\Microsoft\\Windows\\CurrentVersion\\Uninstall\\Pipedesk\\DisplayVersion={VERSION}",
        '"$SMPROGRAMS\\Pipedesk.lnk"', 'Section: "un.Also remove my models and settings"',
        'RMDir: /r "$LOCALAPPDATA\\Pipedesk"',
    ):  # fmt: skip
        assert line in log, line
    setup = target.read_bytes()
    assert setup[:2] == b"MZ" and VERSION.encode("utf-16-le") in setup  # the file's version resource
    no_version = [part for part in build.nsis_command(VERSION, app, target) if "VERSION=" not in part]
    assert _run(*no_version).returncode != 0, "the script must refuse to build without a version"


# --- the real app, installed ----------------------------------------------------------------


def _installed(package: str = "pipedesk") -> bool:
    done = _run("dpkg-query", "-W", "-f=${Status}", package)
    return done.returncode == 0 and "installed" in done.stdout.split()


@pytest.mark.build
@pytest.mark.timeout(BUILD_TIMEOUT + 300)
def test_deb_installs_runs_the_smoke_test_and_removes_cleanly(packaged_app, tiny_models, tmp_path):
    need(hasattr(os, "geteuid") and os.geteuid() == 0, "installing a .deb needs root")
    need(all(shutil.which(tool) for tool in ("dpkg", "dpkg-deb", "apt-get")), "dpkg and apt (Debian/Ubuntu)")
    need(not _installed(), "a pipedesk package is installed on this machine: not replacing it")
    packaged = _run(
        sys.executable, ROOT / "build" / "build.py", "--package-only", "--deb-compression", "none"
    )
    assert packaged.returncode == 0, packaged.stdout + packaged.stderr
    deb = build.DIST / debian.deb_name(VERSION)
    info = _run("dpkg-deb", "--info", deb).stdout
    assert f"Version: {VERSION}" in info and "Depends: libegl1" in info
    contents = _run("dpkg-deb", "--contents", deb).stdout
    for path in (
        "./opt/pipedesk/Pipedesk",
        "./opt/pipedesk/_internal/base_library.zip",
        *map(str, INSTALLED),
    ):
        assert path.removeprefix("./") in contents, path
    assert "_internal/models/distilbert--" in contents, "the build's tiny models are in the app"

    unsafe_io = ["-o", "Dpkg::Options::=--force-unsafe-io"]  # no fsync per file: a test machine
    installed = _run("apt-get", "install", "-y", "--no-install-recommends", *unsafe_io, deb.resolve())
    try:
        assert installed.returncode == 0, installed.stdout[-3000:] + installed.stderr
        assert _installed()
        _assert_valid_entry_and_metainfo(Path("/"))
        version = _run("/usr/bin/pipedesk", "--version")
        assert version.stdout.strip() == f"pipedesk {VERSION}", version.stdout + version.stderr
        env = {k: v for k, v in os.environ.items() if not k.startswith(("HF_", "PIPEDESK_"))}
        env.update(PIPEDESK_HOME=str(tmp_path / "home"), HOME=str(tmp_path / "user"), HF_HUB_OFFLINE="1")
        smoke = _run("/usr/bin/pipedesk", "--smoke-test", env=env)
        assert smoke.returncode == 0, smoke.stdout[-4000:] + smoke.stderr[-3000:]
        assert f"{len(tiny_models)} bundled models" in smoke.stdout and "Smoke test passed" in smoke.stdout
    finally:
        removed = _run("apt-get", "remove", "-y", *unsafe_io, "pipedesk")
        deb.unlink(missing_ok=True)
    assert removed.returncode == 0, removed.stdout + removed.stderr
    assert not _installed()
    left = [p for p in (Path("/opt/pipedesk"), *(Path("/") / p for p in INSTALLED)) if os.path.lexists(p)]
    assert not left, f"left behind after apt-get remove: {left}"
    assert (tmp_path / "home" / "logs" / "pipedesk.log").is_file(), "the person's own files stay"
