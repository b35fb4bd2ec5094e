"""What the Hugging Face Hub says a model holds, and how to check files against it.

Pure helpers around one network call (:func:`listing`): which files Pipedesk
downloads (configs, tokenizers, safetensors rather than .bin/.h5/.msgpack/.onnx
duplicates), their sizes and hashes, and :func:`check_file`, which compares a
file on disk with what it should be. Runs on the calling thread.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

from desktop.errors import ModelError
from desktop.models import transfers as downloads
from desktop.models.ref import ModelRef

#: Only what the runtime needs: configs, tokenizers (and chat templates), safetensors weights.
WEIGHT_PATTERNS = ("*.safetensors", "*.safetensors.index.json")
FALLBACK_WEIGHT_PATTERNS = ("pytorch_model*.bin", "pytorch_model.bin.index.json")
SUPPORT_PATTERNS = (
    "*.json",
    "*.jinja",
    "*.txt",
    "*.model",
    "*.spm",
    "*.tiktoken",
    "vocab*",
    "merges*",
    "tokenizer*",
    "sentencepiece*",
    "source.spm",
    "target.spm",
)
SKIP_PATTERNS = ("*.h5", "*.msgpack", "*.onnx", "*.ot", "*.tflite", "*.mlmodel", "*.gguf", "*.ckpt")


@dataclass(frozen=True)
class RemoteFile:
    """One file of a model as the Hub lists it."""

    name: str
    size: int
    sha256: str | None  # LFS files
    blob_id: str | None  # git blob sha1 (plain files)

    @property
    def blob_name(self) -> str | None:
        """The name huggingface_hub gives the file under ``blobs/`` (its ETag)."""
        return self.sha256 or self.blob_id


@dataclass(frozen=True)
class Problem:
    """One file of an installed model that is not what it should be."""

    file: str
    issue: str  # "missing", "wrong size (x of y bytes)", "content differs"

    def __str__(self) -> str:
        return f"{self.file}: {self.issue}"


def file_hashes(path: Path) -> tuple[str, str]:
    """``(sha256, git blob sha1)`` of a file: what the Hub lists for LFS and for plain files."""
    sha256 = hashlib.sha256()
    git = hashlib.sha1(b"blob %d\0" % path.stat().st_size)
    with path.open("rb") as fh:
        while chunk := fh.read(1 << 20):
            sha256.update(chunk)
            git.update(chunk)
    return sha256.hexdigest(), git.hexdigest()


def check_file(path: Path, size: int, sha256: str | None, blob_id: str | None = None) -> str | None:
    """What is wrong with ``path`` against the expected size and hashes, or None."""
    if not path.is_file():
        return "missing"
    actual = path.stat().st_size
    if actual != size:
        return f"wrong size ({actual:,} of {size:,} bytes)"
    if sha256 or blob_id:
        got_sha256, got_git = file_hashes(path)
        if (sha256 and got_sha256 != sha256) or (not sha256 and blob_id and got_git != blob_id):
            return "content differs"
    return None


def check_files(folder: Path, files: dict[str, RemoteFile]) -> tuple[list[Problem], dict[str, str]]:
    """Problems of ``folder`` against the listing, and the sha256 of every good file."""
    problems, sha256 = [], {}
    for name, remote in files.items():
        issue = check_file(folder / name, remote.size, remote.sha256, remote.blob_id)
        if issue:
            problems.append(Problem(name, issue))
        else:
            sha256[name] = file_hashes(folder / name)[0]
    return problems, sha256


def allow_patterns(filenames: list[str]) -> list[str]:
    """safetensors weights when the repo has them, else the PyTorch .bin ones; never both."""
    has_safetensors = any(name.endswith(".safetensors") for name in filenames)
    weights = WEIGHT_PATTERNS if has_safetensors else FALLBACK_WEIGHT_PATTERNS
    return [*SUPPORT_PATTERNS, *weights]


def listing(ref: ModelRef, endpoint: str) -> tuple[str, dict[str, RemoteFile]]:
    """The commit ``ref`` resolves to and the files Pipedesk would download (one Hub call)."""
    from huggingface_hub import HfApi
    from huggingface_hub.errors import (
        GatedRepoError,
        HfHubHTTPError,
        RepositoryNotFoundError,
        RevisionNotFoundError,
    )
    from huggingface_hub.utils import filter_repo_objects, httpx

    downloads.check_reachable(endpoint, ref.display)
    api = HfApi(endpoint=endpoint, token=os.environ.get("HF_TOKEN") or False)
    try:
        info = api.model_info(ref.repo, revision=ref.revision, files_metadata=True)
    except GatedRepoError:
        raise ModelError(
            f"{ref.repo} needs permission on the Hugging Face Hub: accept its terms there "
            "and set HF_TOKEN, or import it from a folder."
        ) from None
    except RepositoryNotFoundError:
        raise ModelError(
            f"No model called {ref.repo!r} was found on the Hugging Face Hub "
            "(check the spelling, or give the path of a model folder)."
        ) from None
    except RevisionNotFoundError:
        raise ModelError(f"{ref.repo} has no revision {ref.revision!r}.") from None
    except (HfHubHTTPError, httpx.HTTPError, OSError) as exc:
        raise ModelError(
            f"Could not reach the model server for {ref.display} ({type(exc).__name__}). "
            "Check the connection and try again."
        ) from None
    siblings = {s.rfilename: s for s in (info.siblings or [])}
    wanted = filter_repo_objects(
        list(siblings), allow_patterns=allow_patterns(list(siblings)), ignore_patterns=list(SKIP_PATTERNS)
    )
    files = {}
    for name in wanted:
        sibling = siblings[name]
        lfs = getattr(sibling, "lfs", None)
        files[name] = RemoteFile(
            name=name,
            size=int((lfs.size if lfs else sibling.size) or 0),
            sha256=lfs.sha256 if lfs else None,
            blob_id=getattr(sibling, "blob_id", None),
        )
    return str(info.sha or ref.revision), files
