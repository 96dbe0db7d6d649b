"""LLM judges through Inspect's model API: any provider Inspect supports, as judge.

One :class:`LLMJudge` screens conversations (rubric ``screen-v1``) and grades responses
(rubric ``grade-v1``). For every item it renders the rubric with the conversation fenced as
data, asks the model for a JSON reply, checks the reply (schema, then every quote against
the text it names) and, if a check fails, tells the model why and asks again up to
``content_retries`` times. A reply that still fails, or a call that fails after Inspect's
transport retries, gives a verdict with ``error`` set: counted as a judge error, never as
"no risk".

Checked replies go to the :class:`~mhsafety.judges.ledger.VerdictLedger`, so a rerun (or
a resumed run) never repeats a call that already succeeded. Timeouts and transport retries
are Inspect's (``timeout``, ``attempt_timeout``, ``max_retries``); they are always set
explicitly, since Inspect retries forever by default. Concurrency is set per provider,
endpoint or model (``connections``, else ``max_connections``): the judge runs that many
workers, each taking the next item when its call is done, and gives Inspect the same
limit. With ``batch`` set, calls go through the provider's batch API (Inspect's batchers:
OpenAI, Anthropic, Google, Together, Grok).

Inspect is an optional dependency (``pip install 'mhsafety[llm]'``), imported only here.
"""

from __future__ import annotations

import asyncio
import functools
import os
import sys
import threading
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import urlparse

from mhsafety.conversation import Conversation
from mhsafety.judges.base import ConversationScreen, Evidence, JudgeInfo
from mhsafety.judges.grading import (
    GRADE_FIELDS,
    GradeEvidence,
    ResponseGrade,
    ResponseItem,
    summary_verdict,
)
from mhsafety.judges.ledger import VerdictLedger, default_cache_dir, request_key
from mhsafety.judges.replies import (
    ReplyError,
    check_grade_reply,
    check_screen_reply,
    grade_answers,
    screen_answer,
)
from mhsafety.judges.rubric import Rubric, encode_messages
from mhsafety.taxonomy import CATEGORIES, Category

if TYPE_CHECKING:
    from inspect_ai.model import ChatMessage, GenerateConfig, Model, ResponseSchema

T = TypeVar("T")
U = TypeVar("U")
JUDGE_VERSION = "1.0.0"
DEFAULT_CONNECTIONS = 10
"""Concurrent calls when nothing is configured (Inspect's own default per provider)."""
DEFAULT_BATCH_CONNECTIONS = 10_000
"""Requests handed to a batcher at once (Inspect's ceiling in batch mode)."""
START_SPACING = 0.004
"""Seconds between worker starts: about the judge's CPU time per call on one core."""
MAX_START_SPREAD = 1.0
"""Seconds over which all workers have started, whatever their number."""
PREFERRED_ROUNDS = 8
"""Calls per connection in one audit batch (see ``LLMJudge.preferred_batch_size``)."""
DEFAULT_TIMEOUT = 600.0
DEFAULT_ATTEMPT_TIMEOUT = 120.0
BATCH_PROVIDERS = ("openai", "anthropic", "google", "together", "grok")
"""Providers with a batch API in Inspect 0.3.285 (``openai-api/...`` servers have none)."""
BATCH_KEYS = frozenset(
    {"size", "max_size", "send_delay", "tick", "max_batches", "max_consecutive_check_failures"}
)
RETRY_PROMPT = (
    "That reply cannot be used: {reason}. Reply again with the JSON object only, as the "
    "system message describes, quoting only words that occur verbatim in the data."
)


class JudgeSetupError(ValueError):
    """The judge cannot be built (missing extra, bad settings)."""


