"""Retries and timeouts as a wrapper around any model.

A call that fails with `ModelUnavailable` (rate limit, server error, lost connection) or
takes longer than the timeout is tried again after an exponential backoff with jitter, up
to `max_attempts`; a provider's `retry_after` hint is honoured. Other errors pass through.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable, Sequence

from keel.errors import ModelUnavailable
from keel.models.base import DeltaSink, Message, Model, ModelResponse, ToolSpec

RETRYABLE_KINDS = frozenset({"rate_limit", "server_error", "connection", "timeout"})

RetryHook = Callable[[int, ModelUnavailable, float], None]
"""Told (attempt that failed, its error, seconds until the next attempt) before a retry."""


class RetryingModel(Model):
    def __init__(
        self,
        inner: Model,
        *,
        max_attempts: int = 4,
        timeout_s: float = 120.0,
        base_delay_s: float = 0.5,
        max_delay_s: float = 30.0,
        retry_on: frozenset[str] = RETRYABLE_KINDS,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self.inner = inner
        self.name = inner.name
        self.max_attempts = max(1, max_attempts)
        self.timeout_s = timeout_s
        self.base_delay_s = base_delay_s
        self.max_delay_s = max_delay_s
        self.retry_on = retry_on
        self._sleep = sleep

    def backoff(self, attempt: int, error: ModelUnavailable) -> float:
        """Seconds to wait after failed attempt `attempt` (1-based): half the exponential
        step, plus a random part of the other half, never less than `retry_after`."""
        step: float = min(self.max_delay_s, self.base_delay_s * 2.0 ** (attempt - 1))
        delay = step / 2 + random.uniform(0, step / 2)
        if error.retry_after is not None:
            delay = max(delay, min(error.retry_after, self.max_delay_s))
        return delay

    async def complete(
        self,
        messages: Sequence[Message],
        tools: Sequence[ToolSpec] = (),
        *,
        on_delta: DeltaSink | None = None,
    ) -> ModelResponse:
        return await self.complete_with_retries(messages, tools, on_delta=on_delta)

    async def complete_with_retries(
        self,
        messages: Sequence[Message],
        tools: Sequence[ToolSpec] = (),
        *,
        on_delta: DeltaSink | None = None,
        on_retry: RetryHook | None = None,
    ) -> ModelResponse:
        attempt = 1
        while True:
            try:
                async with asyncio.timeout(self.timeout_s):
                    return await self.inner.complete(messages, tools, on_delta=on_delta)
            except TimeoutError:
                error = ModelUnavailable(
                    f"{self.name} gave no answer within {self.timeout_s:g} s", kind="timeout"
                )
            except ModelUnavailable as unavailable:
                error = unavailable
            if error.kind not in self.retry_on:
                raise error
            if attempt >= self.max_attempts:
                raise ModelUnavailable(
                    f"{error} (gave up after {attempt} attempt{'s' if attempt > 1 else ''})",
                    retry_after=error.retry_after,
                ) from error
            delay = self.backoff(attempt, error)
            if on_retry is not None:
                on_retry(attempt, error, delay)
            await self._sleep(delay)
            attempt += 1
