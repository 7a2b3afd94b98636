from __future__ import annotations

import os
from pathlib import Path

import pytest

from pipeline.ingest import ingest_files
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
