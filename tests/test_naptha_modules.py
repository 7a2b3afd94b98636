"""The TPOT persona agent and the persona chat environment, called exactly as a Naptha node
calls them, against a loopback OpenAI-compatible server; and the chat environment's policies."""

from __future__ import annotations

import asyncio
import json
import re
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from pipeline.chat import ChatEnvironment, PersonaAgent, Turn
from pipeline.inference import ChatClient, InferenceConfig
from pipeline.persona import Persona
from tests.support.naptha_modules import (
    AGENT_DIR,
    ENVIRONMENT_DIR,
    ROOT,
    call_like_a_node,
    import_module_run,
    import_schemas,
    node_deployment,
)
from tests.support.openai_server import OpenAIStandIn, serve_openai

pytestmark = pytest.mark.network_loopback
naptha_schemas = pytest.importorskip("naptha_sdk.schemas")
EXAMPLE = Persona.load(ROOT / "personas" / "example_persona.json")


def echo(body: dict[str, Any]) -> str:
    """The stand-in answers '<who am i> heard: <last message>' so tests can check what was sent."""
    system = body["messages"][0]["content"]
    name = re.match(r"You are (.+?)\.", system)
    return f"{name.group(1) if name else '?'} heard: {body['messages'][-1]['content'][:60]}"


@pytest.fixture
def server() -> Iterator[OpenAIStandIn]:
    with serve_openai(OpenAIStandIn(reply=echo, models=("tiny-base", "tpot"))) as s:
        yield s


@pytest.fixture(scope="module")
def agent_deployment() -> dict[str, Any]:
    return node_deployment("agent", AGENT_DIR)


def with_server(deployment: dict[str, Any], url: str) -> dict[str, Any]:
    deployment = json.loads(json.dumps(deployment))
    deployment["config"]["llm_config"]["api_base"] = url
    return deployment


def test_agent_answers_as_the_node_injected_persona(
    server: OpenAIStandIn, agent_deployment: dict[str, Any]
) -> None:
    run = import_module_run(AGENT_DIR).run
    schemas = import_schemas(AGENT_DIR)
    deployment = with_server(agent_deployment, server.base_url)
    assert deployment["config"]["llm_config"]["model"] == "tpot"  # resolved from llm_configs.json by the SDK
    deployment["config"]["system_prompt"]["persona"] = EXAMPLE.model_dump()  # what the node injects
    result = call_like_a_node(
        run, naptha_schemas.AgentRun, schemas.InputSchema, deployment, {"question": "is scaling enough?"}
    )
    json.dumps(result)  # the node stores json.dumps(result)
    assert result["status"] == "ok", result
    assert result["answer"] == "Rabe heard: is scaling enough?"
    assert result["persona"] == "Rabe" and result["model"] == "tpot"
    assert result["usage"]["completion_tokens"] == 5
    body = server.requests[-1]
    assert body["model"] == "tpot" and body["max_tokens"] == 256 and body["temperature"] == 0.8
    assert EXAMPLE.postExamples[0] in body["messages"][0]["content"]


