"""The fake OpenAI server as a user starts it: in the background, on a chosen port."""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import time

import httpx


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_runs_in_the_background_on_its_port_until_terminated() -> None:
    port = free_port()
    child = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "mhsafety.testing.fake_openai",
            "--port",
            str(port),
            "--script",
            "echo",
        ],
        stdin=subprocess.DEVNULL,  # as with `&` in a shell: stdin is not a terminal
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert child.stdout is not None
        assert child.stdout.readline().strip() == f"http://127.0.0.1:{port}/v1"
        time.sleep(0.5)
        assert child.poll() is None, "the server exited although nobody stopped it"
        reply = httpx.post(
            f"http://127.0.0.1:{port}/v1/chat/completions",
            json={"model": "m", "messages": [{"role": "user", "content": "are you there"}]},
            timeout=10,
        )
        assert reply.json()["choices"][0]["message"]["content"] == "are you there"
        child.send_signal(signal.SIGTERM)
        assert child.wait(timeout=10) == 0
    finally:
        if child.poll() is None:
            child.kill()


def test_a_busy_port_is_a_clear_error() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = subprocess.run(
            [sys.executable, "-m", "mhsafety.testing.fake_openai", "--port", str(port)],
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert result.returncode == 2
    assert f"cannot bind 127.0.0.1:{port}" in result.stderr
