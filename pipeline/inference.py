"""The one inference client: chat completions against any OpenAI-compatible endpoint (vLLM, Together, OpenAI, ...).

`ChatClient(config).chat(messages, model=None, **params) -> str` returns the first choice's
text; extra params (temperature, max_tokens, top_p, ...) go into the request body.
`ChatClient.achat` is the same coroutine for one-off async calls; `AsyncChatClient` keeps
one async connection pool for many concurrent requests. The API key comes from config
(`[inference] api_key`, `PERSONAS_INFERENCE__API_KEY`) or `$OPENAI_API_KEY`; it is a
SecretStr, sent only as the bearer header and never logged. Rate limits (429), server
errors (5xx) and transport errors are retried with exponential backoff and jitter,
honouring `Retry-After`; other errors raise `InferenceError` (with the status) at once.
`models` maps short aliases to what the server serves; a call naming no model uses `model`.
"""

from __future__ import annotations

import asyncio
import logging
import os
import random
import time
from collections.abc import Mapping, Sequence
from typing import Any

import httpx
from pydantic import BaseModel, Field, SecretStr

log = logging.getLogger("pipeline.inference")

Message = Mapping[str, Any]


class InferenceConfig(BaseModel):
    base_url: str = Field("http://127.0.0.1:8000/v1", description="OpenAI-compatible endpoint (…/v1)")
    api_key: SecretStr | None = Field(None, description="bearer token; else $OPENAI_API_KEY")
    model: str | None = Field(None, description="model used when a call names none")
    models: dict[str, str] = Field(default_factory=dict, description="alias -> model name the server serves")
    timeout_s: float = Field(60.0, gt=0)
    max_retries: int = Field(3, ge=0, description="retries on 429, 5xx and transport errors")
    backoff_s: float = Field(0.5, ge=0, description="first retry delay; doubles each try, with jitter")
    max_backoff_s: float = Field(30.0, ge=0)


class InferenceError(RuntimeError):
    """A request that failed for good (after retries, or a non-retryable status)."""

    def __init__(self, message: str, status: int | None = None):
        super().__init__(message)
        self.status = status


def _retryable(status: int) -> bool:
    return status in (408, 409, 425, 429) or status >= 500


def _api_key(config: InferenceConfig) -> SecretStr | None:
    if config.api_key is not None:
        return config.api_key
    env = os.environ.get("OPENAI_API_KEY")
    return SecretStr(env) if env else None


class _Base:
    def __init__(self, config: InferenceConfig | None = None):
        self.config = config or InferenceConfig()
        self.requests = 0
        self.retries = 0
        key = _api_key(self.config)
        self._headers = {"Authorization": f"Bearer {key.get_secret_value()}"} if key is not None else {}

    def model_name(self, model: str | None) -> str:
        name = model or self.config.model
        if not name:
            raise InferenceError("no model given and [inference] model is not set")
        return self.config.models.get(name, name)

    def _body(self, messages: Sequence[Message], model: str | None, params: dict[str, Any]) -> dict[str, Any]:
        return {"model": self.model_name(model), "messages": [dict(m) for m in messages], **params}

    def _delay(self, attempt: int, response: httpx.Response | None) -> float:
        if response is not None:
            retry_after = response.headers.get("Retry-After")
            if retry_after:
                try:
                    return min(float(retry_after), self.config.max_backoff_s)
                except ValueError:
                    pass
        base = self.config.backoff_s * (2**attempt)
        return min(base * (0.5 + random.random()), self.config.max_backoff_s)

    def _outcome(self, response: httpx.Response | None, error: Exception | None, attempt: int) -> str | float:
        """The reply text, or the delay before the next attempt; raises when there is none."""
        self.requests += 1
        if response is not None and response.status_code < 300:
            try:
                content = response.json()["choices"][0]["message"]["content"]
            except (ValueError, KeyError, IndexError, TypeError) as exc:
                raise InferenceError(f"unexpected chat completion response: {response.text[:200]}") from exc
            return str(content or "")
        # the body can echo the request; keep it short and never include headers
        if response is not None:
            problem = f"HTTP {response.status_code}: {response.text[:200]}"
            if not _retryable(response.status_code):
                raise InferenceError(problem, response.status_code)
        else:
            problem = f"{type(error).__name__}: {error}"
        if attempt >= self.config.max_retries:
            status = response.status_code if response is not None else None
            raise InferenceError(f"chat completion failed after {attempt + 1} attempts: {problem}", status)
        self.retries += 1
        delay = self._delay(attempt, response)
        log.info("inference retry %d in %.1f s (%s)", attempt + 1, delay, problem[:80])
        return delay


class ChatClient(_Base):
    """Synchronous client; use as a context manager or call `close`."""

    def __init__(
        self, config: InferenceConfig | None = None, *, transport: httpx.BaseTransport | None = None
    ):
        super().__init__(config)
        self._http = httpx.Client(
            base_url=self.config.base_url.rstrip("/"),
            headers=self._headers,
            timeout=self.config.timeout_s,
            transport=transport,
        )

    def __enter__(self) -> ChatClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    def chat(self, messages: Sequence[Message], model: str | None = None, **params: Any) -> str:
        """The assistant's reply text to `messages` (OpenAI chat format)."""
        body = self._body(messages, model, params)
        attempt = 0
        while True:
            response: httpx.Response | None = None
            error: Exception | None = None
            try:
                response = self._http.post("/chat/completions", json=body)
            except httpx.TransportError as exc:
                error = exc
            outcome = self._outcome(response, error, attempt)
            if isinstance(outcome, str):
                return outcome
            time.sleep(outcome)
            attempt += 1

    async def achat(self, messages: Sequence[Message], model: str | None = None, **params: Any) -> str:
        """`chat` as a coroutine (a short-lived async connection; use AsyncChatClient for many calls)."""
        async with AsyncChatClient(self.config) as client:
            text = await client.chat(messages, model, **params)
            self.requests += client.requests
            self.retries += client.retries
            return text


class AsyncChatClient(_Base):
    """Asynchronous client (`async with`), for many concurrent requests over one connection pool."""

    def __init__(
        self, config: InferenceConfig | None = None, *, transport: httpx.AsyncBaseTransport | None = None
    ):
        super().__init__(config)
        self._http = httpx.AsyncClient(
            base_url=self.config.base_url.rstrip("/"),
            headers=self._headers,
            timeout=self.config.timeout_s,
            transport=transport,
        )

    async def __aenter__(self) -> AsyncChatClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._http.aclose()

    async def chat(self, messages: Sequence[Message], model: str | None = None, **params: Any) -> str:
        body = self._body(messages, model, params)
        attempt = 0
        while True:
            response: httpx.Response | None = None
            error: Exception | None = None
            try:
                response = await self._http.post("/chat/completions", json=body)
            except httpx.TransportError as exc:
                error = exc
            outcome = self._outcome(response, error, attempt)
            if isinstance(outcome, str):
                return outcome
            await asyncio.sleep(outcome)
            attempt += 1
