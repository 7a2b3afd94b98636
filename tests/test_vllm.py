"""Against a real vLLM server (CPU build, tiny offline model, one LoRA adapter), shared by the session.

Marked `vllm`: they need the vLLM env (PERSONAS_VLLM_PYTHON or .venv-vllm) and skip cleanly
without it; `pytest -m "not vllm"` leaves them out. Kept few: the server takes ~35-90 s to start.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from pipeline.cli import app
from pipeline.inference import ChatClient, InferenceConfig, InferenceError
from pipeline.persona import Persona
from pipeline.serving import VllmServer
from tests.support.naptha_modules import (
    AGENT_DIR,
    ENVIRONMENT_DIR,
    ROOT,
    call_like_a_node,
    import_module_run,
    import_schemas,
    node_deployment,
)

pytestmark = [pytest.mark.vllm, pytest.mark.slow]
MESSAGES = [{"role": "user", "content": "is scaling enough?"}]


def test_completions_streaming_usage_and_adapters(vllm_server: VllmServer, tmp_path: Path) -> None:
    with ChatClient(
        InferenceConfig(base_url=vllm_server.base_url, model="tiny-base", timeout_s=60)
    ) as client:
        assert client.healthy()
        base = client.chat_completion(MESSAGES, max_tokens=8, temperature=0, seed=0)
        assert (
            base.model == "tiny-base" and base.usage.completion_tokens == 8 and base.usage.prompt_tokens > 5
        )
        streamed = "".join(client.stream(MESSAGES, max_tokens=8, temperature=0, seed=0))
        assert streamed == base.text
        tuned = client.chat_completion(MESSAGES, model="ada", max_tokens=8, temperature=0, seed=0)
        assert tuned.model == "ada" and tuned.usage.completion_tokens == 8
        assert tuned.text != base.text  # the adapter is applied
        models = {m["id"]: m.get("parent") for m in client.list_models()}
        assert models["tiny-base"] is None and models["ada"] == "tiny-base"

        # Runtime swap, as the bot's RL loop does it: a new adapter under a new name, then unloaded.
        adapter = vllm_server.config.adapters["ada"]
        client.load_adapter("ada-step-2", adapter)
        again = client.chat_completion(MESSAGES, model="ada-step-2", max_tokens=8, temperature=0, seed=0)
        assert again.text == tuned.text  # same weights, same greedy output
        client.unload_adapter("ada-step-2")
        with pytest.raises(InferenceError) as err:
            client.chat(MESSAGES, model="ada-step-2", max_tokens=4)
        assert err.value.status == 404


def test_modules_like_a_node_against_vllm(
    vllm_server: VllmServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    schemas = pytest.importorskip("naptha_sdk.schemas")
    run = import_module_run(AGENT_DIR).run
    deployment = node_deployment("agent", AGENT_DIR)
    deployment["config"]["llm_config"]["api_base"] = vllm_server.base_url
    deployment["config"]["llm_config"]["model"] = "ada"
    deployment["config"]["system_prompt"]["persona"] = Persona.load(
        ROOT / "personas" / "example_persona.json"
    ).model_dump()
    inputs = {"question": "is scaling enough?", "max_tokens": 12}
    result = call_like_a_node(
        run, schemas.AgentRun, import_schemas(AGENT_DIR).InputSchema, deployment, inputs
    )
    assert result["status"] == "ok", result
    assert result["model"] == "ada" and result["usage"]["completion_tokens"] == 12
    assert result["usage"]["prompt_tokens"] > 100  # the persona's system prompt reached the model
    json.dumps(result)

    monkeypatch.chdir(tmp_path)  # the environment stores its transcript under its fs storage path
    env_deployment = node_deployment("environment", ENVIRONMENT_DIR)
    env_deployment["config"]["llm_config"]["api_base"] = vllm_server.base_url
    people = [
        Persona.load(ROOT / "personas" / "example_persona.json").model_copy(update={"name": n})
        for n in ("Ada", "Bo")
    ]
    inputs = {
        "func_name": "run_chat",
        "func_input_data": {
            "topic": "is scaling enough?", "personas": [p.model_dump() for p in people], "rounds": 2,
            "max_tokens": 6, "models": {"Ada": "ada", "Bo": "tiny-base"},
        },
    }  # fmt: skip
    env_schemas = import_schemas(ENVIRONMENT_DIR)
    chat = call_like_a_node(
        import_module_run(ENVIRONMENT_DIR).run,
        schemas.EnvironmentRun,
        env_schemas.InputSchema,
        env_deployment,
        inputs,
    )
    assert chat["status"] == "ok", chat
    assert [(t["speaker"], t["model"]) for t in chat["turns"]][:2] == [("Ada", "ada"), ("Bo", "tiny-base")]
    assert all(t["completion_tokens"] == 6 for t in chat["turns"])
    assert Path(chat["transcript_path"]).is_file()


def test_chat_demo_end_to_end_with_the_tiny_model(vllm_server: VllmServer, tmp_path: Path) -> None:
    personas = tmp_path / "personas"
    example = Persona.load(ROOT / "personas" / "example_persona.json")
    for name in ("Ada", "Bo", "Cy"):
        example.model_copy(update={"name": name}).save(personas / f"{name.lower()}.json")
    out = tmp_path / "chat.jsonl"
    args = [
        "chat", "--personas", "ada,bo,cy", "--topic", "is scaling enough?", "--rounds", "2",
        "--base-url", vllm_server.base_url, "--model", "ada", "--max-tokens", "10", "--temperature", "1.0",
        "--persona-dir", str(personas), "--out", str(out),
    ]  # fmt: skip
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    turns = lines[1:]
    assert lines[0]["stop_reason"] in ("2 rounds",) or "repeated itself" in lines[0]["stop_reason"]
    assert [t["speaker"] for t in turns] == ["Ada", "Bo", "Cy", "Ada", "Bo", "Cy"][: len(turns)]
    assert len(turns) >= 4 and all(t["model"] == "ada" and t["completion_tokens"] > 0 for t in turns)
    assert "tokens/s" in result.output


def test_async_concurrency_against_vllm(vllm_server: VllmServer) -> None:
    async def many() -> list[int]:
        async with ChatClient(InferenceConfig(base_url=vllm_server.base_url, model="tiny-base")) as client:
            results = await asyncio.gather(
                *(client.achat_completion(MESSAGES, max_tokens=6, temperature=0, seed=i) for i in range(6))
            )
        return [r.usage.completion_tokens for r in results]

    assert asyncio.run(many()) == [6] * 6


def test_adapter_replaced_in_place_under_a_stable_name(vllm_server: VllmServer, tmp_path: Path) -> None:
    """The bot's RL loop serves each round's adapter under one stable name (load_inplace), and rolls
    back the same way: the name must answer with the new weights, then with the old ones again."""
    from pipeline.train.tiny import build_tiny_adapter

    base = Path(vllm_server.config.model)
    first = vllm_server.config.adapters["ada"]
    second = str(build_tiny_adapter(tmp_path / "round-2", base, seed=7))
    with ChatClient(InferenceConfig(base_url=vllm_server.base_url, timeout_s=60)) as client:

        def reply(model: str) -> str:
            return client.chat(MESSAGES, model=model, max_tokens=8, temperature=0, seed=0)

        client.load_adapter("stable", second)
        client.load_adapter("round-2", second)
        new = reply("round-2")
        assert reply("stable") == new != reply("ada")
        client.load_adapter("stable", first, replace=True)  # rollback to the first round's weights
        assert reply("stable") == reply("ada")
        assert [m["id"] for m in client.list_models()].count("stable") == 1
        client.unload_adapter("stable")
        client.unload_adapter("round-2")
