"""What the Naptha modules' run() functions share: reading a module run the way a node hands it
over, finding the persona and the model server, and turning every failure into a clear
error result instead of an exception (a node stores whatever run() returns).

A node calls `await run(module_run=AgentRun(...).model_dump())` (naptha.md §4): the
deployment's config carries `llm_config` (resolved from configs/llm_configs.json by the
node, or only its `config_name` when called locally) and the persona either injected by
the node into `system_prompt["persona"]` or named by `persona_module` (then read from a
persona file in $PERSONAS_PERSONA_DIR, else ./personas).
"""

from __future__ import annotations

import json
import logging
import os
import uuid
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError

from pipeline.chat import ChatEnvironment, PersonaAgent, Turn
from pipeline.config import ConfigError, load_settings
from pipeline.inference import ChatClient, InferenceConfig, InferenceError
from pipeline.persona import Persona

log = logging.getLogger("pipeline.naptha")


class ModuleInputError(ValueError):
    """Bad input or configuration of a module run: reported in the result, never raised to the node."""


def error_result(message: str) -> dict[str, Any]:
    return {"status": "error", "error": message}


def validation_message(exc: ValidationError) -> str:
    parts = []
    for err in exc.errors()[:5]:
        where = ".".join(str(p) for p in err["loc"]) or "input"
        parts.append(f"{where}: {err['msg']}")
    return "; ".join(parts)


def persona_dir() -> Path:
    return Path(os.environ.get("PERSONAS_PERSONA_DIR", "personas"))


def load_persona_file(name: str, directory: Path | None = None) -> Persona:
    """personas/<name>.json (name may already end in .json); names are plain file names."""
    if not name or "/" in name or "\\" in name or name.startswith("."):
        raise ModuleInputError(f"bad persona name {name!r}")
    directory = directory or persona_dir()
    path = directory / (name if name.endswith(".json") else f"{name}.json")
    if not path.is_file():
        raise ModuleInputError(f"no persona file {path}")
    try:
        return Persona.load(path)
    except ValueError as exc:
        raise ModuleInputError(str(exc)) from exc


def persona_from_config(config: Mapping[str, Any]) -> Persona:
    """The node-injected persona (system_prompt.persona), else the file named by persona_module."""
    prompt = config.get("system_prompt")
    injected = prompt.get("persona") if isinstance(prompt, Mapping) else None
    if isinstance(injected, str) and injected.strip().startswith("{"):
        injected = json.loads(injected)
    if isinstance(injected, Mapping) and injected:
        try:
            return Persona.model_validate(injected)
        except ValidationError as exc:
            raise ModuleInputError(
                f"system_prompt.persona is not a persona: {validation_message(exc)}"
            ) from exc
    module = config.get("persona_module")
    name = module.get("name") if isinstance(module, Mapping) else None
    if not name:
        raise ModuleInputError("no persona: set config.persona_module.name or system_prompt.persona")
    return load_persona_file(str(module.get("module_entrypoint") or name))  # type: ignore[union-attr]


def llm_config_from(config: Mapping[str, Any], llm_configs_path: Path | None) -> dict[str, Any]:
    """The deployment's llm_config, completed from llm_configs.json when only its name is given."""
    llm = config.get("llm_config")
    if isinstance(llm, BaseModel):
        llm = llm.model_dump()
    if not isinstance(llm, Mapping):
        raise ModuleInputError("no llm_config in the deployment config")
    llm = dict(llm)
    if not llm.get("api_base") and llm_configs_path is not None and llm_configs_path.is_file():
        configs = json.loads(llm_configs_path.read_text())
        named = next((c for c in configs if c.get("config_name") == llm.get("config_name")), None)
        if named is None:
            raise ModuleInputError(f"llm_config {llm.get('config_name')!r} is not in {llm_configs_path.name}")
        llm = {**named, **{k: v for k, v in llm.items() if v is not None}}
    if not llm.get("api_base"):
        raise ModuleInputError("llm_config has no api_base (the vLLM server's /v1 URL)")
    return llm


def client_for(llm: Mapping[str, Any]) -> ChatClient:
    """A client for the llm_config's server; timeouts, retries and the API key from the project config."""
    try:
        base = load_settings().inference
    except ConfigError as exc:
        log.warning("project config unreadable (%s); inference defaults used", exc)
        base = InferenceConfig()
    api_base = str(llm["api_base"])
    override = os.environ.get("PERSONAS_MODULE_API_BASE")  # operators point a deployed module elsewhere
    config = base.model_copy(
        update={"base_url": (override or api_base).rstrip("/"), "model": llm.get("model")}
    )
    return ChatClient(config)


