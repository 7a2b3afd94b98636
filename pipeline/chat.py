"""Persona agents and the multi-agent chat: the code behind the TPOT persona agent module,
the chat environment module and `personas chat` (one implementation, three entry points).

A `PersonaAgent` answers as one persona through the inference client: its system prompt
comes from the persona file, the shared transcript becomes the conversation (its own turns
as `assistant`, everyone else's as `user`, prefixed with the speaker's name).

A `ChatEnvironment` runs several agents on a topic for N rounds. Every round each persona
speaks once; the policy picks the order: `round_robin` (fixed order) or `relevance` (next
is whoever's topics overlap most with the last turn, ties by order). It stops after
`rounds`, when the token budget is spent, when a turn contains a stop phrase, or when a
speaker repeats its previous turn verbatim (a degenerate loop).
"""

from __future__ import annotations

import re
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

import orjson

from pipeline.inference import ChatClient, InferenceError, Message, Usage
from pipeline.persona import Persona, system_prompt
from pipeline.store.atomic import atomic_write_bytes

Policy = Literal["round_robin", "relevance"]
WORD = re.compile(r"[a-z#][a-z0-9'\-]{2,}")


@dataclass
class Turn:
    speaker: str
    text: str
    round: int
    model: str = ""
    latency_s: float = 0.0
    prompt_tokens: int = 0
    completion_tokens: int = 0


@dataclass
class Transcript:
    topic: str
    participants: list[str]
    policy: str
    turns: list[Turn] = field(default_factory=list)
    stop_reason: str = ""
    wall_s: float = 0.0

    @property
    def completion_tokens(self) -> int:
        return sum(t.completion_tokens for t in self.turns)

    def to_dict(self) -> dict[str, Any]:
        return {
            "topic": self.topic,
            "participants": self.participants,
            "policy": self.policy,
            "stop_reason": self.stop_reason,
            "wall_s": round(self.wall_s, 3),
            "turns": [asdict(t) for t in self.turns],
        }

    def save_jsonl(self, path: Path) -> None:
        """One line per turn, after a header line with the topic, participants and stop reason."""
        header = {k: v for k, v in self.to_dict().items() if k != "turns"}
        lines = [orjson.dumps(header)] + [orjson.dumps(asdict(t)) for t in self.turns]
        atomic_write_bytes(path, b"\n".join(lines) + b"\n")


def clean_reply(text: str, name: str) -> str:
    """Strip what small models tend to add: a leading 'Name:' and surrounding whitespace."""
    text = text.strip()
    for prefix in (f"{name}:", f"@{name}:"):
        if text.lower().startswith(prefix.lower()):
            text = text[len(prefix) :].strip()
    return text


class PersonaAgent:
    """Answers as one persona. Stateless: everything it knows comes in each call."""

    def __init__(
        self,
        persona: Persona,
        client: ChatClient,
        *,
        model: str | None = None,
        max_tokens: int = 128,
        temperature: float | None = 0.8,
        extra_params: dict[str, Any] | None = None,
    ):
        self.persona = persona
        self.client = client
        self.model = model
        self.max_tokens = max_tokens
        self.temperature = temperature
        self.extra_params = extra_params or {}

    @property
    def name(self) -> str:
        return self.persona.name

    def served_model(self) -> str:
        """Its own model if set, else the client's mapping for the persona's name, else the default."""
        if self.model:
            return self.client.config.resolve_model(self.model)
        mapped = self.name in self.client.config.models
        return self.client.config.resolve_model(self.name if mapped else None)

    def messages(self, turns: Sequence[Turn], *, topic: str = "", question: str = "") -> list[Message]:
        extra = f"The conversation is about: {topic}. Reply in one short message." if topic else ""
        messages: list[Message] = [{"role": "system", "content": system_prompt(self.persona, extra=extra)}]
        for turn in turns:
            if turn.speaker == self.name:
                messages.append({"role": "assistant", "content": turn.text})
            else:
                messages.append({"role": "user", "content": f"{turn.speaker}: {turn.text}"})
        if question:
            messages.append({"role": "user", "content": question})
        elif not turns:
            messages.append({"role": "user", "content": f"Start the conversation about: {topic}"})
        elif messages[-1]["role"] == "assistant":
            messages.append({"role": "user", "content": "(your turn again; go on)"})
        return messages

    async def respond(
        self, turns: Sequence[Turn], *, topic: str = "", question: str = "", round: int = 0
    ) -> Turn:
        result = await self.client.achat_completion(
            self.messages(turns, topic=topic, question=question),
            model=self.served_model(),
            max_tokens=self.max_tokens,
            temperature=self.temperature,
            **self.extra_params,
        )
        return Turn(
            speaker=self.name,
            text=clean_reply(result.text, self.name),
            round=round,
            model=result.model,
            latency_s=result.latency_s,
            prompt_tokens=result.usage.prompt_tokens,
            completion_tokens=result.usage.completion_tokens,
        )


