"""`personas publish`: push dataset folders to the Hugging Face Hub (huggingface_hub).

The token comes from the environment (HF_TOKEN, or HUGGING_FACE_HUB_TOKEN) and is never
printed or logged; the endpoint from HF_ENDPOINT (default the public Hub). A dry run checks
each folder locally (its card parses, its data files exist and match the card's splits) and
lists what would be uploaded, without a token or network.
"""

from __future__ import annotations

import os
from pathlib import Path

from pydantic import BaseModel

from pipeline.datasets.build import DATASETS


class PublishError(ValueError):
    pass


class PublishItem(BaseModel):
    dataset: str
    folder: Path
    repo_id: str
    files: list[tuple[str, int]]  # path in repo, bytes
    examples: dict[str, int]


def hub_token() -> str | None:
    return os.environ.get("HF_TOKEN") or os.environ.get("HUGGING_FACE_HUB_TOKEN") or None


def hub_endpoint() -> str:
    return os.environ.get("HF_ENDPOINT", "https://huggingface.co").rstrip("/")


def plan(datasets_dir: Path, names: list[str], repo: str) -> list[PublishItem]:
    """What would be pushed: one repo per dataset (`repo`, or `repo-<dataset>` when several)."""
    from huggingface_hub import DatasetCard

    if "/" not in repo or repo.count("/") != 1 or not all(repo.split("/")):
        raise PublishError(f"--repo must look like org/name, not {repo!r}")
    if not names:
        raise PublishError("name the datasets to publish (--dataset), e.g. chatml-multi-party")
    items = []
    for name in names:
        if name not in DATASETS:
            raise PublishError(f"unknown dataset {name!r}; built datasets are {', '.join(DATASETS)}")
        folder = datasets_dir / name
        card_path = folder / "README.md"
        if not card_path.exists():
            raise PublishError(f"{folder} has no dataset card: run `personas build` first")
        card = DatasetCard.load(card_path)
        info = card.data.dataset_info or {}
        examples = {s["name"]: s["num_examples"] for s in info.get("splits", [])}
        files = sorted(
            (str(p.relative_to(folder)), p.stat().st_size) for p in folder.rglob("*") if p.is_file()
        )
        data_splits = {Path(f).name.split("-", 1)[0] for f, _ in files if f.startswith("data/")}
        if data_splits != set(examples):
            raise PublishError(
                f"{folder}: data files {sorted(data_splits)} do not match the card's splits {sorted(examples)}"
            )
        if not examples:
            raise PublishError(f"{folder} holds no examples; nothing to publish")
        repo_id = repo if len(names) == 1 else f"{repo}-{name}"
        items.append(
            PublishItem(dataset=name, folder=folder, repo_id=repo_id, files=files, examples=examples)
        )
    return items


def publish(
    items: list[PublishItem], *, private: bool, token: str | None = None, endpoint: str | None = None
) -> list[str]:
    """Create each dataset repo (if needed) and upload its folder in one commit; returns the commit URLs."""
    from huggingface_hub import HfApi
    from huggingface_hub.errors import HfHubHTTPError

    token = token or hub_token()
    if not token:
        raise PublishError(
            "no Hub token: set HF_TOKEN (a write token from https://huggingface.co/settings/tokens)"
        )
    api = HfApi(endpoint=endpoint or hub_endpoint(), token=token)
    urls = []
    for item in items:
        try:
            api.create_repo(item.repo_id, repo_type="dataset", private=private, exist_ok=True)
            commit = api.upload_folder(
                repo_id=item.repo_id,
                repo_type="dataset",
                folder_path=item.folder,
                commit_message=f"Upload {item.dataset} ({sum(item.examples.values()):,} examples) with naptha-personas",
            )
        except (HfHubHTTPError, ValueError) as exc:  # ValueError: the Hub rejected the card's metadata
            first_line = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            raise PublishError(f"{item.repo_id}: the Hub refused the upload: {first_line}") from exc
        urls.append(str(commit.commit_url))
    return urls
