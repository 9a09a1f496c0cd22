"""The local model without torch: exported once to ONNX, run by ONNX Runtime.

`ingest search` embeds one query in a new process; importing torch and loading the model
through sentence-transformers would cost seconds of it (and in the pipeline ONNX Runtime
embeds about twice as fast on CPU). So the model is exported once (with torch) to
`<home>/models/onnx/<name>-<content hash>/model.onnx`, and later processes need only
onnxruntime and tokenizers. The export is the whole sentence-transformers model, its modules
as modules.json lists them (for all-MiniLM-L6-v2: the transformer, mean pooling and L2
normalisation), checked against torch once when made: its vectors are the torch path's.
A changed model folder has another hash, hence another export.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import hashlib
import json
import os
import re
import tempfile
import time
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ingest_assets.embedders.base import EmbedderStats, EmbeddingError, check_vectors
from ingest_assets.embedders.settings import EmbeddingSettings

INPUTS = ("input_ids", "attention_mask", "token_type_ids")
OPSET = 17
# The export must reproduce the model: the test holds it to the same bound.
MIN_COSINE = 0.9999


class OnnxUnavailable(EmbeddingError):
    """The ONNX path cannot serve this model here (no torch to export it, no onnxruntime, a
    model it does not cover): embed with the torch path instead."""


def content_hash(folder: Path) -> str:
    """Hash of every file's relative path and bytes under the model folder."""
    digest = hashlib.sha256()
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        digest.update(path.relative_to(folder).as_posix().encode() + b"\0")
        with path.open("rb") as f:
            digest.update(hashlib.file_digest(f, "sha256").digest())
    return digest.hexdigest()


def export_path(folder: Path, cache_dir: Path) -> Path:
    """Where the export of the model in `folder` is (or goes): keyed by its content."""
    name = re.sub(r"[^A-Za-z0-9_.-]+", "-", folder.name) or "model"
    if name == "model":  # the packaged MiniLM's folder: name it by its parent
        name = re.sub(r"[^A-Za-z0-9_.-]+", "-", folder.parent.name)
    return cache_dir / f"{name}-{content_hash(folder)[:16]}" / "model.onnx"


