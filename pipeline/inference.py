"""The one inference client: chat completions against any OpenAI-compatible endpoint (vLLM, OpenAI, ...).

`ChatClient` (sync) and `AsyncChatClient` (async) post to `{base_url}/chat/completions` with
httpx. The API key comes from config (`[inference] api_key`, or `PERSONAS_INFERENCE__API_KEY`)
or `$OPENAI_API_KEY`; it is a SecretStr, sent only as the bearer header and never logged.
Rate limits (429), server errors (5xx) and transport errors are retried with exponential
backoff and jitter, honouring `Retry-After`; other errors raise `InferenceError` at once.
`models` maps short aliases to what the server serves (a call naming no model uses `model`).
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
from pydantic import SecretStr

from pipeline.config import InferenceConfig

log = logging.getLogger(__name__)

RETRY_STATUS = frozenset({408, 409, 425, 429, 500, 502, 503, 504})
Message = Mapping[str, Any]


class InferenceError(RuntimeError):
    """A request that failed for good (after retries, or a non-retryable status)."""

    def __init__(self, message: str, status: int | None = None):
        super().__init__(message)
        self.status = status


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

    def _headers(self) -> dict[str, str]:
        headers = {"Content-Type": "application/json"}
        key = _api_key(self.config)
        if key is not None:
            headers["Authorization"] = f"Bearer {key.get_secret_value()}"
        return headers

    def model_name(self, model: str | None) -> str:
        name = model or self.config.model
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

    def _result(self, response: httpx.Response) -> str:
        try:
            payload = response.json()
            content = payload["choices"][0]["message"]["content"]
        except (ValueError, KeyError, IndexError, TypeError) as exc:
            raise InferenceError(f"unexpected response from {self.config.base_url}: {exc}") from None
        if not isinstance(content, str):
            raise InferenceError("the response has no text content")
        return content

    def _failure(self, response: httpx.Response) -> InferenceError:
        # the body can echo the request; keep it short and never include headers
        return InferenceError(
            f"chat completion failed: HTTP {response.status_code}: {response.text[:200]}",
            response.status_code,
        )


class ChatClient(_Base):
    """Synchronous client; use as a context manager or call `close`."""

    def __init__(
        self, config: InferenceConfig | None = None, *, transport: httpx.BaseTransport | None = None
    ):
        super().__init__(config)
        self._http = httpx.Client(
            base_url=self.config.base_url.rstrip("/"), timeout=self.config.timeout_s, transport=transport
        )

    def __enter__(self) -> ChatClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    def chat(self, messages: Sequence[Message], model: str | None = None, **params: Any) -> str:
        """The assistant's reply text to `messages` (OpenAI chat format); `params` go into the body."""
        body = self._body(messages, model, params)
        attempt = 0
        while True:
            self.requests += 1
            response: httpx.Response | None = None
            try:
                response = self._http.post("/chat/completions", json=body, headers=self._headers())
            except httpx.TransportError as exc:
                if attempt >= self.config.max_retries:
                    raise InferenceError(f"chat completion failed: {type(exc).__name__}: {exc}") from None
            else:
                if response.status_code < 300:
                    return self._result(response)
                if response.status_code not in RETRY_STATUS or attempt >= self.config.max_retries:
                    raise self._failure(response)
            delay = self._delay(attempt, response)
            log.info("inference retry %d in %.1f s", attempt + 1, delay)
            self.retries += 1
            attempt += 1
            time.sleep(delay)


class AsyncChatClient(_Base):
    """Asynchronous client (`async with`), for many concurrent requests."""

    def __init__(
        self, config: InferenceConfig | None = None, *, transport: httpx.AsyncBaseTransport | None = None
    ):
        super().__init__(config)
        self._http = httpx.AsyncClient(
            base_url=self.config.base_url.rstrip("/"), timeout=self.config.timeout_s, transport=transport
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
            self.requests += 1
            response: httpx.Response | None = None
            try:
                response = await self._http.post("/chat/completions", json=body, headers=self._headers())
            except httpx.TransportError as exc:
                if attempt >= self.config.max_retries:
                    raise InferenceError(f"chat completion failed: {type(exc).__name__}: {exc}") from None
            else:
                if response.status_code < 300:
                    return self._result(response)
                if response.status_code not in RETRY_STATUS or attempt >= self.config.max_retries:
                    raise self._failure(response)
            delay = self._delay(attempt, response)
            log.info("inference retry %d in %.1f s", attempt + 1, delay)
            self.retries += 1
            attempt += 1
            await asyncio.sleep(delay)
