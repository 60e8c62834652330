"""Choosing a backend by a spec string.

- ``llamacpp`` (the default) or ``llamacpp:PATH``: a GGUF file in process;
- ``openai:URL@MODEL``: an OpenAI-compatible server, e.g. ``openai:http://127.0.0.1:8000/v1@qwen2.5-7b``;
- ``hf:PATH``: a local transformers model folder (or GGUF file);
- ``vllm:PATH``: vLLM's offline engine.
"""

from __future__ import annotations

from gradir.errors import GradirError
from gradir.llm.base import LLMBackend

DEFAULT_SPEC = "llamacpp"


def load_backend(spec: str | None = None, *, api_key_env: str | None = "OPENAI_API_KEY", concurrency: int = 8, timeout: float = 60.0, max_retries: int = 4) -> LLMBackend:
    spec = (spec or DEFAULT_SPEC).strip()
    kind, _, rest = spec.partition(":")
    if kind == "llamacpp":
        from gradir.llm.llamacpp_backend import LlamaCppBackend

        return LlamaCppBackend(rest or None)
    if kind == "openai":
        url, at, model = rest.rpartition("@")
        if not at or not url or not model:
            raise GradirError(f"--llm '{spec}': expected openai:URL@MODEL, e.g. openai:http://127.0.0.1:8000/v1@my-model")
        from gradir.llm.openai_backend import OpenAIBackend

        return OpenAIBackend(url, model, api_key_env=api_key_env, concurrency=concurrency, timeout=timeout, max_retries=max_retries)
    if kind in ("hf", "vllm"):
        if not rest:
            raise GradirError(f"--llm '{spec}': expected {kind}:PATH")
        if kind == "hf":
            from gradir.llm.hf_backend import HFBackend

            return HFBackend(rest)
        from gradir.llm.vllm_backend import VLLMBackend

        return VLLMBackend(rest)
    raise GradirError(f"--llm '{spec}': unknown backend '{kind}' (llamacpp, openai, hf or vllm)")
