"""The one OpenAI-compatible inference client (vLLM, Together, OpenAI, ...): chat completions over httpx.

`ChatClient.chat(messages, model=None, **params) -> str` returns the first choice's text; extra
params (temperature, max_tokens, top_p, ...) go into the request body. Transport errors, 429 and
5xx are retried with exponential backoff and jitter; the API key is a SecretStr, never logged.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from typing import Any

import httpx
from pydantic import BaseModel, Field, SecretStr

log = logging.getLogger("pipeline.inference")


class InferenceConfig(BaseModel):
    base_url: str = Field("http://127.0.0.1:8000/v1", description="OpenAI-compatible endpoint (…/v1)")
    api_key: SecretStr | None = None
    model: str | None = Field(None, description="default model name")
    timeout_s: float = Field(60.0, gt=0)
    max_retries: int = Field(3, ge=0)


class InferenceError(RuntimeError):
    pass


def _retryable(status: int) -> bool:
    return status == 429 or status >= 500


def _body(
    config: InferenceConfig, messages: list[dict[str, Any]], model: str | None, params: dict[str, Any]
) -> dict[str, Any]:
    name = model or config.model
    if not name:
        raise InferenceError("no model given and [inference] model is not set")
    return {"model": name, "messages": messages, **params}


def _text(response: httpx.Response) -> str:
    try:
        content = response.json()["choices"][0]["message"]["content"]
    except (ValueError, KeyError, IndexError, TypeError) as exc:
        raise InferenceError(f"unexpected chat completion response: {response.text[:200]}") from exc
    return str(content or "")


class ChatClient:
    def __init__(self, config: InferenceConfig, *, transport: httpx.BaseTransport | None = None):
        self.config = config
        headers = {"Authorization": f"Bearer {config.api_key.get_secret_value()}"} if config.api_key else {}
        self._client = httpx.Client(
            base_url=config.base_url.rstrip("/"),
            headers=headers,
            timeout=config.timeout_s,
            transport=transport,
        )
        self._headers = headers
        self.retries = 0

    def __enter__(self) -> ChatClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._client.close()

    def chat(self, messages: list[dict[str, Any]], model: str | None = None, **params: Any) -> str:
        body = _body(self.config, messages, model, params)
        for attempt in range(self.config.max_retries + 1):
            try:
                response = self._client.post("/chat/completions", json=body)
            except httpx.TransportError as exc:
                problem = f"{type(exc).__name__}: {exc}"
            else:
                if response.status_code < 400:
                    return _text(response)
                problem = f"HTTP {response.status_code}: {response.text[:200]}"
                if not _retryable(response.status_code):
                    raise InferenceError(problem)
            if attempt == self.config.max_retries:
                raise InferenceError(f"chat completion failed after {attempt + 1} attempts: {problem}")
            self.retries += 1
            time.sleep(min(30.0, 0.5 * 2**attempt) * (0.5 + random.random() / 2))
        raise AssertionError("unreachable")

    async def achat(self, messages: list[dict[str, Any]], model: str | None = None, **params: Any) -> str:
        body = _body(self.config, messages, model, params)
        async with httpx.AsyncClient(
            base_url=self.config.base_url.rstrip("/"), headers=self._headers, timeout=self.config.timeout_s
        ) as client:
            for attempt in range(self.config.max_retries + 1):
                try:
                    response = await client.post("/chat/completions", json=body)
                except httpx.TransportError as exc:
                    problem = f"{type(exc).__name__}: {exc}"
                else:
                    if response.status_code < 400:
                        return _text(response)
                    problem = f"HTTP {response.status_code}: {response.text[:200]}"
                    if not _retryable(response.status_code):
                        raise InferenceError(problem)
                if attempt == self.config.max_retries:
                    raise InferenceError(f"chat completion failed after {attempt + 1} attempts: {problem}")
                self.retries += 1
                await asyncio.sleep(min(30.0, 0.5 * 2**attempt) * (0.5 + random.random() / 2))
        raise AssertionError("unreachable")
