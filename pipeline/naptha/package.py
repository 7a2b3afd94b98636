"""`personas naptha package` / `publish`: make each module a standalone repo the naptha CLI and a
node accept (naptha.md §4, §5, §9), check everything locally, then run the naptha commands.

A packaged module is a folder named like its package, holding pyproject.toml (naptha-personas
pinned to what is being published), the package (run.py, schemas.py with InputSchema,
configs/deployment.json with a full `module` block, configs/llm_configs.json), and a git
repository whose tag equals `module_version` (the node checks that tag out). The persona
module is data only: a repo of ElizaOS character files, registered one persona at a time.

Validation uses naptha-sdk's own models (<Type>Deployment, LLMConfig, load_llm_configs), so
a config the SDK would reject fails here, before anything reaches the hub.
"""

from __future__ import annotations

import ast
import json
import os
import re
import shlex
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pipeline.persona import Persona
from pipeline.store.atomic import atomic_write_bytes

ROOT = Path(__file__).resolve().parents[2]
MODULE_BLOCK_KEYS = (
    "name",
    "description",
    "parameters",
    "module_type",
    "module_version",
    "module_entrypoint",
    "execution_type",
)
PERSONA_PARAMETERS = (
    "{name: str, bio: List, lore: List, adjectives: List, topics: List, style: Dict[str, List], "
    "messageExamples: List, postExamples: List}"
)
HUB_ENV = ("NODE_URL", "HUB_URL", "HUB_USERNAME", "HUB_PASSWORD", "PRIVATE_KEY")
VERSION = re.compile(r"^v\d+(\.\d+)*$")


class PackageError(ValueError):
    pass


@dataclass(frozen=True)
class ModuleSource:
    name: str
    module_type: str  # agent | environment
    source: Path


def module_sources(root: Path = ROOT) -> list[ModuleSource]:
    return [
        ModuleSource("tpot_persona_agent", "agent", root / "modules" / "tpot_persona_agent"),
        ModuleSource(
            "persona_chat_environment", "environment", root / "environments" / "persona_chat_environment"
        ),
    ]


@dataclass
class Packaged:
    name: str
    module_type: str
    path: Path
    version: str
    module_url: str
    problems: list[str] = field(default_factory=list)
    commands: list[list[str]] = field(default_factory=list)


def _git(cwd: Path, *args: str) -> str:
    env = {**os.environ, "GIT_AUTHOR_NAME": "naptha-personas", "GIT_AUTHOR_EMAIL": "personas@localhost"}
    env |= {"GIT_COMMITTER_NAME": env["GIT_AUTHOR_NAME"], "GIT_COMMITTER_EMAIL": env["GIT_AUTHOR_EMAIL"]}
    done = subprocess.run(["git", *args], cwd=cwd, env=env, capture_output=True, text=True)
    if done.returncode:
        raise PackageError(f"git {' '.join(args)} in {cwd}: {done.stderr.strip()}")
    return done.stdout.strip()


def _git_repo(path: Path, version: str) -> None:
    """A fresh repo with one commit tagged `version` (what the node checks out)."""
    shutil.rmtree(path / ".git", ignore_errors=True)
    _git(path, "init", "-q", "-b", "main")
    _git(path, "add", "-A")
    _git(path, "commit", "-q", "-m", f"{path.name} {version}")
    _git(path, "tag", version)


def _copy_tree(source: Path, target: Path) -> None:
    if target.exists():
        shutil.rmtree(target)
    shutil.copytree(
        source, target, ignore=shutil.ignore_patterns("__pycache__", "*.pyc", ".venv", "*.egg-info")
    )


def _pin_requirement(pyproject: Path, requirement: str) -> None:
    text = pyproject.read_text()
    new = re.sub(r'"naptha-personas[^"]*"', json.dumps(requirement), text)
    if new == text and requirement not in text:
        raise PackageError(f"{pyproject} does not depend on naptha-personas")
    atomic_write_bytes(pyproject, new.encode())


def package_module(
    module: ModuleSource, out: Path, *, requirement: str, version: str | None, module_url: str | None
) -> Packaged:
    """Copy the module into out/<name>/, pin its dependencies, complete its module block, tag it."""
    target = out / module.name
    _copy_tree(module.source, target)
    _pin_requirement(target / "pyproject.toml", requirement)
    deployment_path = target / module.name / "configs" / "deployment.json"
    deployments = json.loads(deployment_path.read_text())
    block = deployments[0]["module"]
    version = version or block.get("module_version", "v0.1")
    for entry in deployments:
        entry["module"]["module_version"] = version
        if module_url:
            entry["module"]["module_url"] = module_url
    atomic_write_bytes(deployment_path, (json.dumps(deployments, indent=2) + "\n").encode())
    _git_repo(target, version)
    return Packaged(module.name, module.module_type, target, version, module_url or "")


def package_personas(
    persona_dir: Path, out: Path, *, name: str, version: str, module_url: str | None
) -> Packaged:
    """The persona module: a repo of character files (one hub record per persona)."""
    files = sorted(persona_dir.glob("*.json"))
    if not files:
        raise PackageError(f"no persona files (*.json) in {persona_dir}")
    target = out / name
    if target.exists():
        shutil.rmtree(target)
    target.mkdir(parents=True)
    for path in files:
        shutil.copy2(path, target / path.name)
    readme = (
        f"# {name}\n\nElizaOS character files built by naptha-personas (`personas persona build`).\n"
        "Each file is registered on the Naptha hub as a persona module whose entrypoint is that file.\n"
    )
    atomic_write_bytes(target / "README.md", readme.encode())
    _git_repo(target, version)
    return Packaged(name, "persona", target, version, module_url or "")


