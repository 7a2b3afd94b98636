"""Import the Naptha modules from their folders and call them the way a node does (naptha.md §4, §10)."""

from __future__ import annotations

import asyncio
import importlib
import os
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from types import ModuleType
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
AGENT_DIR = ROOT / "modules" / "tpot_persona_agent"
ENVIRONMENT_DIR = ROOT / "environments" / "persona_chat_environment"


def import_module_run(module_dir: Path) -> ModuleType:
    """`<name>.run` of a module folder, as a node imports it after `pip install -e`."""
    if str(module_dir) not in sys.path:
        sys.path.insert(0, str(module_dir))
    return importlib.import_module(f"{module_dir.name}.run")


def import_schemas(module_dir: Path) -> ModuleType:
    import_module_run(module_dir)
    return importlib.import_module(f"{module_dir.name}.schemas")


@contextmanager
def chdir(path: Path) -> Iterator[None]:
    old = Path.cwd()
    os.chdir(path)
    try:
        yield
    finally:
        os.chdir(old)


def node_deployment(module_type: str, module_dir: Path) -> dict[str, Any]:
    """The deployment as the node builds it: setup_module_deployment from the module's configs
    (naptha-sdk reads `<cwd name>/configs/...`, so it runs from the module's repo root)."""
    from naptha_sdk.configs import setup_module_deployment

    with chdir(module_dir):
        deployment = asyncio.run(
            setup_module_deployment(
                module_type, f"{module_dir.name}/configs/deployment.json", node_url=None, user_id=None
            )
        )
    data: dict[str, Any] = deployment.model_dump()
    return data


def consumer_and_signature() -> tuple[str, str]:
    from ecdsa import SECP256k1, SigningKey
    from naptha_sdk.user import generate_public_key, sign_consumer_id

    key = SigningKey.generate(curve=SECP256k1).to_string().hex()
    consumer = f"user:{generate_public_key(key)}"
    return consumer, sign_consumer_id(consumer, key)


def call_like_a_node(
    run: Callable[..., Any], run_model: type, schema: type, deployment: dict[str, Any], inputs: dict[str, Any]
) -> Any:
    """Validate inputs with InputSchema, build the <Type>Run, and await run(module_run=...model_dump())."""
    consumer, signature = consumer_and_signature()
    schema(**inputs)  # the node's own check; raises on bad input before run() is called
    module_run = run_model(
        consumer_id=consumer, signature=signature, inputs=inputs, deployment=deployment
    ).model_dump()
    return asyncio.run(run(module_run=module_run))
