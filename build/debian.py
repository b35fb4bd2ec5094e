"""The Linux package: ``pipedesk_<version>_amd64.deb`` from the onedir app, with Debian's ``dpkg-deb``.

    .venv/bin/python build/build.py --package        (after or with the build)

What it installs: the app under ``/opt/pipedesk``, ``/usr/bin/pipedesk`` (a link to its
executable), a desktop entry and hicolor icons (the applications menu), AppStream metainfo
(software centres), and the Debian packages of the system libraries a minimal desktop may
lack (``Depends``). No maintainer scripts: the icon and menu caches refresh through dpkg's
triggers, and removal takes every file away (the app never writes into its own folder); the
person's models and settings (under their home folder) stay. The version is pyproject.toml's
(build/version.py).

Runs in the build process, on the thread that calls it.
"""

from __future__ import annotations

import gzip
import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path
from xml.sax.saxutils import escape

PACKAGE = "pipedesk"
APP_ID = "org.pipedesk.Pipedesk"  # the macOS bundle id too
PREFIX = Path("opt") / PACKAGE
EXECUTABLE = "Pipedesk"  # the onedir's executable (build.py's APP_NAME)
ICON_SIZES = (48, 64, 128, 256, 512)
SUMMARY = "Hugging Face models on your own computer, offline"
DESCRIPTION = (
    "Pipedesk runs Hugging Face models in a desktop window: sentiment, named entities, "
    "translation, summaries, text generation and chat, image classification, object detection "
    "and transcription, one at a time or over whole files. Models are downloaded once and then "
    "run offline on your own computer; nothing you type or open leaves it."
)
HOMEPAGE = "https://github.com/pipedesk/pipedesk"
#: What Qt WebEngine and the window need that a minimal Debian or Ubuntu desktop may not have
#: (the libraries .ci/run installs for the window tests). Everything else is inside the app.
DEPENDS = (
    "libegl1", "libgl1", "libxkbcommon-x11-0", "libxcb-cursor0", "libxcb-icccm4", "libxcb-image0",
    "libxcb-keysyms1", "libxcb-randr0", "libxcb-render-util0", "libxcb-shape0", "libxcb-xinerama0",
    "libxcb-xkb1", "libnss3", "libxcomposite1", "libxdamage1", "libxrandr2", "libxtst6",
    "libasound2 | libasound2t64", "libdbus-1-3", "libfontconfig1",
)  # fmt: skip
#: dpkg-deb's compressors: xz for the download (smallest), none for a quick local check.
COMPRESSIONS = ("xz", "zstd", "gzip", "none")


COPYRIGHT = f"""Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/
Upstream-Name: Pipedesk
Source: {HOMEPAGE}

Files: *
Copyright: The Pipedesk developers
License: Apache-2.0
 On Debian systems, the full text of the Apache License 2.0 is in
 /usr/share/common-licenses/Apache-2.0. The app bundles Python, PyTorch, Qt and
 other libraries under their own licenses (their notices are inside /opt/pipedesk).
"""


def changelog(version: str, when: str) -> str:
    """A one-entry Debian changelog (``when`` in RFC 2822 form), as Debian policy asks of a package."""
    return (
        f"{PACKAGE} ({version}) unstable; urgency=medium\n\n"
        f"  * Pipedesk {version}; see {HOMEPAGE}/releases.\n\n"
        f" -- The Pipedesk developers <pipedesk@users.noreply.github.com>  {when}\n"
    )


def deb_name(version: str, arch: str = "amd64") -> str:
    """``pipedesk_0.1.0_amd64.deb``: Debian's own naming, version included."""
    return f"{PACKAGE}_{version}_{arch}.deb"


def desktop_entry() -> str:
    """The applications menu's entry (freedesktop Desktop Entry 1.5)."""
    return "\n".join([
        "[Desktop Entry]",
        "Type=Application",
        "Version=1.0",
        "Name=Pipedesk",
        f"Comment={SUMMARY}",
        "Exec=pipedesk",
        "TryExec=pipedesk",
        f"Icon={PACKAGE}",
        "Terminal=false",
        "Categories=Science;ArtificialIntelligence;",
        "Keywords=AI;Hugging Face;transformers;translate;transcribe;chat;",
        "StartupNotify=true",
        "",
    ])  # fmt: skip


def metainfo(version: str, date: str) -> str:
    """AppStream metainfo: what software centres show, and the release this package is."""
    return f"""<?xml version="1.0" encoding="UTF-8"?>
<component type="desktop-application">
  <id>{APP_ID}</id>
  <metadata_license>CC0-1.0</metadata_license>
  <project_license>Apache-2.0</project_license>
  <name>Pipedesk</name>
  <summary>{escape(SUMMARY)}</summary>
  <description>
    <p>{escape(DESCRIPTION)}</p>
  </description>
  <developer id="org.pipedesk">
    <name>The Pipedesk developers</name>
  </developer>
  <launchable type="desktop-id">{APP_ID}.desktop</launchable>
  <url type="homepage">{HOMEPAGE}</url>
  <categories>
    <category>Science</category>
    <category>ArtificialIntelligence</category>
  </categories>
  <provides>
    <binary>{PACKAGE}</binary>
  </provides>
  <content_rating type="oars-1.1"/>
  <releases>
    <release version="{escape(version)}" date="{date}"/>
  </releases>
</component>
"""


