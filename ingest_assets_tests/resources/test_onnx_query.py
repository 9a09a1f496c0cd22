"""The local model through its ONNX export: the torch path's vectors, cached by model content,
and no torch to import once exported."""

from __future__ import annotations

import asyncio
import logging
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from ingest_assets.embedders import EmbeddingSettings
from ingest_assets.embedders.local import LocalEmbedder, model_path
from ingest_assets.embedders.onnx_query import MIN_COSINE, OnnxUnavailable, export_path
from ingest_assets_tests.conftest import REPO_ROOT

LONG = " ".join(f"tide{i} moon ocean gravity" for i in range(200))  # ~1,000 tokens
TEXTS = [
    "tides",
    "x",
    "",
    "   padded with spaces   ",
    "Why does the sea rise and fall twice a day?",
    "HOW DO GREEN PLANTS TURN LIGHT INTO FOOD",
    "Ünïcödé façade, naïve café: crème brûlée à la carte",
    "日本語の文章を埋め込みます。東京は日本の首都です。",
    "Москва — столица России, крупнейший город страны.",
    "مرحبا بالعالم، هذا نص عربي قصير",
    "emoji 🌊🌙 and symbols ∑∫√ ≤ ≥ → ©",
    "def embed(texts: list[str]) -> np.ndarray:\n    return model.encode(texts)",
    "Line one.\n\nLine two.\tTabbed.\r\nWindows line.",
    "3.14159 2.71828 1.41421 42 1e-12 0x1F",
    "https://example.org/path?query=1&other=two#fragment",
    "a " * 255,  # 255 words: at the truncation edge with [CLS] and [SEP]
    "a " * 300,
    LONG,
    LONG + " and a different ending past the truncation",  # same first 256 tokens
    "Ωμέγα " * 200,
    *(f"chunk {i}: the {w} of compound interest over {i} years" for i, w in enumerate("abcdefgh")),
    *(" ".join(["sourdough starter feeding schedule"] * n) for n in (1, 5, 20, 60, 120)),
]


@pytest.fixture(scope="module")
def onnx_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A cache with the packaged model's export in it (made once for the module)."""
    pytest.importorskip("sentence_transformers", reason="needs the 'local' extra")
    pytest.importorskip("onnxruntime", reason="needs the 'local' extra")
    folder = tmp_path_factory.mktemp("onnx")
    embedder = LocalEmbedder(EmbeddingSettings(), onnx_dir=folder)
    asyncio.run(embedder.prepare())
    assert embedder._onnx is not None
    return folder


def embed(embedder: LocalEmbedder, texts: list[str]) -> np.ndarray:
    async def go() -> np.ndarray:
        await embedder.prepare()
        return await embedder.embed(texts)

    return asyncio.run(go())


@pytest.mark.slow
def test_the_onnx_vectors_are_the_torch_paths(onnx_dir: Path):
    settings = EmbeddingSettings(batch_size=4)  # several padded batches, sorted by length
    onnx = embed(LocalEmbedder(settings, onnx_dir=onnx_dir), TEXTS)
    torch = embed(LocalEmbedder(settings, onnx=False), TEXTS)
    assert onnx.shape == torch.shape == (len(TEXTS), 384)
    cosines = np.sum(onnx * torch, axis=1)
    assert cosines.min() >= MIN_COSINE, [TEXTS[i][:40] for i in np.argsort(cosines)[:3]]
    assert np.allclose(np.linalg.norm(onnx, axis=1), 1, atol=1e-5)
    # Truncated at the same token: texts that differ only past it embed the same.
    assert np.sum(onnx[TEXTS.index(LONG)] * onnx[TEXTS.index(LONG) + 1]) > 0.99999


@pytest.mark.slow
def test_a_cached_export_serves_without_importing_torch(onnx_dir: Path):
    script = (
        "import asyncio, sys\n"
        "from pathlib import Path\n"
        "from ingest_assets.embedders import EmbeddingSettings\n"
        "from ingest_assets.embedders.local import LocalEmbedder\n"
        f"e = LocalEmbedder(EmbeddingSettings(), onnx_dir=Path({str(onnx_dir)!r}))\n"
        "async def go():\n"
        "    await e.prepare()\n"
        "    return await e.embed(['why does the sea rise'])\n"
        "vector = asyncio.run(go())\n"
        "print(vector.shape, sorted({'torch', 'sentence_transformers'} & set(sys.modules)))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", script], cwd=REPO_ROOT, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "(1, 384) []"
    assert result.stderr == ""  # no export note: the cached one was used


@pytest.mark.slow
def test_without_an_export_the_torch_path_embeds(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
):
    pytest.importorskip("sentence_transformers", reason="needs the 'local' extra")

    def no_torch(folder: Path, target: Path) -> None:
        raise OnnxUnavailable("the ONNX export needs torch and onnx (the 'local' extra)")

    monkeypatch.setattr("ingest_assets.embedders.onnx_query.export_model", no_torch)
    with caplog.at_level(logging.WARNING, logger="ingest_assets.embedders.local"):
        embedder = LocalEmbedder(EmbeddingSettings(), onnx_dir=tmp_path)
        vectors = embed(embedder, ["tides", "moons"])
    assert vectors.shape == (2, 384) and embedder._onnx is None
    assert "embedding with sentence-transformers (torch)" in caplog.text


@pytest.mark.slow
def test_a_damaged_export_is_dropped_and_the_torch_path_embeds(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
):
    pytest.importorskip("sentence_transformers", reason="needs the 'local' extra")
    damaged = export_path(model_path("all-MiniLM-L6-v2"), tmp_path)
    damaged.parent.mkdir(parents=True)
    damaged.write_bytes(b"not an onnx model")
    with caplog.at_level(logging.WARNING, logger="ingest_assets.embedders.local"):
        embedder = LocalEmbedder(EmbeddingSettings(), onnx_dir=tmp_path)
        assert embed(embedder, ["tides"]).shape == (1, 384)
    assert "could not be loaded" in caplog.text and embedder._onnx is None
    assert not damaged.exists()  # the next process exports it again


def test_the_export_is_keyed_by_the_model_folders_content(tmp_path: Path):
    def model(name: str, weights: bytes) -> Path:
        folder = tmp_path / name
        (folder / "1_Pooling").mkdir(parents=True)
        (folder / "1_Pooling" / "config.json").write_text('{"pooling_mode_mean_tokens": true}')
        (folder / "model.safetensors").write_bytes(weights)
        return folder

    cache = tmp_path / "cache"
    first = export_path(model("a/minilm", b"weights"), cache)
    assert first.parent.parent == cache and first.name == "model.onnx"
    assert first.parent.name.startswith("minilm-")
    assert export_path(model("b/minilm", b"weights"), cache) == first  # same content
    assert export_path(model("c/minilm", b"weightz"), cache) != first  # one byte changed
    moved = model("d/minilm", b"weights")
    (moved / "1_Pooling" / "config.json").rename(moved / "1_Pooling" / "other.json")
    assert export_path(moved, cache) != first  # same bytes, another file
