"""Every Naptha config JSON, validated with naptha-sdk's own models; packaging and the publish dry run."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
from typer.testing import CliRunner

from pipeline.cli import app
from pipeline.naptha.package import module_sources, package_module, validate_module, validate_personas
from pipeline.persona import Persona
from tests.support.naptha_modules import ROOT

schemas = pytest.importorskip("naptha_sdk.schemas")
from naptha_sdk.configs import load_llm_configs  # noqa: E402

DEPLOYMENT_MODELS = {"agent": schemas.AgentDeployment, "environment": schemas.EnvironmentDeployment}


def test_root_deployment_json_is_valid_for_naptha_sdk() -> None:
    suite = json.loads((ROOT / "deployment.json").read_text())
    llm = [schemas.LLMConfig.model_validate(c) for c in suite["llm_configs"]]
    assert {c.client for c in llm} == {schemas.LLMClientType.VLLM}
    assert all(c.api_base and c.api_base.endswith("/v1") for c in llm)
    names = {c.config_name for c in llm}
    modules = {m.name: m for m in module_sources()}
    personas = {p.stem for p in (ROOT / "personas").glob("*.json")}
    for key, model in (
        ("agent_deployments", schemas.AgentDeployment),
        ("environment_deployments", schemas.EnvironmentDeployment),
    ):
        assert suite[key]
        for entry in suite[key]:
            deployment = model.model_validate(entry)
            assert deployment.config.llm_config.config_name in names
            module = modules[entry["module"]["name"]]
            assert entry["module"]["module_type"] == module.module_type
            persona = (entry["config"].get("persona_module") or {}).get("name")
            assert persona is None or persona in personas


@pytest.mark.parametrize("source", module_sources(), ids=lambda m: m.name)
def test_module_configs_are_valid_for_naptha_sdk(source) -> None:  # type: ignore[no-untyped-def]
    package = source.source / source.name
    for entry in json.loads((package / "configs" / "deployment.json").read_text()):
        DEPLOYMENT_MODELS[source.module_type].model_validate(entry)
    assert load_llm_configs(str(package / "configs" / "llm_configs.json"))
    assert validate_module(source.source, source.module_type) == []


def test_persona_files_are_character_files() -> None:
    assert validate_personas(ROOT / "personas") == []
    assert Persona.load(ROOT / "personas" / "example_persona.json").postExamples


def test_validation_catches_what_the_hub_or_node_would_reject(tmp_path: Path) -> None:
    agent = module_sources()[0]
    item = package_module(
        agent, tmp_path, requirement="naptha-personas==0.1.0", version="v0.2", module_url=None
    )
    assert subprocess.run(
        ["git", "-C", str(item.path), "tag"], capture_output=True, text=True
    ).stdout.split() == ["v0.2"]
    assert validate_module(item.path, "agent") == []
    config = item.path / agent.name / "configs" / "deployment.json"
    entries = json.loads(config.read_text())
    entries[0]["module"]["description"] = "a=b"
    entries[0]["module"].pop("execution_type")
    entries[0]["config"]["llm_config"]["config_name"] = "nope"
    entries[0]["module"]["module_version"] = "v0.3"
    config.write_text(json.dumps(entries))
    (item.path / agent.name / "schemas.py").write_text("class Other: pass\n")
    problems = "\n".join(validate_module(item.path, "agent"))
    assert "lacks execution_type" in problems
    assert "module.description contains '='" in problems
    assert "llm_config 'nope' is not in configs/llm_configs.json" in problems
    assert "git tag v0.3 (module_version) is missing" in problems
    assert "defines no InputSchema" in problems
    entries[0]["node"] = 5
    config.write_text(json.dumps(entries))
    assert any(p.startswith("deployment.json[0]: ") for p in validate_module(item.path, "agent"))


def test_publish_dry_run_and_missing_credentials(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "personas").mkdir()
    (tmp_path / "personas" / "example_persona.json").write_bytes(
        (ROOT / "personas" / "example_persona.json").read_bytes()
    )
    for key in ("NODE_URL", "HUB_URL", "HUB_USERNAME", "HUB_PASSWORD", "PRIVATE_KEY"):
        monkeypatch.delenv(key, raising=False)
    runner = CliRunner()
    result = runner.invoke(app, ["naptha", "publish", "--dry-run", "--repo-base", "https://github.com/acme"])
    assert result.exit_code == 0, result.output
    assert "naptha publish -r https://github.com/acme/tpot_persona_agent" in result.output
    assert "naptha publish -r https://github.com/acme/persona_chat_environment" in result.output
    assert "naptha personas example_persona -c" in result.output
    assert "dry run: 3 modules valid; to publish, set NODE_URL" in result.output
    packaged = json.loads(
        (tmp_path / "out/naptha/tpot_persona_agent/tpot_persona_agent/configs/deployment.json").read_text()
    )
    assert packaged[0]["module"]["module_url"] == "https://github.com/acme/tpot_persona_agent"
    result = runner.invoke(app, ["naptha", "publish", "--repo-base", "https://github.com/acme"])
    assert result.exit_code == 2
    assert "publishing needs a Naptha hub account: set NODE_URL" in result.output
    result = runner.invoke(app, ["naptha", "publish"])
    assert result.exit_code == 2 and "--repo-base is required" in result.output
