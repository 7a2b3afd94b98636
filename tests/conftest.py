from __future__ import annotations

import os
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from pipeline.ingest import ingest_files
from pipeline.serving import ServeConfig, VllmServer
from pipeline.store import Store
from pipeline.synth.generator import SynthSpec, SynthSummary, generate_corpus

SMALL = SynthSpec(accounts=12, tweets=4000, seed=7)


def shared_data_dir() -> Path:
    """The real public samples beside the checkout (../shared/data), or $PERSONAS_SHARED_DATA."""
    env = os.environ.get("PERSONAS_SHARED_DATA")
    return Path(env) if env else Path(__file__).resolve().parents[2] / "shared" / "data"


@pytest.fixture(scope="session")
def shared_data() -> Path:
    path = shared_data_dir()
    if not path.is_dir():
        pytest.skip(f"real sample data not present at {path}")
    return path


@pytest.fixture(scope="session")
def small_corpus(tmp_path_factory: pytest.TempPathFactory) -> SynthSummary:
    return generate_corpus(SMALL, tmp_path_factory.mktemp("corpus"), workers=1)


@pytest.fixture(scope="session")
def small_store(small_corpus: SynthSummary, tmp_path_factory: pytest.TempPathFactory) -> Store:
    """A store holding the small corpus; read-only for tests (copy it to modify)."""
    store = Store(tmp_path_factory.mktemp("store"), gc_grace_s=0)
    result = ingest_files(store, small_corpus.files, kind="archive", workers=1, show_progress=False)
    assert not result.failed
    return store


@pytest.fixture
def store(tmp_path: Path) -> Store:
    return Store(tmp_path / "store", gc_grace_s=0)


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny random-weight Qwen2 + ChatML tokenizer, built offline once per session (no hub)."""
    os.environ["HF_HUB_OFFLINE"] = "1"
    os.environ["HF_DATASETS_OFFLINE"] = "1"
    from pipeline.train.tiny import build_tiny_model

    return build_tiny_model(tmp_path_factory.mktemp("tiny-model"))


@pytest.fixture(scope="session")
def train_datasets(small_store: Store, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Every dataset of `personas build` over the small corpus, for the training tests (read-only)."""
    from pipeline.config import DatasetsConfig
    from pipeline.datasets.build import build

    out = tmp_path_factory.mktemp("train-datasets")
    build(small_store, DatasetsConfig(out=out, workers=1), show_progress=False)
    return out


def vllm_python() -> Path | None:
    """The vLLM env's interpreter: $PERSONAS_VLLM_PYTHON, else <repo>/.venv-vllm/bin/python."""
    env = os.environ.get("PERSONAS_VLLM_PYTHON")
    path = Path(env) if env else Path(__file__).resolve().parents[1] / ".venv-vllm" / "bin" / "python"
    return path if path.is_file() else None


@pytest.fixture(scope="session")
def vllm_server(tiny_model: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[VllmServer]:
    """ONE real vLLM server (CPU) for the whole session: the tiny model plus one LoRA adapter `ada`."""
    python = vllm_python()
    if python is None:
        pytest.skip("no vLLM env: set PERSONAS_VLLM_PYTHON or create .venv-vllm (see README)")
    from pipeline.train.tiny import build_tiny_adapter

    root = tmp_path_factory.mktemp("vllm")
    adapter = build_tiny_adapter(root / "ada", tiny_model)
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    config = ServeConfig(
        python=str(python),
        model=str(tiny_model),
        served_model_name="tiny-base",
        adapters={"ada": str(adapter)},
        port=port,
        dtype="float32",
        max_model_len=4096,
        enforce_eager=True,
        cpu_kvcache_space_gib=1,
        max_lora_rank=8,
        max_loras=2,
        log_file=root / "vllm.log",
        startup_timeout_s=600,
    )
    with VllmServer(config) as server:
        yield server
