"""The one build command: a onedir app in ``dist/Pipedesk`` that needs no Python and no network.

    .venv/bin/python build/build.py [--bundle-model MODEL ...] [--measure] [--package]

``MODEL`` is a Hub id (``owner/name``: taken from Pipedesk's models folder,
downloaded first if it is not there), ``owner/name=PATH`` (a model folder put in
under that id, so the app's defaults find it) or the ``PATH`` of a folder named
``owner--name``. Bundled models are read-only and ready from the first start.

PyInstaller works in ``.work/pyinstaller`` (never in ``build/``, which holds
these sources) and writes ``dist/Pipedesk``. The build ends with its size and
the ten largest parts; ``--measure`` adds the time from start to the UI being
served, for the built app and for ``python -m desktop`` (build/measure.py).
``--package`` then makes the installer next to it in ``dist/``, named with the version of
pyproject.toml: ``pipedesk_<version>_amd64.deb`` on Linux (build/debian.py),
``Pipedesk-<version>-windows-x86_64-setup.exe`` on Windows (NSIS: build/windows/pipedesk.nsi)
and ``Pipedesk-<version>-macos-<arch>.dmg`` on macOS; ``--package-only`` packages the app
already in ``dist/`` without building it again.
"""

from __future__ import annotations

import argparse
import fnmatch
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
WORK = ROOT / ".work"
DIST = ROOT / "dist"
SPEC = ROOT / "build" / "pipedesk.spec"
STAGE = WORK / "bundle" / "models"
LOG = WORK / "pyinstaller.log"
REPORT = WORK / "build-report.json"
APP_NAME = "Pipedesk"
sys.path.insert(0, str(ROOT / "build"))
import debian  # noqa: E402 - build/debian.py: the .deb
from version import project_version  # noqa: E402 - build/version.py: pyproject.toml's version


class BuildError(Exception):
    """A problem the person building can fix; printed as one line, exit code 2."""


@dataclass(frozen=True)
class BundleRequest:
    """One ``--bundle-model``: the Hub id it is known by, and a folder if one was given."""

    repo: str
    path: Path | None = None

    @property
    def folder_name(self) -> str:
        return self.repo.replace("/", "--")


def _looks_like_repo(value: str) -> bool:
    from desktop.models import looks_like_hub_id

    return "/" in value and looks_like_hub_id(value)


def parse_bundle(value: str) -> BundleRequest:
    """``owner/name``, ``owner/name=PATH`` or the PATH of an ``owner--name`` folder."""
    value = value.strip()
    repo, sep, path = value.partition("=")
    if sep:
        if not _looks_like_repo(repo.strip()):
            raise BuildError(f"--bundle-model {value}: {repo!r} is not a Hub id like owner/name.")
        return BundleRequest(repo.strip(), Path(path.strip()).expanduser())
    candidate = Path(value).expanduser()
    if candidate.is_dir():
        owner, dashes, name = candidate.resolve().name.partition("--")
        if not dashes or not _looks_like_repo(f"{owner}/{name}"):
            raise BuildError(
                f"--bundle-model {value}: cannot tell which Hub id this folder stands for; "
                "write it as owner/name=PATH."
            )
        return BundleRequest(f"{owner}/{name}", candidate)
    if _looks_like_repo(value):
        return BundleRequest(value)
    raise BuildError(f"--bundle-model {value}: neither a Hub id (owner/name) nor an existing folder.")


#: Files a model folder may hold that the runtime never reads (other frameworks' weights, exports).
SKIP_PATTERNS = ("*.h5", "*.msgpack", "*.onnx", "*.ot", "*.tflite", "*.mlmodel", "*.gguf", "*.ckpt", "*.md")
#: PyTorch pickles are left out when the same weights are there as safetensors.
PICKLE_PATTERNS = ("pytorch_model*.bin", "pytorch_model.bin.index.json")


