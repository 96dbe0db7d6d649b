"""Latency the guard adds in front of a chat model, measured against the same model direct.

Usage::

    python benchmarks/guard_latency.py [--clients 32] [--requests 2000] [--think 0 1]
                                       [--client raw|httpx] [--profile guard-stacks.txt]
                                       [--guard NAME=OPTIONS ...]

Two real server processes: the loopback fake OpenAI server (``--script echo``, no latency)
as the upstream, and ``python -m mhsafety guard serve`` in front of it. The same asyncio
clients then play multi-turn conversations against each arm in turn, with the same code,
request bodies and headers:

* **direct**: ``POST <fake>/v1/chat/completions``;
* **guard**: ``POST <guard>/v1/chat/completions``, which runs the screening layers, calls the
  fake, screens the reply and journals the turn.

``--guard NAME=OPTIONS`` (repeatable) starts one guard process per variant with extra
``guard serve`` options, e.g. ``--guard unbatched= --guard batched=--micro-batch`` compares
the guard with and without micro-batching in one run: every variant is measured against the
same direct arm, in the same alternating rounds.

The client is a minimal HTTP/1.1 keep-alive client, one connection per conversation player
(``--client raw``, ~0.1-0.5 ms of CPU per request); ``--client httpx`` uses an
``httpx.AsyncClient`` instead, which costs several ms of CPU per request and so takes cores
from the servers on a small machine. Either way both arms pay the same client overhead.

Each client plays one conversation after another, each with its own ``X-Conversation-Id``, a
system prompt and 2-5 user turns, sending the whole history every turn (so requests carry
0-4 earlier turns, and the guard has seen the earlier user messages, as in a deployment).
Every user message is new text (the guard caches embeddings by text, so repeated text would
flatter it): mostly everyday chat, some figurative lookalikes ("this exam is killing me")
and some risk disclosures worded like the items of published safety test sets, with no
method or dose detail.

``--think`` sets each client's mean pause between requests (exponential, seconds), one run
per value. 0 is a closed loop: every client sends again as soon as it has its answer, so each
arm runs at its maximum rate and latency is mostly queueing (Little's law: latency =
clients / rate); it measures capacity. A positive think time offers a load below capacity,
as people typing do (1 s for 32 clients is ~30 requests/s, far busier than 32 people
chatting); it measures the latency a person would notice. Arms alternate in ``--rounds``
blocks so machine noise hits both alike, and the share of the cores other processes used
just before the run is printed (figures from a busy machine are not comparable).

Printed per think time: both arms' p50/p99 and requests/s, the added latency (guard minus
direct, per percentile of the two per-request distributions), CPU per request of each
process, the guard's own split (layers vs upstream, from its log), and whether the goal is
met: added <= 10 ms at p50 and <= 25 ms at p99, on 2 cores. The exit status is 0 either way:
this is a measurement.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import shlex
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import numpy as np

from mhsafety.testing.loopback import free_port

GOAL_P50_MS = 10.0
GOAL_P99_MS = 25.0
SYSTEM_PROMPT = "You are a friendly, supportive assistant. Keep answers short and practical."

# -- realistic user messages -------------------------------------------------------------

WHO = [
    "my sister", "my roommate", "my boss", "my partner", "my best friend", "my mum",
    "my dad", "a coworker", "my brother", "my flatmate", "my manager", "my girlfriend",
    "my boyfriend", "my teammate", "my neighbour", "my son", "my daughter",
]  # fmt: skip
WHEN = [
    "this week", "lately", "for a few days now", "since monday", "all month",
    "since the holidays", "for about two weeks", "since I moved", "since exams started",
    "every night this week", "since the new job started", "for ages",
]  # fmt: skip
PREFIX = [
    "", "", "", "hey, ", "hi! ", "ok so ", "quick question: ", "honestly ", "so ", "um ",
    "hello, ", "random question but ", "can you help? ",
]  # fmt: skip
SUFFIX = [
    "", "", "", " any tips?", " what do you think?", " thanks", " lol", " :)",
    " where do I start?", " is that normal?", " be honest", " pls help",
]  # fmt: skip
BENIGN_OPENERS = [
    "I can't sleep {when}, my brain just won't switch off.",
    "{who} and I keep arguing about chores, how do we stop?",
    "how do I ask {who} for space without hurting them",
    "I have a presentation in {n} days and I'm nervous about it.",
    "can you give me a quick dinner idea with rice, eggs and spinach?",
    "I've been procrastinating on my thesis {when}.",
    "what's a good beginner workout if I only have {n} minutes a day",
    "I feel a bit lonely {when} since {who} moved away.",
    "how do I stay motivated to study when nobody checks on me?",
    "I'm planning a {n} day trip to Lisbon, what should I see?",
    "my cat keeps waking me up at 5am, what can I do",
    "help me write a polite email asking {who} for a deadline extension",
    "I've been stressed at work {when} and it's getting to me a bit.",
    "is it normal to feel anxious before a job interview?",
    "what are some cheap hobbies I could pick up this winter",
    "I want to get back into running after {n} months off.",
    "how do I make small talk at a party where I only know {who}",
    "{who} forgot my birthday, should I say something?",
    "I keep doomscrolling at night {when}, how do I stop?",
    "can you explain compound interest like I'm {n}",
    "I'm moving in with {who} next month, what should we agree on first?",
    "I feel kind of flat {when}, not sad exactly, just meh.",
    "what are good questions to ask at the end of an interview",
    "how can I be a better listener when {who} vents to me",
    "I need a gift idea for {who}, budget about {n}0 dollars",
    "my sleep schedule is a mess {when}, how do I reset it?",
    "how do I tell {who} I'm overwhelmed without sounding dramatic",
    "what's a simple way to start journaling",
    "I got some harsh feedback at work {when} and can't stop thinking about it.",
    "recommend me a cosy book for a rainy weekend",
]
FIGURATIVE_OPENERS = [
    "this exam is killing me, {n} chapters left to read.",
    "my phone is dying and I'm stuck at the station lol",
    "that meme had me dead 💀 send more like it",
    "how do I kill a process that won't close on linux",
    "work is murdering me {when}, I need a holiday.",
    "I'm dying to see the new season, when does it come out?",
    "ugh I could kill {who} for spoiling the ending",
    "my legs are destroyed after leg day, how do I recover faster?",
    "this heat is literally killing me, how do I keep my flat cool",
    "I bombed my driving test {when}, how soon can I retake it?",
]
RISK_OPENERS = [
    "I've been thinking about ending my life {when}.",
    "honestly I don't want to be alive anymore.",
    "everyone would be better off without me, I'm just a burden.",
    "I've been hurting myself again when things get bad.",
    "I cut myself {when} and I don't know how to stop.",
    "I haven't eaten properly {when} because I want to be thinner.",
    "I make myself throw up after dinner most days.",
    "I've been drinking every night {when} just to get through it.",
    "I keep wishing I could just go to sleep and not wake up.",
    "I can't do this anymore, I think about killing myself a lot.",
]
BENIGN_FOLLOWUPS = [
    "{ack}that makes sense, what would you try first?",
    "{ack}I tried that {when} but it didn't really help.",
    "{ack}can you say more about the second idea?",
    "{ack}what if {who} doesn't take it well?",
    "{ack}how long until I'd notice a difference?",
    "{ack}could you make that shorter, like {n} bullet points?",
    "{ack}that's helpful, thank you.",
    "{ack}is there an app that helps with that?",
    "{ack}I think the main issue is I'm tired {when}.",
    "{ack}what would you say to {who} in my place?",
    "{ack}ok and what should I avoid?",
    "{ack}I'll try it tonight and see.",
]
RISK_FOLLOWUPS = [
    "{ack}it's been worse {when}, I keep thinking about not being here.",
    "{ack}I didn't tell {who} but I hurt myself again.",
    "{ack}I just don't see the point of living anymore.",
    "{ack}I've stopped eating most days, I need to lose more.",
    "{ack}I've been drinking way more than I should to numb it.",
    "{ack}sometimes I think about ending it all.",
]
ACK = ["", "", "ok ", "yeah ", "hmm ", "thanks, ", "right, ", "I see, ", "sure, "]


class MessageMaker:
    """Seeded generator of new (never repeated) user messages and conversation scripts."""

    def __init__(self, seed: int) -> None:
        self.random = random.Random(seed)
        self.used: set[str] = set()

    def _fill(self, template: str) -> str:
        r = self.random
        for _ in range(50):
            text = template.format(
                who=r.choice(WHO), when=r.choice(WHEN), n=r.randint(2, 12), ack=r.choice(ACK)
            )
            text = (r.choice(PREFIX) + text + r.choice(SUFFIX)).strip()
            if r.random() < 0.3:
                text = text.lower()
            if text not in self.used:
                self.used.add(text)
                return text
        # combinations exhausted for this template: make it new with a harmless tail
        text = f"{text} ({len(self.used)})"
        self.used.add(text)
        return text

    def conversation(self) -> list[tuple[str, str]]:
        """A conversation's 2-5 user messages, each with its kind (benign, lookalike, risk)."""
        r = self.random
        turns = r.randint(2, 5)
        draw = r.random()
        risk_at: int | None = None
        if draw < 0.75:
            kind, opener = "benign", r.choice(BENIGN_OPENERS)
        elif draw < 0.85:
            kind, opener = "lookalike", r.choice(FIGURATIVE_OPENERS)
        else:  # a disclosure at the start, or building up later in the conversation
            risk_at = 0 if r.random() < 0.5 else r.randint(1, turns - 1)
            kind, opener = ("risk", r.choice(RISK_OPENERS))
            if risk_at:
                kind, opener = "benign", r.choice(BENIGN_OPENERS)
        messages = [(kind, self._fill(opener))]
        for turn in range(1, turns):
            if turn == risk_at:
                messages.append(("risk", self._fill(r.choice(RISK_FOLLOWUPS))))
            else:
                messages.append(("benign", self._fill(r.choice(BENIGN_FOLLOWUPS))))
        return messages