def control(version: str, installed_kib: int, arch: str = "amd64") -> str:
    """DEBIAN/control."""
    return "\n".join([
        f"Package: {PACKAGE}",
        f"Version: {version}",
        f"Architecture: {arch}",
        "Maintainer: The Pipedesk developers <pipedesk@users.noreply.github.com>",
        f"Installed-Size: {installed_kib}",
        f"Depends: {', '.join(DEPENDS)}",
        "Section: science",
        "Priority: optional",
        f"Homepage: {HOMEPAGE}",
        f"Description: {SUMMARY}",
        *(f" {line}" for line in _wrap(DESCRIPTION)),
        "",
    ])  # fmt: skip


def _wrap(text: str, width: int = 78) -> list[str]:
    lines, line = [], ""
    for word in text.split():
        if line and len(line) + 1 + len(word) > width:
            lines.append(line)
            line = word
        else:
            line = f"{line} {word}".strip()
    return [*lines, line]


def _link_or_copy(source: str, target: str) -> None:
    """Hard-link (instant, no space) where the staging folder shares the file system."""
    try:
        os.link(source, target)
    except OSError:
        shutil.copy2(source, target)


def _write(path: Path, text: str, mode: int = 0o644) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    path.chmod(mode)


def icons(source: Path, share: Path) -> list[Path]:
    """``share/icons/hicolor/NxN/apps/pipedesk.png`` for each of ICON_SIZES, resized from ``source``."""
    from PIL import Image

    written = []
    with Image.open(source) as image:
        image = image.convert("RGBA")
        for size in ICON_SIZES:
            target = share / "icons" / "hicolor" / f"{size}x{size}" / "apps" / f"{PACKAGE}.png"
            target.parent.mkdir(parents=True, exist_ok=True)
            image.resize((size, size), Image.Resampling.LANCZOS).save(target, optimize=True)
            target.chmod(0o644)
            written.append(target)
    return written


def stage(app: Path, root: Path, version: str, icon: Path) -> Path:
    """Lay the package's tree out under ``root`` (emptied first); return ``root``."""
    shutil.rmtree(root, ignore_errors=True)
    shutil.copytree(app, root / PREFIX, symlinks=True, copy_function=_link_or_copy)
    (root / "usr" / "bin").mkdir(parents=True)
    (root / "usr" / "bin" / PACKAGE).symlink_to(f"/{PREFIX}/{EXECUTABLE}")
    share = root / "usr" / "share"
    _write(share / "applications" / f"{APP_ID}.desktop", desktop_entry())
    _write(share / "metainfo" / f"{APP_ID}.metainfo.xml", metainfo(version, time.strftime("%Y-%m-%d")))
    icons(icon, share)
    doc = share / "doc" / PACKAGE
    _write(doc / "copyright", COPYRIGHT)
    when = time.strftime("%a, %d %b %Y %H:%M:%S +0000", time.gmtime())
    (doc / "changelog.gz").write_bytes(gzip.compress(changelog(version, when).encode(), mtime=0))
    (doc / "changelog.gz").chmod(0o644)
    installed = sum(
        os.lstat(os.path.join(parent, name)).st_size for parent, _, names in os.walk(root) for name in names
    )
    _write(root / "DEBIAN" / "control", control(version, -(-installed // 1024)))
    for parent, dirs, _names in os.walk(root):  # every folder 0755, whatever the umask was
        for name in ("", *dirs):
            os.chmod(os.path.join(parent, name), 0o755)
    return root


def build_deb(
    app: Path, out_dir: Path, work: Path, version: str, icon: Path, compression: str = "xz"
) -> Path:
    """Build ``out_dir/pipedesk_<version>_amd64.deb`` from the onedir ``app``; return its path."""
    if compression not in COMPRESSIONS:
        raise ValueError(f"compression {compression!r}: one of {', '.join(COMPRESSIONS)}")
    if not shutil.which("dpkg-deb"):
        raise FileNotFoundError("dpkg-deb is not installed (Debian/Ubuntu: apt-get install dpkg-dev)")
    work.mkdir(parents=True, exist_ok=True)
    root = Path(tempfile.mkdtemp(prefix="deb-root-", dir=work))  # one per run: runs never collide
    try:
        stage(app, root, version, icon)
        out_dir.mkdir(parents=True, exist_ok=True)
        target = out_dir / deb_name(version)
        command = ["dpkg-deb", "--root-owner-group", f"-Z{compression}", "--build", str(root), str(target)]
        subprocess.run(command, check=True, stdout=subprocess.DEVNULL)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    return target