def quiet_offline_transformers() -> None:
    """Before sentence-transformers loads: no Hugging Face download (the model is packaged),
    and no weight-loading progress bar breaking through the CLI's own progress display."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")


def export_model(folder: Path, target: Path) -> None:
    """Export the sentence-transformers model in `folder` to `target` (with torch), checked
    against torch on a padded batch. Written to a temporary file first: a process that reads
    the cache sees a whole export or none."""
    quiet_offline_transformers()
    try:
        import onnx  # noqa: F401  (torch.onnx.export's TorchScript exporter needs it)
        import torch
        from sentence_transformers import SentenceTransformer
    except ImportError as err:
        raise OnnxUnavailable(
            f"the ONNX export needs torch and onnx (the 'local' extra): {err}"
        ) from err
    model = SentenceTransformer(str(folder), device="cpu").eval()
    # Two lengths, so that the traced graph keeps the attention mask's padding.
    texts = ["a query", "a longer example sentence, padded to nothing, for the other one"]
    features = getattr(model, "preprocess", model.tokenize)(texts)  # tokenize: before v6
    tensors = [name for name, value in features.items() if isinstance(value, torch.Tensor)]
    if not set(tensors) <= set(INPUTS) or "input_ids" not in tensors:
        raise OnnxUnavailable(f"the ONNX path does not make this model's inputs ({tensors})")
    names = [name for name in INPUTS if name in tensors]
    fixed = {name: value for name, value in features.items() if name not in names}

    class Embedding(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.model = model

        def forward(self, *inputs: Any) -> Any:
            return self.model({**fixed, **dict(zip(names, inputs, strict=True))})[
                "sentence_embedding"
            ]

    args = tuple(features[name] for name in names)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, temporary = tempfile.mkstemp(dir=target.parent, suffix=".onnx.partial")
    os.close(fd)
    try:
        with warnings.catch_warnings(), torch.no_grad():
            expected = Embedding()(*args).numpy()
            warnings.simplefilter("ignore")  # the TorchScript exporter's deprecation, tracing
            # The TorchScript exporter (dynamo=False): the dynamo one would need onnxscript.
            torch.onnx.export(
                Embedding(),
                args,
                temporary,
                input_names=names,
                output_names=["sentence_embedding"],
                dynamic_axes={
                    **{name: {0: "batch", 1: "sequence"} for name in names},
                    "sentence_embedding": {0: "batch"},
                },
                opset_version=OPSET,
                dynamo=False,
            )
        session = _session(Path(temporary), threads=1)
        got = session.run(None, {name: features[name].numpy() for name in names})[0]
        cosine = _cosines(got, expected).min()
        if cosine < MIN_COSINE:
            raise OnnxUnavailable(f"the ONNX export differs from the model (cosine {cosine})")
        os.replace(temporary, target)
    except OnnxUnavailable:
        raise
    except Exception as err:  # a model the exporter cannot trace: the torch path still can
        message = str(err).strip().splitlines()
        raise OnnxUnavailable(
            f"the ONNX export failed: {type(err).__name__}: {message[0] if message else ''}"
        ) from err
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temporary)


class OnnxEmbedder:
    """An Embedder over the ONNX export of a local model; exports it on `prepare()` when no
    export of this model's content is cached yet (which needs torch, once)."""

    def __init__(
        self,
        settings: EmbeddingSettings,
        folder: Path,
        cache_dir: Path,
        note: Callable[[str], None] = lambda _: None,
    ):
        self.model = settings.model
        self.dimension = 0
        self.stats = EmbedderStats()
        self.max_concurrency = 1  # one run at a time already uses every core
        self._settings = settings
        self._folder = folder
        self._cache_dir = cache_dir
        self._note = note
        self._session: Any = None
        self._inputs: list[str] = []
        self._tokenizer: Any = None
        self._lower_case = False

    async def prepare(self) -> None:
        if self._session is None:
            await asyncio.to_thread(self._load)

    def _load(self) -> None:
        folder = self._folder
        if not (folder / "tokenizer.json").exists():
            raise OnnxUnavailable(f"{folder} has no tokenizer.json")
        target = export_path(folder, self._cache_dir)
        if not target.exists():
            target.parent.mkdir(parents=True, exist_ok=True)
            with (target.parent / "export.lock").open("w") as lock:
                fcntl.flock(lock, fcntl.LOCK_EX)  # one process exports, the others wait for it
                if not target.exists():
                    self._note(f"exporting {self.model} to ONNX, once per model (needs torch)")
                    export_model(folder, target)
        try:
            session = _session(target)
        except ImportError as err:
            raise OnnxUnavailable("onnxruntime is not installed") from err
        except Exception as err:  # a damaged file; the next export replaces it
            target.unlink(missing_ok=True)
            raise OnnxUnavailable(f"{target} could not be loaded ({err})") from err
        self._tokenizer, self._lower_case = _tokenizer(folder)
        self._session = session
        self._inputs = [i.name for i in session.get_inputs()]
        self.dimension = int(self._run([self._tokenizer.encode("dimension")]).shape[1])

    async def embed(self, texts: Sequence[str]) -> np.ndarray:
        started = time.perf_counter()
        vectors = await asyncio.to_thread(self._embed, list(texts))
        self.stats.requests += 1
        self.stats.texts += len(texts)
        self.stats.latencies.append(time.perf_counter() - started)
        return check_vectors(vectors, len(texts), self.dimension)

    def _embed(self, texts: list[str]) -> np.ndarray:
        if self._lower_case:
            texts = [text.lower() for text in texts]
        encodings = self._tokenizer.encode_batch(texts)
        # Longest first, as sentence-transformers batches: the least padding per batch.
        order = sorted(range(len(texts)), key=lambda i: -len(encodings[i].ids))
        vectors = np.empty((len(texts), self.dimension), dtype=np.float32)
        size = self._settings.batch_size
        for start in range(0, len(order), size):
            batch = order[start : start + size]
            vectors[batch] = self._run([encodings[i] for i in batch])
        return vectors

    def _run(self, encodings: list[Any]) -> np.ndarray:
        width = max(len(e.ids) for e in encodings)
        arrays = {name: np.zeros((len(encodings), width), dtype=np.int64) for name in INPUTS}
        for row, e in enumerate(encodings):
            arrays["input_ids"][row, : len(e.ids)] = e.ids
            arrays["attention_mask"][row, : len(e.ids)] = e.attention_mask
            arrays["token_type_ids"][row, : len(e.ids)] = e.type_ids
        output = self._session.run(None, {name: arrays[name] for name in self._inputs})[0]
        return _normalised(output)


def _session(path: Path, threads: int = 0) -> Any:
    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.log_severity_level = 3  # errors only
    options.intra_op_num_threads = threads  # 0: one per physical core
    return onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def _tokenizer(folder: Path) -> tuple[Any, bool]:
    """The model's tokenizer as sentence-transformers sets it up: truncated at its
    max_seq_length (capped by the tokenizer's and the model's own limits), unpadded (batches
    are padded by `_run`), lower-cased first when its sentence_bert_config says so."""
    from tokenizers import Tokenizer

    def config(name: str) -> dict[str, Any]:
        path = folder / name
        return json.loads(path.read_text()) if path.exists() else {}

    st_config = config("sentence_bert_config.json")
    limits = [
        st_config.get("max_seq_length") or config("tokenizer_config.json").get("model_max_length"),
        config("config.json").get("max_position_embeddings"),
    ]
    tokenizer = Tokenizer.from_file(str(folder / "tokenizer.json"))
    tokenizer.no_padding()
    tokenizer.enable_truncation(max_length=min(int(n) for n in limits if n))
    return tokenizer, bool(st_config.get("do_lower_case"))


def _normalised(vectors: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return (vectors / np.maximum(norms, 1e-12)).astype(np.float32)


def _cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.sum(_normalised(a) * _normalised(b), axis=1)