# -- validation (naptha-sdk's own models) -----------------------------------------------------------


def _defines(path: Path, name: str) -> bool:
    try:
        tree = ast.parse(path.read_text())
    except (OSError, SyntaxError):
        return False
    return any(
        isinstance(node, ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef) and node.name == name
        for node in tree.body
    )


def _kv_safe(label: str, value: str) -> list[str]:
    # naptha's `-c "k=v ..."` parser splits on '=' (a value containing one crashes it) and on quotes.
    if "=" in value or "'" in value:
        return [f"{label} contains '=' or a single quote, which the naptha CLI's k=v parser cannot take"]
    return []


def validate_module(path: Path, module_type: str) -> list[str]:
    """Problems that would stop `naptha publish` or a node from running this module; [] when fine."""
    from naptha_sdk.configs import load_llm_configs
    from naptha_sdk.schemas import AgentDeployment, EnvironmentDeployment, OrchestratorDeployment

    models: dict[str, Any] = {
        "agent": AgentDeployment,
        "environment": EnvironmentDeployment,
        "orchestrator": OrchestratorDeployment,
    }
    name = path.name
    package = path / name
    problems: list[str] = []
    if not (path / "pyproject.toml").is_file():
        problems.append("no pyproject.toml")
    if not _defines(package / "run.py", "run"):
        problems.append(f"{name}/run.py defines no run()")
    if not _defines(package / "schemas.py", "InputSchema"):
        problems.append(f"{name}/schemas.py defines no InputSchema")
    configs = package / "configs"
    try:
        deployments = json.loads((configs / "deployment.json").read_text())
    except (OSError, ValueError) as exc:
        return [*problems, f"configs/deployment.json: {exc}"]
    if not isinstance(deployments, list) or not deployments:
        return [*problems, "configs/deployment.json must be a non-empty list"]
    llm_names: set[str | None] = set()
    if (configs / "llm_configs.json").is_file():
        try:
            llm_names = {c.config_name for c in load_llm_configs(str(configs / "llm_configs.json"))}
        except (ValueError, TypeError) as exc:
            problems.append(f"configs/llm_configs.json: {exc}")
    for i, entry in enumerate(deployments):
        try:
            models[module_type].model_validate(entry)
        except ValueError as exc:
            problems.append(f"deployment.json[{i}]: {exc}")
            continue
        block = entry.get("module") or {}
        missing = [k for k in MODULE_BLOCK_KEYS if not block.get(k)]
        if missing:
            problems.append(
                f"deployment.json[{i}].module lacks {', '.join(missing)} (naptha publish needs them)"
            )
        if block.get("name") != name:
            problems.append(f"module name {block.get('name')!r} is not the folder/package name {name!r}")
        if block.get("module_type") not in (None, module_type):
            problems.append(f"module_type {block.get('module_type')!r}, expected {module_type!r}")
        if block.get("module_version") and not VERSION.match(block["module_version"]):
            problems.append(f"module_version {block['module_version']!r} is not like v0.1")
        for key in ("description", "parameters"):
            problems += _kv_safe(f"module.{key}", str(block.get(key, "")))
        llm = (entry.get("config") or {}).get("llm_config") or {}
        if llm.get("config_name") and llm["config_name"] not in llm_names:
            problems.append(f"llm_config {llm['config_name']!r} is not in configs/llm_configs.json")
    if (path / ".git").is_dir():
        version = deployments[0].get("module", {}).get("module_version")
        tags = _git(path, "tag", "--list").split()
        if version not in tags:
            problems.append(f"git tag {version} (module_version) is missing")
    return problems


def validate_personas(path: Path) -> list[str]:
    problems = []
    for file in sorted(path.glob("*.json")):
        try:
            Persona.load(file)
        except ValueError as exc:
            problems.append(str(exc))
        problems += [p.replace("module", file.stem) for p in _kv_safe("persona name", file.stem)]
    return problems


# -- commands ----------------------------------------------------------------------------------------


def publish_commands(item: Packaged) -> list[list[str]]:
    """The naptha commands that register `item` on the hub (run from item.path)."""
    if item.module_type == "persona":
        commands = []
        for file in sorted(item.path.glob("*.json")):
            persona = Persona.load(file)
            description = f"TPOT persona {persona.name}, built from the Community Archive by naptha-personas"
            config = (
                f"description='{description.replace('=', '-')}' parameters='{PERSONA_PARAMETERS}' "
                f"module_url='{item.module_url}' module_version='{item.version}' module_entrypoint='{file.name}'"
            )
            commands.append(["naptha", "personas", file.stem, "-c", config])
        return commands
    return [["naptha", "publish", "-r", item.module_url]]


def hub_env_missing(env: dict[str, str] | None = None) -> list[str]:
    env = dict(os.environ) if env is None else env
    return [k for k in HUB_ENV if not env.get(k)]


def run_commands(item: Packaged, commands: list[list[str]]) -> None:
    missing = hub_env_missing()
    if missing:
        raise PackageError(
            f"publishing needs a Naptha hub account: set {', '.join(missing)} (see README, 'Publishing to Naptha')"
        )
    if shutil.which("naptha") is None:
        raise PackageError("the naptha CLI is not installed: pip install 'naptha-personas[naptha]'")
    for command in commands:
        done = subprocess.run(command, cwd=item.path, capture_output=True, text=True)
        if done.returncode:
            tail = (done.stderr or done.stdout).strip().splitlines()[-5:]
            raise PackageError(f"{shlex.join(command)} failed ({done.returncode}): " + " | ".join(tail))
