"""The LLM backends on the real embedded model: in process, and through a real llama.cpp server."""

from __future__ import annotations

from pathlib import Path

import pytest

from conftest import free_port
from gradir.errors import GradirError
from gradir.llm import LLMClient, SamplingSettings, load_backend

LABELS = ["0", "1", "2", "3"]
PROMPTS = ["Name one fruit.", "What colour is the sky on a clear day?"]


@pytest.fixture(scope="module")
def llamacpp():
    backend = load_backend("llamacpp")
    yield backend
    backend.close()


def test_in_process_generation_is_seeded(llamacpp) -> None:
    settings = SamplingSettings(temperature=0.8, max_tokens=16, seed=7)
    first = llamacpp.generate(PROMPTS, [settings] * 2)
    again = llamacpp.generate(PROMPTS, [settings] * 2)
    assert all(g.ok and g.text for g in first)
    assert [g.text for g in first] == [g.text for g in again]


def test_in_process_label_probabilities_sum_to_one(llamacpp) -> None:
    results = llamacpp.label_probabilities(["Answer with a digit from 0 to 3: how many legs has a bird?"] * 2, LABELS)
    for result in results:
        assert result.ok
        assert set(result.probabilities) == set(LABELS)
        assert sum(result.probabilities.values()) == pytest.approx(1.0, abs=1e-6)
    assert results[0].probabilities == results[1].probabilities  # the same prompt, the same answer


def test_call_cache_makes_a_rerun_free(tmp_path: Path, llamacpp) -> None:
    settings = [SamplingSettings(max_tokens=8, seed=s) for s in (1, 2)]
    first = LLMClient(llamacpp, cache_dir=tmp_path, show_progress=False)
    answers = first.generate(PROMPTS, settings)
    assert first.counts.llm_calls == 2 and first.counts.cache_hits == 0
    second = LLMClient(llamacpp, cache_dir=tmp_path, show_progress=False)
    assert [a.text for a in second.generate(PROMPTS, settings)] == [a.text for a in answers]
    assert second.counts.llm_calls == 0 and second.counts.cache_hits == 2
    # Another seed is another call.
    third = LLMClient(llamacpp, cache_dir=tmp_path, show_progress=False)
    third.generate(PROMPTS[:1], [SamplingSettings(max_tokens=8, seed=3)])
    assert third.counts.llm_calls == 1


def test_failures_are_counted_and_never_cached(tmp_path: Path) -> None:
    backend = load_backend(f"openai:http://127.0.0.1:{free_port()}/v1@nothing", max_retries=1)
    backend.backoff = 0.01
    for _ in range(2):
        client = LLMClient(backend, cache_dir=tmp_path, show_progress=False)
        answers = client.generate(PROMPTS, [SamplingSettings()] * 2)
        assert not any(a.ok for a in answers)
        assert "ConnectError after 1 retries" in answers[0].error
        assert client.counts.llm_calls == 2 and client.counts.failed == 2 and client.counts.cache_hits == 0


def test_openai_backend_against_a_real_llama_cpp_server(llama_server: str, tmp_path: Path) -> None:
    backend = load_backend(f"openai:{llama_server}@smollm2", concurrency=2)
    client = LLMClient(backend, cache_dir=tmp_path, show_progress=False)
    answers = client.generate(PROMPTS, [SamplingSettings(max_tokens=16, seed=1)] * 2)
    assert all(a.ok and a.text for a in answers), [a.error for a in answers]
    grades = client.label_probabilities(["Answer with a digit from 0 to 3: how many legs has a bird?"], LABELS)
    assert grades[0].ok, grades[0].error
    assert sum(grades[0].probabilities.values()) == pytest.approx(1.0, abs=1e-6)
    again = LLMClient(backend, cache_dir=tmp_path, show_progress=False)
    again.generate(PROMPTS, [SamplingSettings(max_tokens=16, seed=1)] * 2)
    assert again.counts.llm_calls == 0