def model_files(folder: Path) -> list[Path]:
    """The files of ``folder`` the runtime needs: configs, tokenizer and one copy of the weights."""
    files = sorted(
        p
        for p in folder.rglob("*")
        if p.is_file() and not any(part.startswith(".") for part in p.parts[len(folder.parts) :])
    )
    names = [p.relative_to(folder).as_posix() for p in files]
    skip = [*SKIP_PATTERNS]
    if any(name.endswith(".safetensors") for name in names):
        skip += PICKLE_PATTERNS
    return [
        p for p, name in zip(files, names, strict=True) if not any(fnmatch.fnmatch(name, pat) for pat in skip)
    ]


def source_folder(request: BundleRequest) -> Path:
    """The folder to copy: the one given, or the model from Pipedesk's store (downloading it)."""
    if request.path is not None:
        folder = request.path
        if not folder.is_dir():
            raise BuildError(f"--bundle-model {request.repo}: the folder {folder} does not exist.")
    else:
        from desktop.cli.common import terminal_progress
        from desktop.errors import UserError
        from desktop.models import ModelStore
        from desktop.tasks import ModelRef, known_models

        ref = known_models().get(request.repo) or ModelRef(request.repo, "main")
        try:
            folder = ModelStore().ensure(ref, progress=terminal_progress())
        except UserError as exc:
            raise BuildError(f"--bundle-model {request.repo}: {exc}") from None
    if not (folder / "config.json").is_file():
        raise BuildError(f"--bundle-model {request.repo}: {folder} is not a model folder (no config.json).")
    return folder


def stage_models(requests: Iterable[BundleRequest], target: Path = STAGE) -> dict[str, int]:
    """Copy each model's files into ``target/<owner>--<name>``; return bytes per repo id.

    ``target`` is emptied first, so a model left over from an earlier build is never bundled.
    """
    shutil.rmtree(target, ignore_errors=True)
    target.mkdir(parents=True)
    sizes: dict[str, int] = {}
    for request in requests:
        if request.repo in sizes:
            raise BuildError(f"--bundle-model {request.repo} is given twice.")
        source = source_folder(request)
        destination = target / request.folder_name
        total = 0
        for file in model_files(source):
            copy = destination / file.relative_to(source)
            copy.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(file, copy)  # follows the Hub cache's symlinks
            total += copy.stat().st_size
        sizes[request.repo] = total
    return sizes


def run_pyinstaller(models_dir: Path, strip: bool = True) -> None:
    """Run PyInstaller on the spec; its full log goes to ``.work/pyinstaller.log``."""
    LOG.parent.mkdir(parents=True, exist_ok=True)
    command = [
        sys.executable, "-m", "PyInstaller", "--noconfirm",
        "--workpath", str(WORK / "pyinstaller"), "--distpath", str(DIST),
        str(SPEC), "--", "--models-dir", str(models_dir),
    ]  # fmt: skip
    if not strip:
        command.append("--no-strip")
    env = {**os.environ, "PYTHONNOUSERSITE": "1"}
    with LOG.open("w", encoding="utf-8") as log:
        done = subprocess.run(command, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, env=env)
    if done.returncode != 0:
        tail = LOG.read_text(encoding="utf-8", errors="replace").splitlines()[-25:]
        raise BuildError("PyInstaller failed:\n" + "\n".join(tail) + f"\n(full log: {LOG})")


def app_dir() -> Path:
    return DIST / APP_NAME


def executable(folder: Path | None = None) -> Path:
    """``dist/Pipedesk/Pipedesk`` (``Pipedesk.exe`` on Windows)."""
    return (folder or app_dir()) / (f"{APP_NAME}.exe" if sys.platform == "win32" else APP_NAME)


def _files(folder: Path) -> list[Path]:
    """Every regular file under ``folder``; symlinks (PyInstaller links libraries) are not counted."""
    found = []
    for parent, _dirs, names in os.walk(folder):  # does not follow links to folders
        found += [Path(parent) / name for name in names if not (Path(parent) / name).is_symlink()]
    return found


def _size(path: Path) -> int:
    if path.is_symlink():
        return 0
    if path.is_file():
        return path.stat().st_size
    return sum(p.stat().st_size for p in _files(path))