def test_agent_persona_file_history_and_tool_input_data(
    server: OpenAIStandIn, agent_deployment: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PERSONAS_PERSONA_DIR", str(ROOT / "personas"))
    run = import_module_run(AGENT_DIR).run
    schemas = import_schemas(AGENT_DIR)
    deployment = with_server(agent_deployment, server.base_url)  # persona_module: example_persona
    inputs = {
        "tool_name": "chat",
        "tool_input_data": "and you?",
        "history": [{"speaker": "Ada", "text": "I like proofs"}, {"speaker": "Rabe", "text": "me too"}],
        "max_tokens": 12,
    }
    result = call_like_a_node(run, naptha_schemas.AgentRun, schemas.InputSchema, deployment, inputs)
    assert result["status"] == "ok" and result["answer"] == "Rabe heard: and you?"
    messages = server.requests[-1]["messages"]
    assert [m["role"] for m in messages] == ["system", "user", "assistant", "user"]
    assert messages[1]["content"] == "Ada: I like proofs" and messages[2]["content"] == "me too"
    assert server.requests[-1]["max_tokens"] == 12


def test_agent_bad_input_gives_error_results(
    server: OpenAIStandIn, agent_deployment: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PERSONAS_PERSONA_DIR", str(ROOT / "personas"))
    run = import_module_run(AGENT_DIR).run
    AgentRun = naptha_schemas.AgentRun
    ok = with_server(agent_deployment, server.base_url)

    def call(deployment: dict[str, Any], inputs: Any) -> dict[str, Any]:
        module_run = AgentRun(
            consumer_id="user:x", signature="sig", inputs={}, deployment=deployment
        ).model_dump()
        module_run["inputs"] = inputs
        result: dict[str, Any] = asyncio.run(run(module_run=module_run))
        assert result["status"] == "error" and set(result) == {"status", "error"}
        return result

    assert call(ok, {"question": "   "})["error"] == "empty question"
    assert call(ok, {})["error"] == "empty question"
    assert "max_tokens" in call(ok, {"question": "hi", "max_tokens": -1})["error"]
    assert "no persona file" in call(ok, {"question": "hi", "persona": "nobody"})["error"]
    assert "bad persona name" in call(ok, {"question": "hi", "persona": "../etc/passwd"})["error"]
    no_persona = json.loads(json.dumps(ok))
    no_persona["config"]["persona_module"] = None
    assert "no persona" in call(no_persona, {"question": "hi"})["error"]
    no_llm = json.loads(json.dumps(ok))
    no_llm["config"]["llm_config"] = None
    assert "no llm_config" in call(no_llm, {"question": "hi"})["error"]
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    monkeypatch.setenv("PERSONAS_INFERENCE__MAX_RETRIES", "1")
    monkeypatch.setenv("PERSONAS_INFERENCE__BACKOFF_S", "0.01")
    down = with_server(agent_deployment, f"http://127.0.0.1:{port}/v1")
    assert "ConnectError" in call(down, {"question": "hi"})["error"]
    bad_run: dict[str, Any] = asyncio.run(run(module_run={"inputs": {"question": "hi"}}))
    assert bad_run["status"] == "error" and "consumer_id" in bad_run["error"]


def persona(name: str, topics: list[str]) -> Persona:
    return EXAMPLE.model_copy(update={"name": name, "topics": topics})


def test_environment_runs_a_chat_like_a_node(
    server: OpenAIStandIn, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)  # the fs storage path is relative, as on a node
    run = import_module_run(ENVIRONMENT_DIR).run
    schemas = import_schemas(ENVIRONMENT_DIR)
    deployment = with_server(node_deployment("environment", ENVIRONMENT_DIR), server.base_url)
    people = [persona(n, []).model_dump() for n in ("Ada", "Bo", "Cy")]
    inputs = {
        "func_name": "run_chat",
        "func_input_data": {"topic": "is scaling enough?", "personas": people, "rounds": 2},
    }
    result = call_like_a_node(run, naptha_schemas.EnvironmentRun, schemas.InputSchema, deployment, inputs)
    assert result["status"] == "ok", result
    assert result["stop_reason"] == "2 rounds"
    assert [(t["speaker"], t["round"]) for t in result["turns"]] == [
        ("Ada", 1), ("Bo", 1), ("Cy", 1), ("Ada", 2), ("Bo", 2), ("Cy", 2)
    ]  # fmt: skip
    assert result["turns"][0]["text"] == "Ada heard: Start the conversation about: is scaling enough?"
    assert result["turns"][1]["text"].startswith("Bo heard: Ada: Ada heard")
    stored = Path(result["transcript_path"]).read_text().splitlines()
    assert json.loads(stored[0])["topic"] == "is scaling enough?" and len(stored) == 7
    assert json.loads(stored[-1])["speaker"] == "Cy"
    bad = dict(inputs, func_input_data={"topic": "x", "personas": [people[0], people[0]]})
    out = asyncio.run(
        run(
            module_run=naptha_schemas.EnvironmentRun(
                consumer_id="u", signature="s", inputs=bad, deployment=deployment
            ).model_dump()
        )
    )
    assert out == {"status": "error", "error": "persona names must differ: ['Ada', 'Ada']"}


def test_relevance_policy_picks_the_speaker_whose_topics_were_mentioned(server: OpenAIStandIn) -> None:
    lines = {"Ada": "let us talk about cooking", "Bo": "math is the thing", "Cy": "crypto forever"}
    server.reply = lambda body: (
        lines[re.match(r"You are (\w+)", body["messages"][0]["content"]).group(1)]  # type: ignore[union-attr]
        + f" (message {len(body['messages'])})"
    )
    client = ChatClient(InferenceConfig(base_url=server.base_url, model="tiny-base"))
    agents = [
        PersonaAgent(persona("Ada", ["crypto"]), client),
        PersonaAgent(persona("Bo", ["math"]), client),
        PersonaAgent(persona("Cy", ["cooking"]), client),
    ]
    env = ChatEnvironment(agents, "anything", rounds=2, policy="relevance")
    transcript = asyncio.run(env.run())
    # Ada opens and mentions cooking -> Cy; Cy mentions crypto, but Ada has spoken this round -> Bo.
    # Round 2: Bo just said math, nobody else has math -> order (Ada); Ada says cooking -> Cy; then Bo.
    assert [t.speaker for t in transcript.turns] == ["Ada", "Cy", "Bo", "Ada", "Cy", "Bo"]
    rr = asyncio.run(ChatEnvironment(agents, "anything", rounds=1).run())
    assert [t.speaker for t in rr.turns] == ["Ada", "Bo", "Cy"]


def test_stop_conditions(server: OpenAIStandIn) -> None:
    client = ChatClient(InferenceConfig(base_url=server.base_url, model="tiny-base"))
    agents = [PersonaAgent(persona(n, []), client) for n in ("Ada", "Bo")]
    server.reply = lambda body: "same words again"
    repeated = asyncio.run(ChatEnvironment(agents, "t", rounds=5).run())
    assert repeated.stop_reason == "Ada repeated itself" and len(repeated.turns) == 3
    patient = asyncio.run(ChatEnvironment(agents, "t", rounds=2, stop_on_repeat=False).run())
    assert patient.stop_reason == "2 rounds" and len(patient.turns) == 4
    server.reply = lambda body: (
        "ok then GOODBYE all" if len(body["messages"]) > 3 else f"turn {len(body['messages'])}"
    )
    stopped = asyncio.run(ChatEnvironment(agents, "t", rounds=5, stop_phrases=["goodbye"]).run())
    assert stopped.stop_reason == "stop phrase" and stopped.turns[-1].text == "ok then GOODBYE all"
    server.reply = lambda body: "one two three four five"
    budget = asyncio.run(ChatEnvironment(agents, "t", rounds=5, max_completion_tokens=12).run())
    assert budget.stop_reason == "token budget spent" and len(budget.turns) == 3
    server.fail(times=10, status=500)
    failing = ChatClient(InferenceConfig(base_url=server.base_url, model="tiny-base", max_retries=0))
    broken = asyncio.run(
        ChatEnvironment([PersonaAgent(persona(n, []), failing) for n in ("Ada", "Bo")], "t").run()
    )
    assert (
        broken.stop_reason.startswith("model error:")
        and "HTTP 500" in broken.stop_reason
        and not broken.turns
    )
    with pytest.raises(ValueError, match="at least two"):
        ChatEnvironment(agents[:1], "t")
    with pytest.raises(ValueError, match="unknown turn-taking policy"):
        ChatEnvironment(agents, "t", policy="loudest")  # type: ignore[arg-type]


def test_agent_messages_put_own_turns_as_assistant() -> None:
    agent = PersonaAgent(persona("Ada", []), ChatClient(InferenceConfig(model="m")))
    turns = [Turn("Bo", "hi", 1), Turn("Ada", "hello", 1)]
    messages = agent.messages(turns, topic="t")
    assert [m["role"] for m in messages] == ["system", "user", "assistant", "user"]
    assert "The conversation is about: t." in messages[0]["content"]