def test_api_key_comes_from_the_environment_only(monkeypatch: pytest.MonkeyPatch) -> None:
    backend = load_backend("openai:http://127.0.0.1:9/v1@m", api_key_env="GRADIR_TEST_KEY")
    monkeypatch.delenv("GRADIR_TEST_KEY", raising=False)
    assert backend._headers() == {}
    monkeypatch.setenv("GRADIR_TEST_KEY", "sk-test")
    assert backend._headers() == {"Authorization": "Bearer sk-test"}
    assert "sk-test" not in repr(vars(backend))


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("openai:http://127.0.0.1:8000/v1", "expected openai:URL@MODEL"),
        ("gpt:foo", "unknown backend 'gpt'"),
        ("llamacpp:/nonexistent.gguf", "no such GGUF file"),
        ("hf:", "expected hf:PATH"),
    ],
)
def test_bad_specs_are_clear_errors(spec: str, message: str) -> None:
    with pytest.raises(GradirError, match=message):
        load_backend(spec)


def test_hf_backend_agrees_with_llama_cpp_on_the_same_model(llamacpp, hf_smollm2) -> None:
    """transformers (de-quantised GGUF) and llama.cpp are independent implementations of one model."""
    hf = hf_smollm2
    prompt = ["Answer with a digit from 0 to 3: how many legs has a bird?"]
    ours = hf.label_probabilities(prompt, LABELS)[0]
    reference = llamacpp.label_probabilities(prompt, LABELS)[0]
    assert ours.ok and sum(ours.probabilities.values()) == pytest.approx(1.0, abs=1e-6)
    for label in LABELS:
        assert ours.probabilities[label] == pytest.approx(reference.probabilities[label], abs=0.05)
    answer = hf.generate(PROMPTS[:1], [SamplingSettings(max_tokens=12, seed=1)])[0]
    assert answer.ok and answer.text


class TimedServer:
    """A real OpenAI-compatible server on 127.0.0.1 that answers every chat request after a delay.

    Request 3 takes ``slow_s``, every other ``fast_s``; it records how many requests were in
    flight at once and how many finished while the slow one was being answered.
    """

    def __init__(self, fast_s: float, slow_s: float):
        import json
        import threading
        import time
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

        self.in_flight = self.most_in_flight = self.count = self.finished = 0
        self.finished_during_slow: int | None = None
        lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args) -> None:
                pass

            def do_POST(self) -> None:
                self.rfile.read(int(self.headers.get("Content-Length", 0)))
                with lock:
                    server.count += 1
                    n, server.in_flight = server.count, server.in_flight + 1
                    server.most_in_flight = max(server.most_in_flight, server.in_flight)
                    finished_before = server.finished
                time.sleep(slow_s if n == 3 else fast_s)
                with lock:
                    server.in_flight -= 1
                    server.finished += 1
                    if n == 3:
                        server.finished_during_slow = server.finished - 1 - finished_before
                body = json.dumps({"choices": [{"index": 0, "message": {"role": "assistant", "content": f"answer {n}"}}]})
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body.encode())

        self.http = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.http.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.http.server_address[1]}/v1"
        self._thread = threading.Thread(target=self.http.serve_forever, daemon=True)

    def __enter__(self) -> TimedServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.http.shutdown()
        self.http.server_close()


def test_a_server_backend_keeps_its_requests_in_flight_and_caches_each_answer_as_it_comes(tmp_path: Path) -> None:
    """Prompts with their own seeds share one pool; a slow answer holds one slot, not a batch."""
    prompts = [f"Question {i}?" for i in range(24)]
    settings = [SamplingSettings(max_tokens=8, seed=i) for i in range(24)]
    with TimedServer(fast_s=0.05, slow_s=1.5) as server:
        backend = load_backend(f"openai:{server.url}@timed", concurrency=4)
        client = LLMClient(backend, cache_dir=tmp_path, show_progress=False)
        answers = client.generate(prompts, settings)
    assert all(a.ok for a in answers) and client.counts.llm_calls == 24
    assert server.count == 24 and server.most_in_flight == 4
    # In chunks of 4 at most 3 others could finish beside the slow request; a pool keeps going.
    assert server.finished_during_slow is not None and server.finished_during_slow >= 12
    again = LLMClient(backend, cache_dir=tmp_path, show_progress=False)
    assert [a.text for a in again.generate(prompts, settings)] == [a.text for a in answers]
    assert again.counts.cache_hits == 24 and again.counts.llm_calls == 0
