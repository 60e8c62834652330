"""Crashes, locks, a faulty LLM server and secrets: a run loses nothing and leaks nothing.

Every server here binds 127.0.0.1 only; every wait is bounded in time and stops by itself.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pyarrow.parquet as pq
import pytest

from conftest import run_cli, small_pipeline_config

WAIT_LIMIT_S = 600
# These tests run whole pipelines (the shared reference run is made by whichever test comes first).
pytestmark = pytest.mark.timeout(1500)


def _state(run: Path) -> dict:
    path = run / "state.json"
    return json.loads(path.read_text())["stages"] if path.is_file() else {}


def _cached_calls(cache: Path) -> int:
    path = cache / "llm_calls.sqlite"
    if not path.is_file():
        return 0
    with sqlite3.connect(path, timeout=5) as db:
        try:
            return db.execute("SELECT COUNT(*) FROM calls").fetchone()[0]
        except sqlite3.OperationalError:
            return 0


def _wait_for(condition, what: str, process: subprocess.Popen) -> None:
    deadline = time.monotonic() + WAIT_LIMIT_S
    while time.monotonic() < deadline:
        if condition():
            return
        if process.poll() is not None:
            pytest.fail(f"the run ended (exit {process.returncode}) before {what}")
        time.sleep(0.2)
    process.kill()
    pytest.fail(f"timed out waiting for {what}")


def _start_run(config: Path, out: Path) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "gradir", "run", str(config), "--out", str(out), "--json"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=os.environ.copy())


def _assert_no_partial_files(run: Path) -> None:
    """Files under their final names are complete: every JSONL line and Parquet table parses; temporaries are hidden."""
    for path in run.rglob("*.jsonl"):
        if not path.name.startswith("."):
            for line in path.read_text(encoding="utf-8").splitlines():
                json.loads(line)
    for path in run.rglob("*.parquet"):
        if not path.name.startswith("."):
            pq.read_table(path)
    json.loads((run / "state.json").read_text())


def _grading_has_cached(run: Path, cache: Path, calls: int, seen: dict[str, int]) -> bool:
    """True once the grade stage has cached ``calls`` answers since it was first seen running."""
    if _state(run).get("grade", {}).get("status") != "running":
        return False
    seen.setdefault("at_start", _cached_calls(cache))
    return _cached_calls(cache) >= seen["at_start"] + calls


def _records(path: Path) -> list[dict]:
    return pq.read_table(path).to_pylist()


@pytest.mark.timeout(1800)
def test_sigkill_during_generation_grading_and_training_then_resume_equals_an_uninterrupted_run(
    finished_run, scifact_slice: Path, tmp_path: Path
) -> None:
    root, _, reference = finished_run
    cache = tmp_path / "cache"  # its own cache: the killed run really calls the LLM again
    config = small_pipeline_config(tmp_path / "crash.toml", scifact_slice, cache)
    run = tmp_path / "run"
    seen: dict[str, int] = {}
    points = [
        ("generate", lambda: _state(run).get("generate", {}).get("status") == "running" and _cached_calls(cache) >= 3),
        ("grade", lambda: _grading_has_cached(run, cache, 3, seen)),
        ("train", lambda: (run / "model" / ".checkpoints" / "checkpoint-2" / "trainer_state.json").is_file()),
    ]
    for stage, reached in points:
        process = _start_run(config, run)
        _wait_for(reached, f"the {stage} stage to be under way", process)
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=30)
        assert _state(run)[stage]["status"] == "running"
        _assert_no_partial_files(run)
        status = run_cli("status", run, "--json")
        assert {s["name"]: s["status"] for s in json.loads(status.stdout)["stages"]}[stage] == "interrupted"

    final = run_cli("run", config, "--out", run, "--json")
    assert final.returncode == 0, final.stderr[-3000:]
    stages = json.loads(final.stdout)["stages"]
    assert {n for n, s in stages.items() if s["status"] == "skipped"} == {"sample", "generate", "filter", "documents", "mine", "grade"}
    train = stages["train"]["summary"]
    assert train["resumed_from_step"] == 2 and train["steps"] == 4

    # The grading that was killed resumed from the cache: finished calls were not repeated.
    state = _state(run)
    grade = state["grade"]["summary"]
    assert grade["cache_hits"] >= 3
    assert grade["llm_calls"] + grade["cache_hits"] == grade["pairs"]

    # Same records as the uninterrupted run with the same seed: none lost, none repeated.
    for name in ("passages.parquet", "queries.parquet", "queries.kept.parquet", "pairs.parquet", "judgments.parquet"):
        mine, theirs = _records(run / name), _records(root / "run" / name)
        assert mine == theirs, name
        keys = [json.dumps(r, sort_keys=True) for r in mine]
        assert len(keys) == len(set(keys)), f"duplicates in {name}"
    # Training resumed from checkpoint-2 ends where the straight run ended.
    assert reference["stages"]["train"]["summary"]["steps"] == 4
    from safetensors.numpy import load_file

    resumed, straight = load_file(run / "model" / "model.safetensors"), load_file(root / "run" / "model" / "model.safetensors")
    assert resumed.keys() == straight.keys()
    for name in straight:
        assert abs(resumed[name] - straight[name]).max() < 1e-5, name
    assert json.loads((run / "eval" / "comparison.json").read_text())["tuned"]["ndcg@10"] == pytest.approx(
        reference["stages"]["evaluate"]["summary"]["ndcg@10"]["tuned"], abs=1e-4
    )


def test_a_second_run_on_a_directory_in_use_refuses_and_a_stale_lock_is_taken_over(finished_run, tmp_path: Path) -> None:
    root, config, _ = finished_run
    run = tmp_path / "run"
    shutil.copytree(root / "run", run)
    holder = subprocess.Popen(
        [sys.executable, "-c",
         "import sys, time\nfrom gradir.pipeline.rundir import RunDirectory\n"
         "r = RunDirectory(sys.argv[1]); r.acquire(); print('locked', flush=True); time.sleep(120)", str(run)],
        stdout=subprocess.PIPE, text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "locked"
        refused = run_cli("run", config, "--out", run)
        assert refused.returncode == 2
        assert f"in use by pid {holder.pid}" in refused.stderr and "run.lock" in refused.stderr
        assert "Traceback" not in refused.stderr
    finally:
        holder.kill()
        holder.wait(timeout=30)
    # The holder died without releasing: its pid is still in run.lock, but the lock is free.
    assert f"pid {holder.pid}" in (run / "run.lock").read_text()
    again = run_cli("run", config, "--out", run, "--json")
    assert again.returncode == 0, again.stderr[-2000:]
    assert f"took over a stale lock left by pid {holder.pid}" in again.stderr
    assert {s["status"] for s in json.loads(again.stdout)["stages"].values()} == {"skipped"}
    assert "took over a stale lock" in (run / "log.txt").read_text()


class FaultyProxy:
    """An OpenAI-compatible proxy on 127.0.0.1 that answers some requests with faults.

    Request n (from 1) gets, by n mod 12: 2 → 429 with Retry-After 0; 4 and 5 → 500 (two in
    a row: a call with one retry fails for good); 7 → no answer for longer than the client's
    timeout (request 7 only, to keep the test short); 9 → the connection dropped;
    10 → malformed JSON; 11 → an empty completion; any other → the real server's answer.
    """

    def __init__(self, upstream: str, delay_s: float, api_key: str):
        self.upstream = upstream.rstrip("/")
        self.delay_s = delay_s
        self.api_key = api_key
        self.count = 0
        self.faults: dict[str, int] = {}
        self.unauthorised = 0
        self._lock = threading.Lock()
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args) -> None:
                pass

            def do_GET(self) -> None:
                self._forward(None)

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                if self.headers.get("Authorization") != f"Bearer {proxy.api_key}":
                    proxy.unauthorised += 1
                with proxy._lock:
                    proxy.count += 1
                    n = proxy.count
                fault = {2: "429", 4: "500", 5: "500", 7: "delay", 9: "drop", 10: "malformed", 11: "empty"}.get(n % 12)
                if fault == "delay" and n != 7:
                    fault = None
                if fault:
                    proxy.faults[fault] = proxy.faults.get(fault, 0) + 1
                if fault == "429":
                    self._reply(429, b'{"error": "slow down"}', {"Retry-After": "0"})
                elif fault == "500":
                    self._reply(500, b'{"error": "boom"}')
                elif fault == "delay":
                    time.sleep(proxy.delay_s)
                    self.close_connection = True
                elif fault == "drop":
                    self.close_connection = True
                    self.connection.close()
                elif fault == "malformed":
                    self._reply(200, b'{"choices": [{"message": ')
                elif fault == "empty":
                    empty = {"choices": [{"index": 0, "message": {"role": "assistant", "content": ""}, "finish_reason": "stop"}]}
                    self._reply(200, json.dumps(empty).encode())
                else:
                    self._forward(body)

            def _forward(self, body: bytes | None) -> None:
                url = proxy.upstream + self.path.removeprefix("/v1")
                response = httpx.request("POST" if body is not None else "GET", url, content=body,
                                         headers={"Content-Type": "application/json"}, timeout=120)
                self._reply(response.status_code, response.content)

            def _reply(self, status: int, body: bytes, headers: dict[str, str] | None = None) -> None:
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(body)))
                    for key, value in (headers or {}).items():
                        self.send_header(key, value)
                    self.end_headers()
                    self.wfile.write(body)
                except (BrokenPipeError, ConnectionResetError):
                    pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/v1"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> FaultyProxy:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()
        self._thread.join(timeout=10)


def test_a_run_through_a_faulty_server_completes_counts_failures_and_leaks_no_key(
    llama_server: str, scifact_slice: Path, tmp_path: Path
) -> None:
    secret = "sk-gradir-dummy-5f2c9e71b04d4a3c"
    cache = tmp_path / "cache"
    # The timeout leaves room for a slow answer on 2 busy cores; the delayed request outlasts it.
    with FaultyProxy(llama_server, delay_s=15.0, api_key=secret) as proxy:
        config = small_pipeline_config(
            tmp_path / "faulty.toml", scifact_slice, cache,
            extra=f'[llm]\nbackend = "openai:{proxy.url}@smollm2"\napi_key_env = "GRADIR_TEST_API_KEY"\n'
                  "concurrency = 1\ntimeout = 12.0\nmax_retries = 1\n"
                  # Grade tokens through the server (its echoed prompt log-probabilities are off by one token).
                  '[grade]\ngrader = "llm"\n',
        )
        result = run_cli("run", config, "--out", tmp_path / "run", "--json", env={"GRADIR_TEST_API_KEY": secret})
    assert result.returncode == 0, result.stderr[-3000:]
    assert proxy.unauthorised == 0  # the key from the environment reached the server
    assert set(proxy.faults) == {"429", "500", "delay", "drop", "malformed", "empty"}
    stages = json.loads(result.stdout)["stages"]
    llm_stages = [stages[name]["summary"] for name in ("generate", "grade")]
    calls = sum(s["llm_calls"] for s in llm_stages)
    failed = sum(s["failed"] for s in llm_stages)
    retries = sum(s["retries"] for s in llm_stages)
    # Retries are bounded: at most max_retries (1) per call; failures are counted by reason.
    assert 0 < retries <= calls
    assert failed > 0
    reasons = {reason for s in llm_stages for reason in s["failures"]}
    assert any("HTTP 500 after 1 retries" in r for r in reasons) and "empty completion" in reasons
    # Every request is accounted for: the stages' calls and retries, and the plan's timing requests.
    assert proxy.count <= calls + retries + json.loads(result.stdout)["plan"]["timings"]["llm_requests"]
    # The report shows the failures.
    report = (tmp_path / "run" / "report.md").read_text()
    assert "HTTP 500 after 1 retries" in report
    # The cache never stores a failed answer: every stored answer is a real one.
    with sqlite3.connect(cache / "llm_calls.sqlite") as db:
        values = [json.loads(v) for (v,) in db.execute("SELECT value FROM calls")]
    assert 0 < len(values) <= calls - failed
    for value in values:
        assert (value.get("text") or "").strip() or value.get("probabilities")
    # The key is in no file of the run or the caches, and not in the command's output.
    for path in [*(tmp_path / "run").rglob("*"), *cache.rglob("*"), tmp_path / "faulty.toml"]:
        if path.is_file():
            assert secret.encode() not in path.read_bytes(), path
    assert secret not in result.stdout and secret not in result.stderr
    assert "GRADIR_TEST_API_KEY" in (tmp_path / "run" / "config.toml").read_text()  # the variable's name only