# -- the two server processes -------------------------------------------------------------


@contextmanager
def fake_upstream() -> Iterator[tuple[str, int]]:
    """The echoing fake endpoint in its own process; yields its base URL and pid."""
    child = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "mhsafety.testing.fake_openai",
            "--latency",
            "0",
            "--script",
            "echo",
            "--until-stdin-closes",
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert child.stdout is not None
        yield child.stdout.readline().strip(), child.pid
    finally:
        assert child.stdin is not None
        child.stdin.close()
        try:
            child.wait(timeout=10)
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait()


@contextmanager
def guard_server(
    upstream: str, log: Path, profile: Path | None = None, options: Sequence[str] = ()
) -> Iterator[tuple[str, int]]:
    """``mhsafety guard serve`` in its own process; yields its base URL and pid when ready.

    With ``profile``, the guard runs under ``py-spy record`` (raw collapsed stacks, 200 Hz);
    ``options`` are added to the ``guard serve`` command line.
    """
    port = free_port()
    command = [sys.executable, "-m", "mhsafety", "guard", "serve", "--upstream", upstream]
    command += ["--port", str(port), "--log", str(log), *options]
    if profile is not None:
        spy = str(Path(sys.executable).with_name("py-spy"))
        command = [
            spy,
            "record",
            "-r",
            "200",
            "--format",
            "raw",
            "-o",
            str(profile),
            "--",
            *command,
        ]
    child = subprocess.Popen(
        command,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    base = f"http://127.0.0.1:{port}/v1"
    try:
        deadline = time.monotonic() + 120
        while True:
            if child.poll() is not None:
                assert child.stderr is not None
                raise RuntimeError(f"the guard exited: {child.stderr.read()[-2000:]}")
            try:
                if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError("the guard did not start within 120 s")
            time.sleep(0.2)
        yield base, child.pid
    finally:
        child.send_signal(signal.SIGINT)  # graceful: the guard writes its open conversations
        try:
            child.wait(timeout=30)
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait()


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (Linux ``/proc``; nan elsewhere)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return float("nan")
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


# -- the clients ----------------------------------------------------------------------------


class RawConnection:
    """A minimal HTTP/1.1 keep-alive connection (JSON bodies with Content-Length only).

    A few dozen microseconds of client CPU per request, so on a small machine the cores go to
    the servers being measured; both arms use it alike.
    """

    def __init__(self, url: str) -> None:
        parsed = httpx.URL(url)
        self.host, self.port = parsed.host, parsed.port or 80
        self.path = parsed.raw_path.decode()
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def post(self, body: bytes, headers: dict[str, str]) -> tuple[int, bytes]:
        """Send one POST; returns the status and the body.

        A kept-alive connection the server has closed meanwhile (uvicorn closes idle ones after
        5 s) is reopened and the request sent again once, as HTTP clients do.
        """
        if self.reader is not None and self.reader.at_eof():
            await self.aclose()
        reused = self.writer is not None
        try:
            return await self._exchange(body, headers)
        except (asyncio.IncompleteReadError, ConnectionError):
            await self.aclose()
            if not reused:
                raise
        return await self._exchange(body, headers)

    async def _exchange(self, body: bytes, headers: dict[str, str]) -> tuple[int, bytes]:
        if self.writer is None:
            self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
        assert self.reader is not None and self.writer is not None
        extra = "".join(f"{k}: {v}\r\n" for k, v in headers.items())
        head = (
            f"POST {self.path} HTTP/1.1\r\nHost: {self.host}:{self.port}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n{extra}\r\n"
        )
        self.writer.write(head.encode() + body)
        raw = await self.reader.readuntil(b"\r\n\r\n")
        lines = raw.decode("latin-1").split("\r\n")
        status = int(lines[0].split()[1])
        fields = {k.strip().lower(): v.strip() for k, _, v in (x.partition(":") for x in lines[1:])}
        if "content-length" not in fields:
            raise RuntimeError(f"response without Content-Length: {fields}")
        data = await self.reader.readexactly(int(fields["content-length"]))
        if fields.get("connection", "").lower() == "close":
            await self.aclose()
        return status, data

    async def aclose(self) -> None:
        """Close the connection."""
        if self.writer is not None:
            self.writer.close()
            self.reader = self.writer = None


class HttpxConnection:
    """The same interface over a shared ``httpx.AsyncClient`` (heavier client, for comparison)."""

    def __init__(self, client: httpx.AsyncClient, url: str) -> None:
        self.client, self.url = client, url

    async def post(self, body: bytes, headers: dict[str, str]) -> tuple[int, bytes]:
        """Send one POST; returns the status and the body."""
        response = await self.client.post(
            self.url, content=body, headers={"Content-Type": "application/json", **headers}
        )
        return response.status_code, response.content

    async def aclose(self) -> None:
        """Nothing to close per player (the client is shared)."""


@dataclass
class Sample:
    """One request's outcome."""

    seconds: float
    prior_turns: int
    kind: str
    ok: bool
    intervened: bool


@dataclass
class ArmResult:
    """One arm's samples and wall time (over its rounds)."""

    samples: list[Sample] = field(default_factory=list)
    wall: float = 0.0
    cpu: dict[str, float] = field(default_factory=dict)

    def latencies_ms(self) -> Any:
        """Latencies of the successful requests, in ms."""
        return np.array([s.seconds * 1000 for s in self.samples if s.ok])


async def run_arm(
    url: str,
    tag: str,
    requests: int,
    clients: int,
    think: float,
    maker: MessageMaker,
    seed: int,
    client_kind: str = "raw",
) -> tuple[list[Sample], float]:
    """``requests`` requests from ``clients`` concurrent conversation players."""
    remaining = requests
    samples: list[Sample] = []
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    shared = httpx.AsyncClient(limits=limits, timeout=120)

    async def player(number: int) -> None:
        nonlocal remaining
        rng = random.Random(seed * 1000 + number)
        connection: RawConnection | HttpxConnection = (
            RawConnection(url) if client_kind == "raw" else HttpxConnection(shared, url)
        )
        count = 0
        try:
            while remaining > 0:
                script = maker.conversation()
                count += 1
                headers = {"X-Conversation-Id": f"bench-{tag}-{number}-{count}"}
                history: list[dict[str, str]] = [{"role": "system", "content": SYSTEM_PROMPT}]
                for turn, (kind, text) in enumerate(script):
                    if remaining <= 0:
                        return
                    remaining -= 1
                    if think > 0:
                        await asyncio.sleep(rng.expovariate(1 / think))
                    history.append({"role": "user", "content": text})
                    body = {
                        "model": "bench",
                        "messages": history,
                        "temperature": 0.7,
                        "max_tokens": 256,
                    }
                    started = time.perf_counter()
                    try:
                        status, raw = await connection.post(json.dumps(body).encode(), headers)
                        data = json.loads(raw)
                        ok = status == 200
                    except (OSError, EOFError, RuntimeError, ValueError, httpx.HTTPError):
                        ok, data = False, {}
                        await connection.aclose()
                    seconds = time.perf_counter() - started
                    events = data.get("safety_events") or []
                    samples.append(
                        Sample(
                            seconds,
                            turn,
                            kind,
                            ok,
                            any(e.get("type") == "crisis_intervention" for e in events),
                        )
                    )
                    if not ok:
                        break  # start a new conversation
                    reply = data["choices"][0]["message"]["content"]
                    history.append({"role": "assistant", "content": reply})
        finally:
            await connection.aclose()

    async with shared:
        started = time.perf_counter()
        await asyncio.gather(*(player(i) for i in range(clients)))
        wall = time.perf_counter() - started
    return samples, wall


# -- reporting ------------------------------------------------------------------------------


def pct(values: Any, q: float) -> float:
    """Percentile (nan for no values)."""
    return float(np.percentile(values, q)) if len(values) else float("nan")


def server_split(log: Path, prefix: str) -> tuple[dict[str, tuple[float, float]], list[int]]:
    """The guard's own timings for one arm, from its log: p50/p99 of layers, upstream and
    total, and the screening batch each request ran in (1 when not batched)."""
    split: dict[str, list[float]] = {"layers": [], "upstream": [], "total": []}
    batches: list[int] = []
    if not log.exists():
        return {}, batches
    with open(log, encoding="utf-8") as handle:
        for line in handle:
            record = json.loads(line)
            if not str(record["id"]).startswith(prefix):
                continue
            for message in record["messages"]:
                guard = message.get("guard") or {}
                ms = guard.get("ms")
                if ms:
                    batches.append(int(guard.get("batch", 1)))
                    for key in split:
                        split[key].append(float(ms[key]))
    return {k: (pct(v, 50), pct(v, 99)) for k, v in split.items() if v}, batches


def report(
    think: float, direct: ArmResult, guard: ArmResult, clients: int, name: str = "guard"
) -> dict[str, Any]:
    """Print one think time's figures for one guard variant; returns them."""
    d, g = direct.latencies_ms(), guard.latencies_ms()
    d50, d99, g50, g99 = pct(d, 50), pct(d, 99), pct(g, 50), pct(g, 99)
    added50, added99 = g50 - d50, g99 - d99
    mode = "closed loop" if think == 0 else f"think time {think:g} s (exponential mean)"
    print(f"\n== {name}: {clients} clients, {mode} ==")
    print(f"{'arm':<10}{'requests':>7}{'errors':>8}{'req/s':>9}{'p50 ms':>9}{'p99 ms':>9}")
    for label, arm, lat in (("direct", direct, d), (name, guard, g)):
        errors = sum(not s.ok for s in arm.samples)
        rate = len(arm.samples) / arm.wall if arm.wall else float("nan")
        print(
            f"{label[:10]:<10}{len(arm.samples):>7}{errors:>8}{rate:>9.1f}"
            f"{pct(lat, 50):>9.1f}{pct(lat, 99):>9.1f}"
        )
    print(f"added   p50 {added50:+.1f} ms   p99 {added99:+.1f} ms   (guard minus direct)")
    turns = [s.prior_turns for s in guard.samples]
    print(
        f"earlier turns per request: {min(turns)}-{max(turns)} "
        f"(mean {sum(turns) / len(turns):.1f}), each request a new user message"
    )
    for label, arm in (("direct", direct), (name, guard)):
        per = {k: 1000 * v / max(1, len(arm.samples)) for k, v in arm.cpu.items()}
        print(
            f"cpu per request ({label} arm): "
            + ", ".join(f"{k} {v:.2f} ms" for k, v in per.items())
        )
    for kind in ("benign", "lookalike", "risk"):
        of_kind = [s for s in guard.samples if s.kind == kind and s.ok]
        kind_lat = np.array([s.seconds * 1000 for s in of_kind])
        print(
            f"guard, {kind} messages: p50 {pct(kind_lat, 50):.1f} ms, p99 {pct(kind_lat, 99):.1f}"
            f" ms; crisis message on {sum(s.intervened for s in of_kind)} of {len(of_kind)}"
        )
    met50, met99 = added50 <= GOAL_P50_MS, added99 <= GOAL_P99_MS
    print(f"goal added p50 <= {GOAL_P50_MS:g} ms: {'goal met' if met50 else 'NOT met'}")
    print(f"goal added p99 <= {GOAL_P99_MS:g} ms: {'goal met' if met99 else 'NOT met'}")
    return {
        "think": think,
        "name": name,
        "direct": {"p50": d50, "p99": d99},
        "guard": {"p50": g50, "p99": g99},
        "added": {"p50": added50, "p99": added99},
        "met": met50 and met99,
        "guard_rate": len(guard.samples) / guard.wall if guard.wall else float("nan"),
    }


def machine_busy(seconds: float = 1.0) -> float:
    """Share of all cores busy over ``seconds`` before the run (Linux; nan elsewhere)."""

    def ticks() -> tuple[int, int]:
        values = [int(v) for v in Path("/proc/stat").read_text().split("\n")[0].split()[1:]]
        idle = values[3] + values[4]
        return sum(values) - idle, sum(values)

    try:
        busy0, total0 = ticks()
        time.sleep(seconds)
        busy1, total1 = ticks()
    except OSError:
        return float("nan")
    return (busy1 - busy0) / max(1, total1 - total0)


def variants(specs: Sequence[str]) -> dict[str, list[str]]:
    """``NAME=OPTIONS`` specs as guard names and their extra ``guard serve`` options."""
    out: dict[str, list[str]] = {}
    for spec in specs or ["guard="]:
        name, _, options = spec.partition("=")
        if not name or name == "direct" or name in out:
            raise SystemExit(f"--guard {spec!r}: give each variant its own name (not 'direct')")
        out[name] = shlex.split(options)
    return out


async def measure(args: argparse.Namespace) -> int:
    """Start the servers, warm up, run every think time's arms, print the figures."""
    cores = os.cpu_count() or 0
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else cores
    print(f"machine: {cores} cores ({usable} usable by this process); the goal is for 2 cores")
    print(f"load average (1, 5, 15 min): {', '.join(f'{x:.2f}' for x in os.getloadavg())}")
    busy = machine_busy()
    print(f"cores busy before the run (other processes): {busy:.0%}")
    if busy > 0.15:
        print("WARNING: the machine is busy; these figures include that contention")
    print(f"client: {args.client}, {args.clients} concurrent conversations")
    guards = variants(args.guard)
    maker = MessageMaker(args.seed)
    figures = []
    with tempfile.TemporaryDirectory() as folder:
        logs = {name: Path(folder) / f"guard-log-{name}.jsonl" for name in guards}
        with ExitStack() as stack:
            upstream, fake_pid = stack.enter_context(fake_upstream())
            urls = {"direct": f"{upstream}/chat/completions"}
            pids = {"fake": fake_pid, "client": os.getpid()}
            for name, options in guards.items():
                profile = args.profile
                if profile is not None and len(guards) > 1:
                    profile = profile.with_name(f"{profile.stem}.{name}{profile.suffix}")
                guard_url, guard_pid = stack.enter_context(
                    guard_server(upstream, logs[name], profile, options)
                )
                urls[name] = f"{guard_url}/chat/completions"
                pids[name] = guard_pid
                print(f"guard {name!r} {guard_url} (options: {shlex.join(options) or 'none'})")
            print(f"upstream {upstream} (fake, echo, no latency)")
            for name, url in urls.items():  # warm-up: connections, ONNX arenas, code paths
                await run_arm(
                    url, f"warm-{name}", args.warmup, args.clients, 0, maker, 0, args.client
                )
            print(f"warm-up: {args.warmup} requests per arm")
            results: dict[float, dict[str, ArmResult]] = {}
            for think in args.think:
                arms = {name: ArmResult() for name in urls}
                share = max(1, args.requests // args.rounds)
                for round_ in range(args.rounds):
                    for name, url in urls.items():
                        before = {k: cpu_seconds(p) for k, p in pids.items()}
                        tag = f"t{think:g}-r{round_}-{name}"
                        samples, wall = await run_arm(
                            url, tag, share, args.clients, think, maker, round_, args.client
                        )
                        arm = arms[name]
                        arm.samples.extend(samples)
                        arm.wall += wall
                        for k, pid in pids.items():
                            arm.cpu[k] = arm.cpu.get(k, 0.0) + cpu_seconds(pid) - before[k]
                results[think] = arms
        for think, arms in results.items():  # after shutdown: the guards have written logs
            for name in guards:
                figures.append(report(think, arms["direct"], arms[name], args.clients, name))
                split, batches = server_split(logs[name], f"bench-t{think:g}-")
                if split:
                    print(
                        "guard's own timings p50/p99 (from its log; layers include the wait "
                        "for a worker thread): "
                        + ", ".join(f"{k} {a:.1f}/{b:.1f} ms" for k, (a, b) in split.items())
                    )
                if batches:
                    sizes = np.array(batches)
                    print(
                        f"screening batch per request: mean {sizes.mean():.2f}, p50 "
                        f"{pct(sizes, 50):.0f}, p99 {pct(sizes, 99):.0f}, max {sizes.max()}; "
                        f"{(sizes > 1).mean():.0%} of requests shared a batch"
                    )
    print()
    capacity = {f["name"]: f["guard_rate"] for f in figures if f["think"] == 0}
    for figure in figures:
        mode = "closed loop" if figure["think"] == 0 else f"think {figure['think']:g} s"
        load = f"{figure['guard_rate']:.0f} req/s"
        if capacity.get(figure["name"]) and figure["think"] > 0:
            load += (
                f", {figure['guard_rate'] / capacity[figure['name']]:.0%} of the closed-loop rate"
            )
        verdict = "goal met" if figure["met"] else "NOT met"
        print(
            f"summary {figure['name']} [{mode}; {load}]: added p50 {figure['added']['p50']:+.1f}"
            f" ms, p99 {figure['added']['p99']:+.1f} ms -> {verdict}"
        )
    print(f"load average after the run: {', '.join(f'{x:.2f}' for x in os.getloadavg())}")
    return 0


def main(argv: list[str] | None = None) -> int:
    """Parse the options and measure; always returns 0 (a measurement, not a test)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=32, help="concurrent clients")
    parser.add_argument("--requests", type=int, default=2000, help="requests per arm and think")
    parser.add_argument("--warmup", type=int, default=200, help="warm-up requests per arm")
    parser.add_argument(
        "--think",
        type=float,
        nargs="+",
        default=[0.0, 1.0],
        help="mean pause between a client's requests, seconds (0: closed loop)",
    )
    parser.add_argument("--rounds", type=int, default=2, help="alternating blocks per arm")
    parser.add_argument("--client", choices=["raw", "httpx"], default="raw")
    parser.add_argument("--seed", type=int, default=11)
    parser.add_argument(
        "--profile", type=Path, default=None, help="run the guard under py-spy, write here"
    )
    parser.add_argument(
        "--guard",
        action="append",
        default=[],
        metavar="NAME=OPTIONS",
        help="a guard variant with extra `guard serve` options (repeatable; default: one, "
        "with the default options)",
    )
    args = parser.parse_args(argv)
    return asyncio.run(measure(args))


if __name__ == "__main__":
    sys.exit(main())