def size_report(folder: Path, top: int = 10) -> dict:
    """Total size, and the largest parts (top-level entries of ``_internal``) and files."""
    internal = folder / "_internal"
    entries = (
        [*internal.iterdir(), *(p for p in folder.iterdir() if p != internal)] if internal.is_dir() else []
    )
    parts = sorted(((p.relative_to(folder).as_posix(), _size(p)) for p in entries), key=lambda x: -x[1])
    files = sorted(
        ((p.relative_to(folder).as_posix(), p.stat().st_size) for p in _files(folder)), key=lambda x: -x[1]
    )
    return {
        "total_bytes": sum(size for _, size in files),
        "files": len(files),
        "largest_parts": parts[:top],
        "largest_files": files[:top],
    }


def format_size_report(report: dict) -> str:
    lines = [
        f"Size: {report['total_bytes'] / 1e6:,.0f} MB in {report['files']:,} files",
        "Ten largest parts:",
    ]
    lines += [f"  {size / 1e6:9,.1f} MB  {name}" for name, size in report["largest_parts"]]
    lines.append("Ten largest files:")
    lines += [f"  {size / 1e6:9,.1f} MB  {name}" for name, size in report["largest_files"]]
    return "\n".join(lines)


def smoke_test(folder: Path, models: Path, timeout: float = 900) -> int:
    """Run ``Pipedesk --smoke-test`` offline with the models in ``models`` put into the app meanwhile.

    For CI: the app that is shipped carries no test models, so the tiny ones
    (``owner--name`` folders, as tests/support/tiny_models.py writes them) are copied into
    the bundle's ``models`` folder for the run and removed afterwards. The report
    is printed from the log file too: a windowed build has no stdout.
    """
    target = folder / "_internal" / "models"  # sys._MEIPASS/models in a onedir build
    target.mkdir(exist_ok=True)
    added = []
    try:
        for source in sorted(p for p in models.iterdir() if (p / "config.json").is_file()):
            if not (target / source.name).exists():
                shutil.copytree(source, target / source.name)
                added.append(target / source.name)
        with tempfile.TemporaryDirectory(prefix="pipedesk-smoke-", ignore_cleanup_errors=True) as home:
            env = {**os.environ, "PIPEDESK_HOME": home, "HF_HUB_OFFLINE": "1"}
            done = subprocess.run([str(executable(folder)), "--smoke-test"], env=env, timeout=timeout)
            log = Path(home) / "logs" / "pipedesk.log"
            if sys.platform in ("win32", "darwin") or done.returncode != 0:
                print(f"--- {log.name} ---")
                print(log.read_text(encoding="utf-8", errors="replace") if log.is_file() else "(no log file)")
            return done.returncode
    finally:
        for path in added:
            shutil.rmtree(path, ignore_errors=True)
        if not any(target.iterdir()):
            target.rmdir()


def _arch() -> str:
    machine = platform.machine().lower()
    return {"amd64": "x86_64", "x64": "x86_64", "aarch64": "arm64"}.get(machine, machine)


def _makensis() -> str:
    found = shutil.which("makensis")
    for folder in (os.environ.get("PROGRAMFILES(X86)"), os.environ.get("PROGRAMFILES")):
        if not found and folder and (Path(folder) / "NSIS" / "makensis.exe").is_file():
            found = str(Path(folder) / "NSIS" / "makensis.exe")
    if not found:
        raise BuildError(
            "--package needs NSIS's makensis (https://nsis.sourceforge.io, or choco install nsis)."
        )
    return found


def nsis_command(version: str, source: Path, outfile: Path, makensis: str = "makensis") -> list[str]:
    """The makensis command line that compiles build/windows/pipedesk.nsi (warnings are errors)."""
    script = ROOT / "build" / "windows" / "pipedesk.nsi"
    defines = {"VERSION": version, "SOURCE": source, "OUTFILE": outfile, "ICON": ROOT / "assets" / "icon.ico"}
    flag = "/" if sys.platform == "win32" else "-"
    return [makensis, f"{flag}WX", f"{flag}V2", *(f"{flag}D{k}={v}" for k, v in defines.items()), str(script)]


