"""Copies of a loaded model for a file run (int8 weights for Fast CPU mode, a CPU copy when the GPU
keeps failing), and how to tell a device failure from a bad row. Called on the run's thread."""

from __future__ import annotations

from desktop.engine.loaded import Loaded


def int8_copy(loaded: Loaded) -> Loaded:
    """``loaded`` with dynamic int8 Linear layers, built once and kept with the loaded model."""
    found = loaded.extra.get("int8")
    if found is None:
        import copy
        import warnings

        import torch
        from torch.ao.quantization import quantize_dynamic

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            model = quantize_dynamic(copy.deepcopy(loaded.model), {torch.nn.Linear}, dtype=torch.qint8)
        found = loaded.extra["int8"] = loaded.with_model(model, "cpu")
    return found


def on_cpu(loaded: Loaded) -> Loaded:
    """A full-precision copy of ``loaded`` on the CPU (a GPU that keeps failing); Whisper as its CPU
    engine runs it (int8 where the processor gains)."""
    import torch

    if loaded.kind == "automatic-speech-recognition":
        from desktop.engine import whisper

        return loaded.with_model(whisper.load(loaded.model.source, loaded.model.converted, "cpu"), "cpu")

    model = type(loaded.model).from_pretrained(loaded.path, dtype=torch.float32).eval()
    return loaded.with_model(model, "cpu")


def out_of_memory(exc: BaseException) -> bool:
    import torch

    return isinstance(exc, torch.OutOfMemoryError) or "out of memory" in str(exc).lower()


def device_failure(exc: BaseException) -> bool:
    text = str(exc)
    return out_of_memory(exc) or "CUDA" in text or "MPS" in text or "cuDNN" in text


def free_device_memory() -> None:
    import gc

    import torch

    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