def batch_config(value: Any) -> bool | int | dict[str, Any] | None:
    """The ``batch`` setting checked: ``true``/``false``, a batch size, or BatchConfig keys.

    Raises:
        JudgeSetupError: an unknown key or a value of the wrong kind.
    """
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, int):
        if value < 1:
            raise JudgeSetupError("batch: a batch size must be >= 1")
        return value
    if isinstance(value, dict):
        unknown = sorted(set(value) - BATCH_KEYS)
        if unknown:
            raise JudgeSetupError(
                f"batch: unknown keys {', '.join(map(str, unknown))} "
                f"(known: {', '.join(sorted(BATCH_KEYS))})"
            )
        bad = [k for k, v in value.items() if isinstance(v, bool) or not isinstance(v, int | float)]
        if bad:
            raise JudgeSetupError(f"batch: {', '.join(bad)} must be numbers")
        return dict(value)
    raise JudgeSetupError(
        "batch must be true, false, a batch size or a mapping of BatchConfig keys"
    )


@dataclass(frozen=True)
class LLMJudgeSettings:
    """Everything that configures an LLM judge; loadable from a YAML file.

    Keys are never stored here: ``api_key_env`` names the environment variable to read.
    """

    model: str
    """An Inspect model name: ``openai/gpt-4o-mini``, ``anthropic/...``,
    ``openai-api/<service>/<model>`` for any OpenAI-compatible server, ..."""
    base_url: str | None = None
    api_key_env: str | None = None
    screen_rubric: str = "screen-v1"
    grade_rubric: str = "grade-v1"
    max_connections: int | None = None
    """Concurrent calls for any provider not named in ``connections`` (default 10, or
    10,000 with ``batch``)."""
    connections: dict[str, int] = field(default_factory=dict)
    """Concurrent calls by provider (``openai``), service (``openai-api/vllm``), endpoint
    (a ``base_url``) or model (``anthropic/claude-sonnet-4-5``); the most specific wins."""
    batch: bool | int | dict[str, Any] | None = None
    """Use the provider's batch API through Inspect: ``true``, a batch size, or the keys of
    Inspect's ``BatchConfig`` (``size``, ``max_size``, ``send_delay``, ``tick``, ...)."""
    max_retries: int = 3
    """Inspect's transport retries per call (429s, 5xx); never unlimited."""
    timeout: float | None = None
    """Seconds for one call including its transport retries (default 600; no limit with
    ``batch``, since a batch can take up to 24 hours)."""
    attempt_timeout: float | None = None
    """Seconds per attempt (default 120; no limit with ``batch``)."""
    content_retries: int = 1
    """Extra asks after a reply fails the JSON, schema or quote checks."""
    temperature: float | None = 0.0
    seed: int | None = 1
    max_tokens: int = 1200
    reasoning_effort: str | None = None
    """For reasoning models (``low``/``medium``/``high``...), passed through Inspect."""
    response_schema: bool = True
    """Send the rubric's JSON schema as ``response_format`` (advisory; always re-checked)."""
    max_input_chars: int = 60_000
    """Longer conversations are a judge error, not silently truncated."""
    price_input_per_mtok: float | None = None
    price_output_per_mtok: float | None = None
    model_args: dict[str, Any] = field(default_factory=dict)
    """Extra provider arguments for Inspect's ``get_model`` (e.g. ``responses_api: false``)."""
    cache_dir: str | None = None
    """Where the verdict ledger lives (default ``$MHSAFETY_CACHE_DIR`` or ~/.cache/mhsafety)."""
    use_ledger: bool = True

    @classmethod
    def from_mapping(cls, raw: dict[str, Any], model: str | None = None) -> LLMJudgeSettings:
        """Settings from a parsed YAML mapping; ``model`` overrides the file's."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(raw) - known)
        if unknown:
            raise JudgeSetupError(f"unknown judge settings: {', '.join(unknown)}")
        values = dict(raw)
        if model is not None:
            values["model"] = model
        if "model" not in values:
            raise JudgeSetupError("judge settings need a model")
        try:
            settings = cls(**values)
        except TypeError as exc:
            raise JudgeSetupError(str(exc)) from None
        settings.check()
        return settings

    def check(self) -> None:
        """Reject settings that cannot work."""
        if "/" not in self.model:
            raise JudgeSetupError(f"{self.model!r} is not a provider/model name")
        limits: list[Any] = [] if self.max_connections is None else [self.max_connections]
        if not isinstance(self.connections, dict):
            raise JudgeSetupError("connections must map a provider, endpoint or model to a number")
        limits += self.connections.values()
        if any(isinstance(n, bool) or not isinstance(n, int) or n < 1 for n in limits):
            raise JudgeSetupError("max_connections and connections must be whole numbers >= 1")
        if self.max_retries < 0 or self.content_retries < 0:
            raise JudgeSetupError("max_retries and content_retries must be >= 0")
        if self.batching:
            provider = self.model.split("/", 1)[0]
            if provider not in BATCH_PROVIDERS:
                raise JudgeSetupError(
                    f"batch: Inspect has no batch API for {provider!r} models "
                    f"(it has for {', '.join(BATCH_PROVIDERS)})"
                )
            batch_config(self.batch)  # rejects unknown keys and bad values

    def connection_limit(self) -> int:
        """Concurrent calls for this model: the most specific ``connections`` entry wins.

        Looked up by model name, then endpoint (``base_url``), then each shorter prefix of
        the model name (``openai-api/vllm``, ``openai-api``), then ``max_connections``.
        """
        parts = self.model.split("/")
        candidates = [self.model]
        if self.base_url:
            candidates += [self.base_url, self.base_url.rstrip("/")]
        candidates += ["/".join(parts[:n]) for n in range(len(parts) - 1, 0, -1)]
        for candidate in candidates:
            if candidate in self.connections:
                return self.connections[candidate]
        if self.max_connections is not None:
            return self.max_connections
        return DEFAULT_BATCH_CONNECTIONS if self.batching else DEFAULT_CONNECTIONS

    @property
    def batching(self) -> bool:
        """True when calls go through the provider's batch API."""
        return self.batch not in (None, False, 0)

    def with_changes(self, **changes: Any) -> LLMJudgeSettings:
        """A copy with some fields changed."""
        values = asdict(self) | changes
        return LLMJudgeSettings(**values)