def _terms(text: str) -> set[str]:
    return set(WORD.findall(text.lower()))


def relevance(agent: PersonaAgent, text: str) -> int:
    """How many of the agent's topic terms the text mentions."""
    topics = {w for t in agent.persona.topics for w in _terms(t)}
    return len(topics & _terms(text))


class ChatEnvironment:
    """Several persona agents taking turns on a topic, with a shared transcript."""

    def __init__(
        self,
        agents: Sequence[PersonaAgent],
        topic: str,
        *,
        rounds: int = 6,
        policy: Policy = "round_robin",
        max_completion_tokens: int | None = None,
        stop_phrases: Sequence[str] = (),
        stop_on_repeat: bool = True,
    ):
        if len(agents) < 2:
            raise ValueError("a chat needs at least two personas")
        names = [a.name for a in agents]
        if len(set(names)) != len(names):
            raise ValueError(f"persona names must differ: {names}")
        if not topic.strip():
            raise ValueError("a chat needs a topic")
        if rounds < 1:
            raise ValueError("rounds must be at least 1")
        if policy not in ("round_robin", "relevance"):
            raise ValueError(f"unknown turn-taking policy {policy!r} (round_robin, relevance)")
        self.agents = list(agents)
        self.topic = topic.strip()
        self.rounds = rounds
        self.policy = policy
        self.max_completion_tokens = max_completion_tokens
        self.stop_phrases = [p.lower() for p in stop_phrases if p]
        self.stop_on_repeat = stop_on_repeat

    def next_speaker(self, transcript: Transcript, spoken: set[str]) -> PersonaAgent:
        waiting = [a for a in self.agents if a.name not in spoken]
        if self.policy == "round_robin" or not transcript.turns:
            return waiting[0]
        last = transcript.turns[-1]
        # Most relevant to the last turn; never the one who just spoke if someone else can go.
        others = [a for a in waiting if a.name != last.speaker] or waiting
        return max(others, key=lambda a: (relevance(a, last.text), -self.agents.index(a)))

    def _stop(self, transcript: Transcript, turn: Turn) -> str:
        if (
            self.max_completion_tokens is not None
            and transcript.completion_tokens >= self.max_completion_tokens
        ):
            return "token budget spent"
        lowered = turn.text.lower()
        if any(p in lowered for p in self.stop_phrases):
            return "stop phrase"
        previous = [t for t in transcript.turns[:-1] if t.speaker == turn.speaker]
        if self.stop_on_repeat and previous and previous[-1].text == turn.text:
            return f"{turn.speaker} repeated itself"
        return ""

    async def run(self, on_turn: Callable[[Turn], Awaitable[None] | None] | None = None) -> Transcript:
        transcript = Transcript(self.topic, [a.name for a in self.agents], self.policy)
        start = time.perf_counter()
        try:
            for round_no in range(1, self.rounds + 1):
                spoken: set[str] = set()
                while len(spoken) < len(self.agents):
                    agent = self.next_speaker(transcript, spoken)
                    turn = await agent.respond(transcript.turns, topic=self.topic, round=round_no)
                    spoken.add(agent.name)
                    transcript.turns.append(turn)
                    if on_turn is not None:
                        maybe = on_turn(turn)
                        if maybe is not None:
                            await maybe
                    reason = self._stop(transcript, turn)
                    if reason:
                        transcript.stop_reason = reason
                        return transcript
            transcript.stop_reason = f"{self.rounds} rounds"
            return transcript
        except InferenceError as exc:
            transcript.stop_reason = f"model error: {exc}"
            return transcript
        finally:
            transcript.wall_s = time.perf_counter() - start


def usage_of(turns: Sequence[Turn]) -> Usage:
    prompt = sum(t.prompt_tokens for t in turns)
    completion = sum(t.completion_tokens for t in turns)
    return Usage(prompt, completion, prompt + completion)
