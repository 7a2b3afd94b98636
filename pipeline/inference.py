"""The project's one inference client: OpenAI-compatible chat completions over httpx.

Everything that asks a model for text (Discord profiles, distillation, the bot, the Naptha
agents, `personas chat`) goes through `ChatClient`, against vLLM (`personas serve`) or any
other OpenAI-compatible endpoint. Small and predictable, like httpx itself:

    client = ChatClient(InferenceConfig(base_url="http://127.0.0.1:8000/v1", model="tpot"))
    text = client.chat([{"role": "user", "content": "hi"}])           # str
    result = client.chat_completion(messages, max_tokens=64)          # text + usage + latency
    for delta in client.stream(messages): ...                         # text deltas (SSE)
    text = await client.achat(messages)                               # async twins: achat_completion, astream

Retries: connect errors, timeouts, 429 and 5xx are retried with exponential backoff and
jitter (Retry-After honoured, capped); other 4xx fail at once with the server's message.
A stream is retried only until its first byte arrives; after that a failure is raised.

Model names: `models` maps a persona or alias to the name the server knows: a vLLM
`--served-model-name` or a LoRA adapter name (`--lora-modules name=path`). A name absent
from the map is sent as is; no name at all means `model`.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import random
import time
from collections.abc import AsyncIterator, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import httpx
from pydantic import BaseModel, Field, SecretStr, field_validator

log = logging.getLogger("pipeline.inference")

Message = Mapping[str, Any]
"""An OpenAI chat message: {"role": "system"|"user"|"assistant", "content": str}."""

RETRY_STATUS = frozenset({408, 409, 425, 429, 500, 502, 503, 504})


def _api_key_from_env() -> SecretStr | None:
    # PERSONAS_INFERENCE__API_KEY reaches the field through the settings; OPENAI_API_KEY is the
    # name every OpenAI-compatible tool reads, so it is the fallback.
    value = os.environ.get("OPENAI_API_KEY")
    return SecretStr(value) if value else None


class InferenceConfig(BaseModel):
    """Config section `inference`: where the OpenAI-compatible server is and how to talk to it."""

    base_url: str = Field("http://127.0.0.1:8000/v1", description="OpenAI-compatible API root (ends in /v1)")
    api_key: SecretStr | None = Field(
        default_factory=_api_key_from_env, description="Bearer token; env OPENAI_API_KEY as a fallback"
    )
    model: str | None = Field(None, description="model used when a call names none")
    models: dict[str, str] = Field(
        default_factory=dict, description="persona/alias -> served model name or LoRA adapter name"
    )
    timeout_s: float = Field(120.0, gt=0, description="per request (read timeout between stream chunks)")
    connect_timeout_s: float = Field(10.0, gt=0)
    max_retries: int = Field(3, ge=0, description="retries after the first try")
    backoff_s: float = Field(0.5, ge=0, description="first retry delay; doubles each retry, with jitter")
    max_backoff_s: float = Field(20.0, ge=0)

    @field_validator("base_url")
    @classmethod
    def _strip_slash(cls, value: str) -> str:
        return value.rstrip("/")

    def resolve_model(self, name: str | None = None) -> str:
        """The server-side model name for a persona, alias or model name (None: the default model)."""
        name = name or self.model
        if not name:
            raise InferenceError("no model named: pass model=... or set inference.model")
        return self.models.get(name, name)


class InferenceError(RuntimeError):
    """A request that failed for good: after retries, or with a non-retryable status."""

    def __init__(self, message: str, *, status: int | None = None):
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class Usage:
    prompt_tokens: int = 0
    completion_tokens: int = 0
    total_tokens: int = 0

    @classmethod
    def from_json(cls, data: Mapping[str, Any] | None) -> Usage:
        if not data:
            return cls()
        prompt = int(data.get("prompt_tokens") or 0)
        completion = int(data.get("completion_tokens") or 0)
        return cls(prompt, completion, int(data.get("total_tokens") or prompt + completion))


@dataclass(frozen=True)
class ChatResult:
    """One completion: its text, the model that answered, token counts and wall time."""

    text: str
    model: str
    usage: Usage = field(default_factory=Usage)
    latency_s: float = 0.0
    finish_reason: str | None = None


def _error_text(response: httpx.Response) -> str:
    # The body is the server's (untrusted, maybe huge): keep the message, cut the rest.
    try:
        data = response.json()
        detail = data.get("error", data) if isinstance(data, dict) else data
        if isinstance(detail, dict):
            detail = detail.get("message") or detail
        text = str(detail)
    except ValueError:
        text = response.text
    return text[:500]


def _retry_after(response: httpx.Response | None) -> float | None:
    if response is None:
        return None
    value = response.headers.get("retry-after")
    try:
        return float(value) if value is not None else None
    except ValueError:
        return None


def _parse_completion(data: Any, model: str, latency_s: float) -> ChatResult:
    try:
        choice = data["choices"][0]
        text = choice["message"].get("content") or ""
    except (KeyError, IndexError, TypeError, AttributeError) as exc:
        raise InferenceError(f"malformed completion from the server: {str(data)[:200]}") from exc
    return ChatResult(
        text=str(text),
        model=str(data.get("model") or model),
        usage=Usage.from_json(data.get("usage")),
        latency_s=latency_s,
        finish_reason=choice.get("finish_reason"),
    )


def _sse_delta(line: str) -> str | None:
    """The text delta of one Server-Sent Events line ('' for none); None at the end marker."""
    if not line.startswith("data:"):
        return ""  # comments (": ping"), event names, blank separators
    payload = line[5:].strip()
    if payload == "[DONE]":
        return None
    try:
        data = json.loads(payload)
    except ValueError as exc:
        raise InferenceError(f"malformed stream event: {payload[:200]}") from exc
    if isinstance(data, dict) and "error" in data:
        raise InferenceError(f"server error mid-stream: {str(data['error'])[:300]}")
    try:
        return data["choices"][0]["delta"].get("content") or ""
    except (KeyError, IndexError, TypeError, AttributeError):
        return ""  # e.g. the final usage-only chunk


class ChatClient:
    """Sync and async chat completions against one OpenAI-compatible server.

    Clients hold connection pools: reuse one, and `close()`/`aclose()` it (or use it as a
    context manager). `transport`/`async_transport` are for tests and custom routing.
    """

    def __init__(
        self,
        config: InferenceConfig | None = None,
        *,
        transport: httpx.BaseTransport | None = None,
        async_transport: httpx.AsyncBaseTransport | None = None,
    ):
        self.config = config or InferenceConfig()
        self._transport = transport
        self._async_transport = async_transport
        self._client: httpx.Client | None = None
        self._aclient: httpx.AsyncClient | None = None
        self._aclient_loop: asyncio.AbstractEventLoop | None = None

    # -- plumbing ------------------------------------------------------------------------------

    def _headers(self) -> dict[str, str]:
        headers = {"Content-Type": "application/json"}
        if self.config.api_key is not None:
            headers["Authorization"] = f"Bearer {self.config.api_key.get_secret_value()}"
        return headers

    def _timeout(self) -> httpx.Timeout:
        return httpx.Timeout(self.config.timeout_s, connect=self.config.connect_timeout_s)

    @property
    def client(self) -> httpx.Client:
        if self._client is None:
            self._client = httpx.Client(
                base_url=self.config.base_url,
                headers=self._headers(),
                timeout=self._timeout(),
                transport=self._transport,
            )
        return self._client

    @property
    def aclient(self) -> httpx.AsyncClient:
        # An AsyncClient's pool belongs to the event loop it first ran on; a client reused under a
        # later asyncio.run() gets a fresh one (the old loop, and with it the old pool, is gone).
        loop = asyncio.get_running_loop()
        if self._aclient is None or self._aclient_loop is not loop:
            self._aclient_loop = loop
            self._aclient = httpx.AsyncClient(
                base_url=self.config.base_url,
                headers=self._headers(),
                timeout=self._timeout(),
                transport=self._async_transport,
                limits=httpx.Limits(max_connections=256, max_keepalive_connections=64),
            )
        return self._aclient

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None

    async def aclose(self) -> None:
        if self._aclient is not None:
            await self._aclient.aclose()
            self._aclient = None
        self.close()

    def __enter__(self) -> ChatClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    async def __aenter__(self) -> ChatClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    def _body(
        self, messages: Sequence[Message], model: str | None, stream: bool, params: dict[str, Any]
    ) -> dict[str, Any]:
        if not messages:
            raise InferenceError("no messages to complete")
        body: dict[str, Any] = {"model": self.config.resolve_model(model), "messages": list(messages)}
        body.update({k: v for k, v in params.items() if v is not None})
        if stream:
            body["stream"] = True
            body.setdefault("stream_options", {"include_usage": True})
        return body

    def _delay(self, attempt: int, response: httpx.Response | None) -> float:
        hinted = _retry_after(response)
        if hinted is not None:
            return min(hinted, self.config.max_backoff_s)
        base = min(self.config.backoff_s * 2**attempt, self.config.max_backoff_s)
        return base * (0.5 + random.random() / 2)

    def _should_retry(self, attempt: int, what: str) -> bool:
        if attempt >= self.config.max_retries:
            return False
        log.info("inference: %s; retry %d of %d", what, attempt + 1, self.config.max_retries)
        return True

    def _fail(self, what: str, status: int | None = None) -> InferenceError:
        tries = self.config.max_retries + 1
        return InferenceError(
            f"{self.config.base_url}/chat/completions: {what} (after {tries} tries)", status=status
        )

    # -- sync ----------------------------------------------------------------------------------

    def _send(self, body: dict[str, Any], *, stream: bool) -> httpx.Response:
        """POST with retries; the caller closes a streamed response."""
        attempt = 0
        while True:
            response: httpx.Response | None = None
            try:
                request = self.client.build_request("POST", "/chat/completions", json=body)
                response = self.client.send(request, stream=stream)
            except httpx.TransportError as exc:
                what = f"{type(exc).__name__}: {exc or 'no detail'}"
                if not self._should_retry(attempt, what):
                    raise self._fail(what) from exc
            else:
                if response.status_code < 400:
                    return response
                if stream:
                    response.read()
                response.close()
                what = f"HTTP {response.status_code}: {_error_text(response)}"
                if response.status_code not in RETRY_STATUS:
                    raise InferenceError(
                        f"{self.config.base_url}/chat/completions: {what}", status=response.status_code
                    )
                if not self._should_retry(attempt, what):
                    raise self._fail(what, response.status_code)
            time.sleep(self._delay(attempt, response))
            attempt += 1

    def chat_completion(
        self, messages: Sequence[Message], model: str | None = None, **params: Any
    ) -> ChatResult:
        """One completion; `params` go into the request body (max_tokens, temperature, stop, seed, ...)."""
        body = self._body(messages, model, False, params)
        start = time.perf_counter()
        response = self._send(body, stream=False)
        try:
            data = response.json()
        except ValueError as exc:
            raise InferenceError(f"server answered non-JSON: {response.text[:200]}") from exc
        return _parse_completion(data, body["model"], time.perf_counter() - start)

    def chat(self, messages: Sequence[Message], model: str | None = None, **params: Any) -> str:
        return self.chat_completion(messages, model, **params).text

    def stream(self, messages: Sequence[Message], model: str | None = None, **params: Any) -> Iterator[str]:
        """Text deltas as the server produces them."""
        body = self._body(messages, model, True, params)
        response = self._send(body, stream=True)
        try:
            for line in response.iter_lines():
                delta = _sse_delta(line)
                if delta is None:
                    return
                if delta:
                    yield delta
        except httpx.TransportError as exc:
            raise InferenceError(f"stream broke: {type(exc).__name__}: {exc}") from exc
        finally:
            response.close()

    # -- async ---------------------------------------------------------------------------------

    async def _asend(self, body: dict[str, Any], *, stream: bool) -> httpx.Response:
        attempt = 0
        while True:
            response: httpx.Response | None = None
            try:
                request = self.aclient.build_request("POST", "/chat/completions", json=body)
                response = await self.aclient.send(request, stream=stream)
            except httpx.TransportError as exc:
                what = f"{type(exc).__name__}: {exc or 'no detail'}"
                if not self._should_retry(attempt, what):
                    raise self._fail(what) from exc
            else:
                if response.status_code < 400:
                    return response
                if stream:
                    await response.aread()
                await response.aclose()
                what = f"HTTP {response.status_code}: {_error_text(response)}"
                if response.status_code not in RETRY_STATUS:
                    raise InferenceError(
                        f"{self.config.base_url}/chat/completions: {what}", status=response.status_code
                    )
                if not self._should_retry(attempt, what):
                    raise self._fail(what, response.status_code)
            await asyncio.sleep(self._delay(attempt, response))
            attempt += 1

    async def achat_completion(
        self, messages: Sequence[Message], model: str | None = None, **params: Any
    ) -> ChatResult:
        body = self._body(messages, model, False, params)
        start = time.perf_counter()
        response = await self._asend(body, stream=False)
        try:
            data = response.json()
        except ValueError as exc:
            raise InferenceError(f"server answered non-JSON: {response.text[:200]}") from exc
        return _parse_completion(data, body["model"], time.perf_counter() - start)

    async def achat(self, messages: Sequence[Message], model: str | None = None, **params: Any) -> str:
        return (await self.achat_completion(messages, model, **params)).text

    async def astream(
        self, messages: Sequence[Message], model: str | None = None, **params: Any
    ) -> AsyncIterator[str]:
        body = self._body(messages, model, True, params)
        response = await self._asend(body, stream=True)
        try:
            async for line in response.aiter_lines():
                delta = _sse_delta(line)
                if delta is None:
                    return
                if delta:
                    yield delta
        except httpx.TransportError as exc:
            raise InferenceError(f"stream broke: {type(exc).__name__}: {exc}") from exc
        finally:
            await response.aclose()

    # -- models --------------------------------------------------------------------------------

    def list_models(self) -> list[dict[str, Any]]:
        """GET /models: the base model and, on vLLM, its LoRA adapters (with `parent`)."""
        try:
            response = self.client.get("/models")
        except httpx.TransportError as exc:
            raise InferenceError(f"{self.config.base_url}/models: {type(exc).__name__}: {exc}") from exc
        if response.status_code >= 400:
            raise InferenceError(
                f"{self.config.base_url}/models: HTTP {response.status_code}", status=response.status_code
            )
        data = response.json().get("data", [])
        return [m for m in data if isinstance(m, dict)]

    # -- vLLM administration (runtime LoRA adapters; needs VLLM_ALLOW_RUNTIME_LORA_UPDATING) ---

    def _admin(self, path: str, body: dict[str, Any]) -> str:
        try:
            response = self.client.post(path, json=body)
        except httpx.TransportError as exc:
            raise InferenceError(f"{self.config.base_url}{path}: {type(exc).__name__}: {exc}") from exc
        if response.status_code >= 400:
            raise InferenceError(
                f"{self.config.base_url}{path}: HTTP {response.status_code}: {_error_text(response)}",
                status=response.status_code,
            )
        return response.text

    def load_adapter(self, name: str, path: str, *, replace: bool = False) -> None:
        """Load a LoRA adapter under `name`. vLLM keeps stale prefix-cache blocks when the same
        path is reloaded, so write new weights to a new path and pass replace=True."""
        body: dict[str, Any] = {"lora_name": name, "lora_path": path}
        if replace:
            body["load_inplace"] = True
        self._admin("/load_lora_adapter", body)

    def unload_adapter(self, name: str) -> None:
        self._admin("/unload_lora_adapter", {"lora_name": name})

    def healthy(self) -> bool:
        """GET <root>/health (vLLM serves it beside /v1): True on 200."""
        root = self.config.base_url.removesuffix("/v1")
        try:
            return self.client.get(f"{root}/health", timeout=5.0).status_code == 200
        except httpx.TransportError:
            return False