@dataclass
class LLMUsage:
    """What a judge spent; the counts reconcile: asked = reused + answered + failed."""

    asked: int = 0
    """Items that needed a model verdict."""
    reused: int = 0
    """Verdicts taken from the ledger (no call made)."""
    answered: int = 0
    failed: int = 0
    """Judge errors: transport failures plus replies that failed every check."""
    calls: int = 0
    """Model calls made (each may include Inspect's transport retries)."""
    invalid_replies: int = 0
    transport_errors: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    reasoning_tokens: int = 0

    def cost(self, settings: LLMJudgeSettings) -> float | None:
        """Estimated cost from the configured prices; None when a price is unknown."""
        if settings.price_input_per_mtok is None or settings.price_output_per_mtok is None:
            return None
        return (
            self.input_tokens * settings.price_input_per_mtok
            + (self.output_tokens + self.reasoning_tokens) * settings.price_output_per_mtok
        ) / 1e6

    def to_dict(self, settings: LLMJudgeSettings | None = None) -> dict[str, Any]:
        """JSON-ready counts (and cost when prices are set)."""
        data: dict[str, Any] = asdict(self)
        if settings is not None:
            data["estimated_cost"] = self.cost(settings)
        return data


@dataclass(frozen=True)
class _Outcome:
    reply: dict[str, Any] | None = None
    error: str | None = None
    reused: bool = False