def package(compression: str = "xz") -> Path:
    """The installer of ``dist/Pipedesk`` for this system, in ``dist/``; its path."""
    version = project_version()
    if not executable().is_file():
        raise BuildError(f"--package: there is no app to package in {app_dir()}; build it first.")
    if sys.platform.startswith("linux"):
        if not shutil.which("dpkg-deb"):
            raise BuildError("--package needs dpkg-deb (Debian/Ubuntu: apt-get install dpkg).")
        return debian.build_deb(app_dir(), DIST, WORK, version, ROOT / "assets" / "icon.png", compression)
    if sys.platform == "win32":
        target = DIST / f"{APP_NAME}-{version}-windows-{_arch()}-setup.exe"
        command = nsis_command(version, app_dir(), target, _makensis())
    else:
        target = DIST / f"{APP_NAME}-{version}-macos-{_arch()}.dmg"
        source = DIST / f"{APP_NAME}.app"
        command = ["hdiutil", "create", "-volname", f"{APP_NAME} {version}", "-srcfolder", str(source)]
        command += ["-ov", "-format", "UDZO", str(target)]
    if subprocess.run(command).returncode != 0:
        raise BuildError(f"--package: {Path(command[0]).name} failed (its output is above).")
    return target


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="build.py", description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--bundle-model", action="append", default=[], metavar="MODEL",
        help="put a model inside the app: owner/name, owner/name=PATH or the PATH of an owner--name folder",
    )  # fmt: skip
    parser.add_argument(
        "--measure", action="store_true", help="then time the start of the app and of python -m desktop"
    )
    parser.add_argument(
        "--smoke-test", type=Path, metavar="MODELS_DIR",
        help="then run the app's --smoke-test offline with the owner--name model folders of MODELS_DIR put in for the run",
    )  # fmt: skip
    parser.add_argument(
        "--no-strip", action="store_true", help="keep the symbol table of libtorch_cpu (Linux)"
    )
    parser.add_argument(
        "--package", action="store_true",
        help="then make the installer: a .deb on Linux, a setup .exe (NSIS) on Windows, a .dmg on macOS",
    )  # fmt: skip
    parser.add_argument(
        "--package-only", action="store_true", help="package the app already in dist/ without building it"
    )
    parser.add_argument(
        "--deb-compression", default="xz", choices=debian.COMPRESSIONS,
        help="the .deb's compression (default xz, the smallest download; none for a quick local check)",
    )  # fmt: skip
    return parser


def _package(compression: str) -> int:
    started = time.perf_counter()
    try:
        target = package(compression)
    except BuildError as exc:
        print(f"build: error: {exc}", file=sys.stderr)
        return 2
    seconds = time.perf_counter() - started
    print(f"Packaged {target.relative_to(ROOT)}: {target.stat().st_size / 1e6:,.0f} MB in {seconds:.0f} s")
    return 0


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.package_only:
        return _package(args.deb_compression)
    started = time.perf_counter()
    try:
        if args.smoke_test is not None and not args.smoke_test.is_dir():
            raise BuildError(f"--smoke-test {args.smoke_test}: no such folder.")
        requests = [parse_bundle(value) for value in args.bundle_model]
        models = stage_models(requests)
        for repo, size in models.items():
            print(f"Bundling {repo} ({size / 1e6:,.1f} MB)", flush=True)
        print(f"Running PyInstaller (log: {LOG.relative_to(ROOT)}) …", flush=True)
        run_pyinstaller(STAGE, strip=not args.no_strip)
    except BuildError as exc:
        print(f"build: error: {exc}", file=sys.stderr)
        return 2
    seconds = time.perf_counter() - started
    report = {"seconds": round(seconds, 1), "models": models, **size_report(app_dir())}
    REPORT.write_text(json.dumps(report, indent=2), encoding="utf-8")
    print(f"Built {executable().relative_to(ROOT)} in {seconds / 60:.1f} min")
    print(format_size_report(report), flush=True)
    if args.smoke_test is not None:
        code = smoke_test(app_dir(), args.smoke_test)
        if code != 0:
            print(f"build: error: the smoke test failed (exit code {code})", file=sys.stderr)
            return 1
    if args.package and (code := _package(args.deb_compression)) != 0:
        return code
    if args.measure:
        sys.path.insert(0, str(Path(__file__).parent))
        import measure

        return measure.main([])
    return 0


if __name__ == "__main__":
    sys.exit(main())
