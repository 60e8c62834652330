"""Requests in flight against a server: gradir's LLM client over a local server of known latency.

Expected run time: about 4 minutes with the defaults (the server sleeps; little CPU is used).

    .venv/bin/python benchmarks/llm_pool.py [--latency 2.0] [--concurrency 8 32]

A local OpenAI-compatible server (127.0.0.1, one thread per request) answers every chat
request after ``--latency`` seconds; in the "slow tail" rows one request in ten takes
``--delay`` seconds more. So gradir's own overhead is what is timed, not a model. Each
row sends ``--requests-per-slot`` × concurrency prompts, each with its own seed (as the
generate stage does), through ``LLMClient`` with the cache off, and reports requests/s
against the ideal ``concurrency / latency`` and the most requests the server saw in
flight at once. Beside it, "chunked" sends the same prompts in chunks of ``concurrency``
and waits for each chunk to finish, as gradir's client did before the pool (for prompts
that shared their settings; with a seed per prompt it sent one request at a time).

The ideal with the slow tail is ``concurrency / (latency + delay / 10)`` (every slot's
time is used); the drop against the plain row is the tail's own cost, which no client
can avoid at a fixed number of requests in flight.
"""

from __future__ import annotations

import argparse
import os
import threading
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from gradir.llm import LLMClient, SamplingSettings, load_backend  # noqa: E402
from json_server import JSONServer  # noqa: E402
from results_file import append_section  # noqa: E402


class SleepingServer(JSONServer):
    """Answers each chat request after ``latency`` s (+ ``delay`` s for every tenth); counts requests in flight."""

    def __init__(self, latency: float, delay: float):
        self.latency, self.delay = latency, delay
        self.count = self.in_flight = self.most_in_flight = 0
        self._lock = threading.Lock()
        super().__init__(self._answer)

    def _answer(self, _path: str, _request: dict) -> dict:
        with self._lock:
            self.count += 1
            n, self.in_flight = self.count, self.in_flight + 1
            self.most_in_flight = max(self.most_in_flight, self.in_flight)
        time.sleep(self.latency + (self.delay if n % 10 == 0 else 0.0))
        with self._lock:
            self.in_flight -= 1
        return {"choices": [{"index": 0, "message": {"role": "assistant", "content": "a query"}}]}

    def reset(self) -> None:
        self.count = self.in_flight = self.most_in_flight = 0


def measure(server: SleepingServer, concurrency: int, requests: int, chunked: bool) -> tuple[float, int]:
    """Requests/s and the most requests in flight for one pass of ``requests`` prompts."""
    backend = load_backend(f"openai:{server.url}@sleeping", concurrency=concurrency, timeout=120)
    client = LLMClient(backend, cache_dir=False, show_progress=False)
    prompts = [f"Write a query for passage {i}." for i in range(requests)]
    settings = [SamplingSettings(max_tokens=16, seed=i) for i in range(requests)]
    server.reset()
    started = time.perf_counter()
    if chunked:
        for start in range(0, requests, concurrency):
            client.generate(prompts[start : start + concurrency], settings[start : start + concurrency])
    else:
        client.generate(prompts, settings)
    seconds = time.perf_counter() - started
    if client.counts.failed:
        raise SystemExit(f"{client.counts.failed} requests failed: {client.counts.failures}")
    return requests / seconds, server.most_in_flight


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--latency", type=float, default=2.0, help="seconds per request")
    parser.add_argument("--delay", type=float, default=5.0, help="extra seconds for one request in ten (slow tail rows)")
    parser.add_argument("--concurrency", type=int, nargs="+", default=[8, 32])
    parser.add_argument("--requests-per-slot", type=int, default=10)
    parser.add_argument("--no-record", action="store_true")
    args = parser.parse_args()

    lines = [
        "| concurrency | requests | server | client | requests/s | ideal requests/s | of ideal | most in flight |",
        "|---|---|---|---|---|---|---|---|",
    ]
    rates: dict[tuple[float, int, bool], float] = {}
    for delay in (0.0, args.delay):
        server = SleepingServer(args.latency, delay)
        try:
            for concurrency in args.concurrency:
                requests = args.requests_per_slot * concurrency
                ideal = concurrency / (args.latency + delay / 10)
                for chunked in (False, True):
                    rate, most = measure(server, concurrency, requests, chunked)
                    rates[delay, concurrency, chunked] = rate
                    label = f"{args.latency:g} s" + (f", 1 in 10 +{delay:g} s" if delay else "")
                    client = "chunked (before)" if chunked else "pool"
                    lines.append(f"| {concurrency} | {requests} | {label} | {client} | {rate:.2f} | {ideal:.2f} | "
                                 f"{rate / ideal:.0%} | {most} |")
                    print(lines[-1], flush=True)
        finally:
            server.close()
    drops = [f"concurrency {c}: {1 - rates[args.delay, c, False] / rates[0.0, c, False]:.0%}" for c in args.concurrency]
    table = "\n".join(lines) + "\n\nThroughput drop of the pool with the slow tail, against the plain server: " + \
        ", ".join(drops) + f" (the tail's own cost: {1 - 1 / (1 + args.delay / 10 / args.latency):.0%})."
    print(table)
    if not args.no_record:
        append_section(
            "LLM client: requests in flight against a server",
            f"python benchmarks/llm_pool.py --latency {args.latency:g} --delay {args.delay:g} "
            f"--concurrency {' '.join(map(str, args.concurrency))} --requests-per-slot {args.requests_per_slot}",
            "A local server that sleeps (no model): gradir's client overhead and scheduling alone. Every prompt has its "
            "own seed. Pool: the client since 2026-11-23. Chunked: chunks of `concurrency` awaited one after another, "
            "the client before it when prompts shared their settings (with a seed per prompt, as in generation, it "
            "sent one request at a time).",
            table,
        )


if __name__ == "__main__":
    main()
