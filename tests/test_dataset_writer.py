"""The shared dataset writer and card: folders that datasets.load_dataset and huggingface_hub read."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pytest
from datasets import load_dataset
from huggingface_hub import DatasetCard

from pipeline.datasets.card import CardSpec, size_category
from pipeline.datasets.writer import DatasetWriter, write_dataset

SCHEMA = pa.schema(
    [
        pa.field(
            "messages",
            pa.list_(pa.struct([("role", pa.string()), ("content", pa.string()), ("train", pa.bool_())])),
        ),
        pa.field("conversation_id", pa.int64()),
    ]
)


def rows(n: int, start: int = 0) -> list[dict[str, object]]:
    return [
        {
            "messages": [
                {"role": "user", "content": f"hi {i}", "train": False},
                {"role": "assistant", "content": f"hello {i}", "train": True},
            ],
            "conversation_id": i,
        }
        for i in range(start, start + n)
    ]


def card(**kwargs: object) -> CardSpec:
    values: dict[str, object] = {
        "pretty_name": "Test chats",
        "description": "Two-turn chats for testing.",
        "tags": ["persona"],
        "fields": {"messages": "the conversation", "conversation_id": "tree root id"},
        "statistics": {"examples": 7, "mean turns": 2.0},
    }
    values.update(kwargs)
    return CardSpec(**values)  # type: ignore[arg-type]


def test_folder_loads_with_splits_and_card_parses(tmp_path: Path) -> None:
    out = tmp_path / "chats"
    with DatasetWriter(out, SCHEMA, shard_rows=3) as writer:
        writer.add("train", rows(5))
        writer.add("train", pa.Table.from_pylist(rows(2, 5), schema=SCHEMA))
        writer.add("test", rows(1, 100))
        writer.add("validation", [])
        infos = writer.close(card())
    assert {k: v.num_examples for k, v in infos.items()} == {
        "train": 7,
        "test": 1,
    }  # empty splits are left out
    assert sorted(p.name for p in (out / "data").iterdir())[:3] == [
        "test-00000-of-00001.parquet",
        "train-00000-of-00003.parquet",
        "train-00001-of-00003.parquet",
    ]
    ds = load_dataset(str(out))
    assert {name: len(split) for name, split in ds.items()} == {"train": 7, "test": 1}
    assert ds["train"][6]["messages"][1] == {"role": "assistant", "content": "hello 6", "train": True}
    parsed = DatasetCard.load(out / "README.md")
    assert parsed.data.license == "other" and parsed.data.size_categories == ["n<1K"]
    assert parsed.data.pretty_name == "Test chats"
    assert parsed.data.dataset_info["splits"][0] == {
        "name": "train",
        "num_bytes": infos["train"].num_bytes,
        "num_examples": 7,
    }
    assert "| mean turns | 2 |" in parsed.text and "## Consent and use" in parsed.text


def test_rewrite_is_atomic_and_failed_write_keeps_the_old(tmp_path: Path) -> None:
    out = tmp_path / "chats"
    write_dataset(out, SCHEMA, {"train": rows(3)}, card())
    with pytest.raises(RuntimeError), DatasetWriter(out, SCHEMA) as writer:
        writer.add("train", rows(50))
        raise RuntimeError("crash mid-build")
    assert len(load_dataset(str(out))["train"]) == 3
    assert [p.name for p in tmp_path.iterdir()] == ["chats"]  # no temp folder left behind
    write_dataset(out, SCHEMA, {"train": rows(4)}, card())
    assert len(load_dataset(str(out))["train"]) == 4


def test_size_categories() -> None:
    assert [size_category(n) for n in (0, 999, 1000, 250_000, 15_000_000)] == [
        "n<1K",
        "n<1K",
        "1K<n<10K",
        "100K<n<1M",
        "10M<n<100M",
    ]