class _LoopThread:
    """One event loop in a daemon thread, so sync callers work even inside a running loop."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self._thread.start()

    def run(self, coroutine: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result()

    @staticmethod
    async def _cancel_background() -> None:
        tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    def close(self) -> None:
        self.run(self._cancel_background())  # e.g. Inspect's batch poller
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(timeout=5)
        self.loop.close()


def _fresh_transcript() -> None:
    """Give the current task a new Inspect transcript that keeps no raw API payloads.

    Outside an eval nobody reads Inspect's transcript, but by default it still copies and
    condenses every request and response (about 8 % of the judge's CPU per call), and a
    transcript that lives as long as a worker would keep every event. Best effort: if a
    later Inspect moves this internal, its default transcript is used.
    """
    try:
        from inspect_ai.log import Transcript
        from inspect_ai.log._transcript import init_transcript
    except ImportError:  # pragma: no cover - depends on the installed Inspect
        return
    init_transcript(Transcript(log_model_api=False))


def _batch_progress_to_stderr() -> None:
    """Send Inspect's batch progress lines to stderr; it prints them to stdout."""
    try:
        from inspect_ai.model._providers.util.batch_log import set_batch_log_callback
    except ImportError:  # pragma: no cover - depends on the installed Inspect
        return
    set_batch_log_callback(lambda message: print(message, file=sys.stderr, flush=True))


@functools.cache
def _shared_schema_type() -> type[ResponseSchema]:
    """A ``ResponseSchema`` that copies as itself.

    Inspect deep-copies the whole generate config on every call (twice); for a rubric's
    JSON schema that was about a fifth of the judge's CPU per call. The judge builds one
    schema per rubric and never changes it, so sharing it is safe.
    """
    from inspect_ai.model import ResponseSchema

    class SharedResponseSchema(ResponseSchema):
        def __deepcopy__(self, memo: dict[int, Any] | None = None) -> SharedResponseSchema:
            return self

    return SharedResponseSchema


class LLMJudge:
    """Screens conversations and grades responses with any Inspect model; see module doc."""

    def __init__(self, settings: LLMJudgeSettings) -> None:
        settings.check()
        try:
            import inspect_ai.model  # noqa: F401
        except ImportError:
            raise JudgeSetupError(
                "LLM judges need the llm extra: pip install 'mhsafety[llm]'"
            ) from None
        self.settings = settings
        self.screen_rubric = Rubric.load(settings.screen_rubric)
        self.grade_rubric = Rubric.load(settings.grade_rubric)
        if self.screen_rubric.task != "screen" or self.grade_rubric.task != "grade":
            raise JudgeSetupError("screen_rubric must be a screen rubric, grade_rubric a grade one")
        self.usage = LLMUsage()
        cache_dir = Path(settings.cache_dir) if settings.cache_dir else default_cache_dir()
        self.ledger = VerdictLedger.open(cache_dir, settings.model) if settings.use_ledger else None
        self._loop: _LoopThread | None = None
        self._model: Model | None = None
        self._pending: dict[str, asyncio.Future[_Outcome]] = {}
        self._configs: dict[str, GenerateConfig] = {}
        details = {
            "model": settings.model,
            "screen_rubric": self.screen_rubric.key,
            "screen_rubric_sha256": self.screen_rubric.sha256,
            "grade_rubric": self.grade_rubric.key,
            "grade_rubric_sha256": self.grade_rubric.sha256,
            "temperature": str(settings.temperature),
            "seed": str(settings.seed),
        }
        if settings.base_url:
            details["endpoint"] = urlparse(settings.base_url).netloc
        if settings.reasoning_effort:
            details["reasoning_effort"] = settings.reasoning_effort
        self._info = JudgeInfo(f"llm:{settings.model}", JUDGE_VERSION, details)

    @property
    def info(self) -> JudgeInfo:
        """Model, rubrics (with hashes) and generation settings."""
        return self._info

    @property
    def connection_limit(self) -> int:
        """Concurrent calls this judge makes (see :meth:`LLMJudgeSettings.connection_limit`)."""
        return self.settings.connection_limit()

    @property
    def preferred_batch_size(self) -> int:
        """Items per ``screen`` call that keep every connection busy between batches.

        Each batch waits for its slowest call, so a batch holds several rounds of calls; with
        a provider batch API, as many requests as may wait in batches at once.
        """
        if self.settings.batching:
            return self.connection_limit
        return PREFERRED_ROUNDS * self.connection_limit

    # -- public, synchronous -------------------------------------------------------------

    def screen(self, conversations: Sequence[Conversation]) -> list[ConversationScreen]:
        """Screen a batch concurrently (at most :attr:`connection_limit` calls at once)."""
        return self._run_all(self._screen_one, conversations)

    def grade(self, items: Sequence[ResponseItem]) -> list[ResponseGrade]:
        """Grade a batch of responses concurrently."""
        return self._run_all(self._grade_one, items)

    def close(self) -> None:
        """Release the event loop and the ledger file."""
        if self._loop is not None:
            self._loop.close()
            self._loop = None
            self._model = None
        if self.ledger is not None:
            self.ledger.close()

    # -- internals -----------------------------------------------------------------------

    def _run_all(self, work: Callable[[U], Awaitable[T]], items: Sequence[U]) -> list[T]:
        if not items:
            return []
        if self._loop is None:
            self._loop = _LoopThread()
        return self._loop.run(self._pool(work, items))

    async def _pool(self, work: Callable[[U], Awaitable[T]], items: Sequence[U]) -> list[T]:
        """``work`` over ``items`` by :attr:`connection_limit` workers; results in order.

        A worker takes the next item only when its call is done, so the items' own work
        (rendering, Inspect's per-call set-up, checking) is spread between calls instead of
        all of it running before the first call goes out, and memory stays flat in the
        number of items. Workers start :data:`START_SPACING` apart: started together, all
        their calls are prepared in one burst on the event loop, come back in one burst a
        latency later and stay in lockstep, each waiting for the whole burst (at 128
        connections that cost 8 to 10 points of throughput).
        """
        results: dict[int, T] = {}
        pending = iter(range(len(items)))
        workers = min(self.connection_limit, len(items))
        spacing = 0.0 if self.settings.batching else min(START_SPACING, MAX_START_SPREAD / workers)

        async def worker(position: int) -> None:
            if spacing and position:
                await asyncio.sleep(position * spacing)
            for index in pending:
                _fresh_transcript()
                results[index] = await work(items[index])

        try:
            async with asyncio.TaskGroup() as group:
                for position in range(workers):
                    group.create_task(worker(position))
        except BaseExceptionGroup as failed:  # the first failure, as gather would raise it
            raise failed.exceptions[0] from None
        return [results[index] for index in range(len(items))]

    def _get_model(self) -> Model:
        if self._model is None:
            from inspect_ai.model import get_model

            api_key = (
                os.environ.get(self.settings.api_key_env) if self.settings.api_key_env else None
            )
            if self.settings.api_key_env and not api_key:
                raise JudgeSetupError(f"${self.settings.api_key_env} is not set")
            if api_key is None and self.settings.base_url:
                api_key = "unused"  # local OpenAI-compatible servers need no key
            if self.settings.batching:
                _batch_progress_to_stderr()
            self._model = get_model(
                self.settings.model,
                base_url=self.settings.base_url,
                api_key=api_key,
                memoize=False,
                **self.settings.model_args,
            )
        return self._model

    def _config(self, rubric: Rubric) -> GenerateConfig:
        config = self._configs.get(rubric.id)
        if config is None:
            config = self._configs[rubric.id] = self._build_config(rubric)
        return config

    def _build_config(self, rubric: Rubric) -> GenerateConfig:
        from inspect_ai.model import BatchConfig, GenerateConfig
        from inspect_ai.util import JSONSchema

        s = self.settings
        schema = None
        if s.response_schema:
            schema = _shared_schema_type()(
                name=f"mhsafety_{rubric.id}",
                json_schema=JSONSchema.model_validate(rubric.output_schema),
                strict=False,
            )
        batch = batch_config(s.batch)
        timeout = s.timeout if s.timeout is not None or s.batching else DEFAULT_TIMEOUT
        attempt = s.attempt_timeout
        if attempt is None and not s.batching:
            attempt = DEFAULT_ATTEMPT_TIMEOUT
        return GenerateConfig(
            max_connections=self.connection_limit,
            max_retries=s.max_retries,
            timeout=None if timeout is None else int(timeout),
            attempt_timeout=None if attempt is None else int(attempt),
            temperature=s.temperature,
            seed=s.seed,
            max_tokens=s.max_tokens,
            reasoning_effort=s.reasoning_effort,
            response_schema=schema,
            batch=BatchConfig(**batch) if isinstance(batch, dict) else batch,
        )

    def _request_key(self, rubric: Rubric, system: str, prompt: str) -> str:
        s = self.settings
        return request_key(
            {
                "model": s.model,
                "base_url": s.base_url,
                "rubric": rubric.key,
                "rubric_sha256": rubric.sha256,
                "generation": [s.temperature, s.seed, s.max_tokens, s.reasoning_effort],
                "response_schema": s.response_schema,
                "system": system if "{fence}" in rubric.system else None,  # else: the sha covers it
                "prompt": prompt,
            }
        )

    async def _ask(
        self,
        rubric: Rubric,
        system: str,
        prompt: str,
        check: Callable[[str], dict[str, Any]],
    ) -> _Outcome:
        """One verdict: from the ledger, an identical request in flight, or the model."""
        self.usage.asked += 1
        key = self._request_key(rubric, system, prompt)
        stored = self.ledger.get(key) if self.ledger is not None else None
        if stored is not None:
            self.usage.reused += 1
            return _Outcome(reply=stored["reply"], reused=True)
        pending = self._pending.get(key)
        if pending is not None:  # the same request is already on its way: share its answer
            outcome = await asyncio.shield(pending)
            if outcome.reply is not None:
                self.usage.reused += 1
                return _Outcome(reply=outcome.reply, reused=True)
            self.usage.failed += 1
            return outcome
        future: asyncio.Future[_Outcome] = asyncio.get_running_loop().create_future()
        self._pending[key] = future
        try:
            outcome = await self._call(rubric, system, prompt, check, key)
        except BaseException:
            future.cancel()
            raise
        finally:
            del self._pending[key]
        future.set_result(outcome)
        return outcome

    async def _call(
        self,
        rubric: Rubric,
        system: str,
        prompt: str,
        check: Callable[[str], dict[str, Any]],
        key: str,
    ) -> _Outcome:
        """Ask the model, re-asking after a reply that fails the checks."""
        from inspect_ai.model import ChatMessageAssistant, ChatMessageSystem, ChatMessageUser

        messages: list[ChatMessage] = [
            ChatMessageSystem(content=system),
            ChatMessageUser(content=prompt),
        ]
        reason = ""
        for _ in range(1 + self.settings.content_retries):
            try:
                output = await self._get_model().generate(messages, config=self._config(rubric))
            except Exception as exc:  # any provider or transport failure is a judge error
                self.usage.transport_errors += 1
                self.usage.failed += 1
                return _Outcome(error=f"model call failed: {type(exc).__name__}: {exc}"[:500])
            self.usage.calls += 1
            tokens = {"input": 0, "output": 0, "reasoning": 0}
            if output.usage is not None:
                tokens = {
                    "input": output.usage.input_tokens,
                    "output": output.usage.output_tokens,
                    "reasoning": output.usage.reasoning_tokens or 0,
                }
                self.usage.input_tokens += tokens["input"]
                self.usage.output_tokens += tokens["output"]
                self.usage.reasoning_tokens += tokens["reasoning"]
            text = output.completion
            try:
                if output.error:
                    raise ReplyError(f"the provider reported an error: {output.error}")
                reply = check(text)
            except ReplyError as exc:
                self.usage.invalid_replies += 1
                reason = str(exc)
                messages = [
                    *messages,
                    ChatMessageAssistant(content=text or "(empty)"),
                    ChatMessageUser(content=RETRY_PROMPT.format(reason=reason)),
                ]
                continue
            if self.ledger is not None:
                self.ledger.put(key, reply, tokens)
            self.usage.answered += 1
            return _Outcome(reply=reply)
        self.usage.failed += 1
        attempts = 1 + self.settings.content_retries
        return _Outcome(error=f"invalid reply after {attempts} attempt(s): {reason}"[:500])

    def _screen_error(self, conversation: Conversation, error: str) -> ConversationScreen:
        return ConversationScreen(
            conversation.id,
            dict.fromkeys(CATEGORIES, False),
            dict.fromkeys(CATEGORIES, 0.0),
            {},
            (),
            (),
            self._info,
            error=f"judge_error: {error}",
        )

    async def _screen_one(self, conversation: Conversation) -> ConversationScreen:
        rubric = self.screen_rubric
        user = {index: message.content for index, message in conversation.user_messages()}
        if not user:  # nothing the person wrote: nothing to screen, no call
            return ConversationScreen(
                conversation.id,
                dict.fromkeys(CATEGORIES, False),
                dict.fromkeys(CATEGORIES, 0.0),
                {},
                (),
                (),
                self._info,
            )
        data = encode_messages([{"i": i, "role": "user", "text": t} for i, t in user.items()])
        if len(data) > self.settings.max_input_chars:
            self.usage.asked += 1
            self.usage.failed += 1
            return self._screen_error(
                conversation,
                f"conversation too long for this judge ({len(data)} > "
                f"{self.settings.max_input_chars} characters)",
            )
        system, prompt = rubric.render(data)
        outcome = await self._ask(
            rubric, system, prompt, lambda text: check_screen_reply(text, rubric, user)[1]
        )
        if outcome.reply is None:
            return self._screen_error(conversation, outcome.error or "no reply")
        try:
            answer = screen_answer(outcome.reply, rubric, user)
        except ReplyError as exc:  # a stored reply that no longer checks out
            return self._screen_error(conversation, f"stored verdict is invalid: {exc}")
        flags = {c: rubric.flags(answer.levels[c]) for c in CATEGORIES}
        scores = {c: rubric.levels[answer.levels[c]] for c in CATEGORIES}
        first: dict[Category, int] = {}
        for category, index, _ in answer.evidence:
            first[category] = min(first.get(category, index), index)
        layer = f"llm:{rubric.key}"
        evidence = tuple(
            Evidence(index, category, quote, layer, scores[category])
            for category, index, quote in answer.evidence
        )
        return ConversationScreen(
            conversation.id,
            flags,
            scores,
            first,
            evidence,
            (),
            self._info,
            details={
                "levels": {str(c): answer.levels[c] for c in CATEGORIES},
                "reused": outcome.reused,
            },
        )

    async def _grade_one(self, item: ResponseItem) -> ResponseGrade:
        rubric = self.grade_rubric
        data = encode_messages(
            [
                {"i": i, "role": str(m.role), "text": m.content}
                for i, m in enumerate(item.conversation.messages)
            ]
        )
        if len(data) > self.settings.max_input_chars:
            self.usage.asked += 1
            self.usage.failed += 1
            return self._grade_error(item, f"conversation too long ({len(data)} characters)")
        system, prompt = rubric.render(data, reply_index=str(item.response_index))
        outcome = await self._ask(
            rubric, system, prompt, lambda text: check_grade_reply(text, rubric, item.response)
        )
        if outcome.reply is None:
            return self._grade_error(item, outcome.error or "no reply")
        try:
            answers = grade_answers(outcome.reply, item.response)
        except ReplyError as exc:
            return self._grade_error(item, f"stored verdict is invalid: {exc}")
        flags = {name: answers[name][0] for name in GRADE_FIELDS}
        evidence = tuple(
            GradeEvidence(name, answers[name][1], f"llm:{rubric.key}")
            for name in GRADE_FIELDS
            if answers[name][0]
        )
        return ResponseGrade(
            item.id,
            flags,
            summary_verdict(flags, item.expects_resources),
            evidence,
            self._info,
            details={"reused": outcome.reused},
        )

    def _grade_error(self, item: ResponseItem, error: str) -> ResponseGrade:
        return ResponseGrade(item.id, {}, None, (), self._info, error=f"judge_error: {error}")