def _module_run_parts(
    module_run: Mapping[str, Any], run_model: type[BaseModel]
) -> tuple[BaseModel, dict[str, Any]]:
    if not isinstance(module_run, Mapping):
        raise ModuleInputError("module_run must be a dict (a <Type>Run's model_dump())")
    try:
        run = run_model.model_validate(module_run)
    except ValidationError as exc:
        raise ModuleInputError(f"module_run: {validation_message(exc)}") from exc
    deployment = module_run.get("deployment") or {}
    config = deployment.get("config") if isinstance(deployment, Mapping) else None
    if isinstance(config, BaseModel):
        config = config.model_dump()
    return run, dict(config or {})


def parse_inputs(raw: Any, schema: type[BaseModel]) -> BaseModel:
    if isinstance(raw, BaseModel):
        raw = raw.model_dump()
    if isinstance(raw, str):
        try:
            raw = json.loads(raw)
        except ValueError:
            raw = {"question": raw}
    try:
        return schema.model_validate(raw or {})
    except ValidationError as exc:
        raise ModuleInputError(f"inputs: {validation_message(exc)}") from exc


def _turn(item: Any) -> Turn:
    data = item.model_dump() if isinstance(item, BaseModel) else item
    return Turn(speaker=str(data["speaker"]), text=str(data["text"]), round=0)


async def run_agent(
    module_run: Mapping[str, Any],
    *,
    input_schema: type[BaseModel],
    run_model: type[BaseModel],
    llm_configs: Path,
) -> dict[str, Any]:
    """The TPOT persona agent: answer one question (with optional history) as the persona."""
    try:
        run, config = _module_run_parts(module_run, run_model)
        inputs = parse_inputs(getattr(run, "inputs", None), input_schema)
        question = str(getattr(inputs, "question", "") or "").strip()
        if not question:
            raise ModuleInputError("empty question")
        persona_name = getattr(inputs, "persona", None)
        persona = load_persona_file(persona_name) if persona_name else persona_from_config(config)
        llm = llm_config_from(config, llm_configs)
        history = [_turn(h) for h in getattr(inputs, "history", [])]
        async with client_for(llm) as client:
            agent = PersonaAgent(
                persona,
                client,
                model=getattr(inputs, "model", None),
                max_tokens=getattr(inputs, "max_tokens", None) or llm.get("max_tokens") or 256,
                temperature=llm.get("temperature"),
            )
            turn = await agent.respond(history, question=question)
    except (ModuleInputError, InferenceError) as exc:
        return error_result(str(exc))
    except Exception as exc:  # a node stores the result; a crash would only show as a failed run
        log.exception("tpot persona agent failed")
        return error_result(f"internal error: {type(exc).__name__}: {exc}")
    return {
        "status": "ok",
        "persona": persona.name,
        "answer": turn.text,
        "model": turn.model,
        "usage": {"prompt_tokens": turn.prompt_tokens, "completion_tokens": turn.completion_tokens},
        "latency_s": round(turn.latency_s, 4),
    }


async def run_chat_environment(
    module_run: Mapping[str, Any],
    *,
    input_schema: type[BaseModel],
    run_model: type[BaseModel],
    llm_configs: Path,
) -> dict[str, Any]:
    """The chat environment: personas take turns on a topic; the transcript is returned (and stored)."""
    try:
        run, config = _module_run_parts(module_run, run_model)
        inputs = parse_inputs(getattr(run, "inputs", None), input_schema)
        data = getattr(inputs, "func_input_data")  # noqa: B009 (schema field)
        personas = [p if isinstance(p, Persona) else load_persona_file(p) for p in data.personas]
        llm = llm_config_from(config, llm_configs)
        async with client_for(llm) as client:
            models = dict(data.models)
            agents = [
                PersonaAgent(
                    p,
                    client,
                    model=models.get(p.name),
                    max_tokens=data.max_tokens,
                    temperature=llm.get("temperature"),
                )
                for p in personas
            ]
            try:
                env = ChatEnvironment(
                    agents, data.topic, rounds=data.rounds, policy=data.policy, stop_phrases=data.stop_phrases
                )
            except ValueError as exc:
                raise ModuleInputError(str(exc)) from exc
            transcript = await env.run()
    except ModuleInputError as exc:
        return error_result(str(exc))
    except Exception as exc:
        log.exception("persona chat environment failed")
        return error_result(f"internal error: {type(exc).__name__}: {exc}")
    result = {
        "status": "ok" if not transcript.stop_reason.startswith("model error") else "error",
        **transcript.to_dict(),
    }
    storage = config.get("storage_config") or {}
    if isinstance(storage, Mapping) and storage.get("storage_type") == "fs" and storage.get("path"):
        run_id = str(module_run.get("id") or uuid.uuid4().hex)
        safe = "".join(c for c in run_id if c.isalnum() or c in "-_:")[:80].replace(":", "_")
        path = Path(str(storage["path"])) / f"{safe}.jsonl"
        transcript.save_jsonl(path)
        result["transcript_path"] = str(path)
    if result["status"] == "error":
        result["error"] = transcript.stop_reason
    return result
