"""`personas publish` against a Hub stand-in on loopback that records the API calls."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
from huggingface_hub import constants
from typer.testing import CliRunner

from pipeline.cli import app
from pipeline.config import DatasetsConfig
from pipeline.datasets.build import build
from pipeline.store import Store
from tests.support.hub import HubStandIn, serve_hub

runner = CliRunner()


@pytest.fixture(scope="module")
def built(small_store: Store, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("built")
    build(small_store, DatasetsConfig(out=out), only=["prefs", "chatml-two-party"], show_progress=False)
    return out


@pytest.fixture
def no_xet(monkeypatch: pytest.MonkeyPatch) -> None:
    # The public Hub stores large files with Xet, whose protocol a stand-in cannot speak; with Xet off,
    # huggingface_hub uses the Git LFS batch API, which the stand-in implements.
    monkeypatch.setenv("HF_HUB_DISABLE_XET", "1")
    monkeypatch.setattr(constants, "HF_HUB_DISABLE_XET", True)


def test_dry_run_needs_no_token_and_touches_no_network(built: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("HF_TOKEN", raising=False)
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")  # nothing listens there
    result = runner.invoke(
        app, ["publish", "--repo", "org/tpot", "-d", "prefs", "--datasets", str(built), "--dry-run"]
    )
    assert result.exit_code == 0, result.output
    assert (
        "org/tpot/README.md" in result.output
        and "org/tpot/data/train-00000-of-00001.parquet" in result.output
    )


def test_upload_creates_private_repos_with_identical_files(
    built: Path, monkeypatch: pytest.MonkeyPatch, no_xet: None, caplog: pytest.LogCaptureFixture
) -> None:
    hub = HubStandIn(token="hf_secret_123")
    caplog.set_level(logging.DEBUG)
    with serve_hub(hub) as url:
        monkeypatch.setenv("HF_ENDPOINT", url)
        monkeypatch.setenv("HF_TOKEN", hub.token)
        result = runner.invoke(
            app,
            [
                "publish",
                "--repo",
                "org/tpot",
                "-d",
                "prefs",
                "-d",
                "chatml-two-party",
                "--private",
                "--datasets",
                str(built),
            ],
        )
    assert result.exit_code == 0, result.output
    assert set(hub.repos) == {"org/tpot-prefs", "org/tpot-chatml-two-party"}
    assert all(repo["private"] and repo["type"] == "dataset" for repo in hub.repos.values())
    for name in ("prefs", "chatml-two-party"):
        local = {
            str(p.relative_to(built / name)): p.read_bytes() for p in (built / name).rglob("*") if p.is_file()
        }
        assert hub.repos[f"org/tpot-{name}"]["files"] == local
    calls = [path for _, path in hub.calls]
    assert "/api/validate-yaml" in calls  # the card's metadata was checked by the (stand-in) Hub
    assert any(path.endswith("/info/lfs/objects/batch") for path in calls)  # Parquet went through Git LFS
    assert set(hub.auth_headers) == {f"Bearer {hub.token}"}
    assert hub.token not in result.output and hub.token not in caplog.text
    assert result.output.count("committed: ") == 2


def test_refusals_are_clear(built: Path, monkeypatch: pytest.MonkeyPatch, no_xet: None) -> None:
    monkeypatch.delenv("HF_TOKEN", raising=False)
    monkeypatch.delenv("HUGGING_FACE_HUB_TOKEN", raising=False)
    cases = [
        (["--repo", "org/tpot", "-d", "prefs"], "no Hub token"),
        (["--repo", "not-a-repo", "-d", "prefs"], "org/name"),
        (["--repo", "org/tpot", "-d", "chatml-persona"], "no dataset card"),
        (["--repo", "org/tpot"], "name the datasets"),
    ]
    for args, message in cases:
        result = runner.invoke(app, ["publish", *args, "--datasets", str(built)])
        assert result.exit_code == 2 and message in result.output, (args, result.output)
    hub = HubStandIn(token="right")
    with serve_hub(hub) as url:
        monkeypatch.setenv("HF_ENDPOINT", url)
        monkeypatch.setenv("HF_TOKEN", "wrong")
        result = runner.invoke(
            app, ["publish", "--repo", "org/tpot", "-d", "prefs", "--datasets", str(built)]
        )
    assert result.exit_code == 2 and "refused" in result.output and "wrong" not in result.output
