"""A local Hugging Face causal LM through transformers (the GPU user's path).

``hf:PATH`` takes a model folder, or a GGUF file (transformers dequantises it; needs
the ``gguf`` package). Generation applies the tokenizer's chat template; label
probabilities are the next-token logits of the label tokens, renormalised.
Continuation log-probabilities run one padded forward pass per batch of pairs
(right-padded, prefix and continuation tokenised apart so the continuation's tokens are
exactly its own) and read the log-softmax only at the continuation's positions.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

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
from gradir.models import model_fingerprint


class HFBackend(LLMBackend):
    kind = "hf"
    concurrency = 8  # prompts per padded forward batch

    def __init__(self, path: Path | str, device: str | None = None):
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        self.path = Path(path)
        if not self.path.exists():
            raise GradirError(f"{self.path}: no such model folder or GGUF file")
        if self.path.is_file():
            folder, extra = str(self.path.parent), {"gguf_file": self.path.name}
        else:
            folder, extra = str(self.path), {}
        self.device = device or ("cuda" if torch.cuda.is_available() else "cpu")
        self.tokenizer = AutoTokenizer.from_pretrained(folder, local_files_only=True, **extra)
        self.tokenizer.padding_side = "left"
        if self.tokenizer.pad_token is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token
        dtype = torch.bfloat16 if self.device == "cuda" else torch.float32
        self.model = AutoModelForCausalLM.from_pretrained(folder, local_files_only=True, dtype=dtype, **extra)
        self.model.to(self.device).eval()

    @property
    def model_id(self) -> str:
        return self.path.name

    def fingerprint(self) -> str:
        return file_fingerprint(self.path) if self.path.is_file() else model_fingerprint(self.path)

    def count_tokens(self, text: str) -> int:
        return len(self.tokenizer.encode(text, add_special_tokens=False))

    def _chat(self, prompt: Prompt) -> str:
        return self.tokenizer.apply_chat_template(
            as_messages(prompt), tokenize=False, add_generation_prompt=True
        )

    def generate(self, prompts: Sequence[Prompt], settings: Sequence[SamplingSettings]) -> list[Generation]:
        import torch

        results = []
        for prompt, setting in zip(prompts, settings):  # one at a time: each answer's seed alone decides its sample
            torch.manual_seed(setting.seed)
            inputs = self.tokenizer(self._chat(prompt), return_tensors="pt", add_special_tokens=False).to(self.device)
            with torch.inference_mode():
                output = self.model.generate(
                    **inputs,
                    do_sample=setting.temperature > 0,
                    temperature=setting.temperature if setting.temperature > 0 else None,
                    top_p=setting.top_p,
                    max_new_tokens=setting.max_tokens,
                    pad_token_id=self.tokenizer.pad_token_id,
                )
            text = self.tokenizer.decode(output[0, inputs["input_ids"].shape[1] :], skip_special_tokens=True).strip()
            results.append(Generation(text) if text else Generation(None, "empty completion"))
        return results

    def label_probabilities(self, prompts: Sequence[Prompt], labels: Sequence[str]) -> list[LabelProbabilities]:
        import torch

        ids = [self.tokenizer.encode(label, add_special_tokens=False) for label in labels]
        if any(len(i) != 1 for i in ids):
            raise GradirError(f"some of the labels {list(labels)} are not single tokens of {self.model_id}")
        label_ids = [i[0] for i in ids]
        batch = self.tokenizer([self._chat(p) for p in prompts], return_tensors="pt", padding=True, add_special_tokens=False)
        with torch.inference_mode():
            logits = self.model(**batch.to(self.device)).logits[:, -1, :].float()
        chosen = torch.softmax(logits[:, label_ids], dim=-1).cpu().tolist()
        return [renormalise(dict(zip(labels, row)), labels) for row in chosen]

    def continuation_logprobs(self, prefixes: Sequence[str], continuations: Sequence[str]) -> list[ContinuationLogprobs]:
        import torch

        bos = [self.tokenizer.bos_token_id] if self.tokenizer.bos_token_id is not None else []
        sequences, spans = [], []
        for prefix, continuation in zip(prefixes, continuations):
            prefix, continuation = split_continuation(prefix, continuation)
            head = bos + self.tokenizer.encode(prefix, add_special_tokens=False)
            tail = self.tokenizer.encode(continuation, add_special_tokens=False)
            sequences.append(head + tail)
            spans.append((len(head), len(tail)))
        width = max(len(s) for s in sequences)
        pad = self.tokenizer.pad_token_id
        ids = torch.tensor([s + [pad] * (width - len(s)) for s in sequences], device=self.device)
        mask = torch.tensor([[1] * len(s) + [0] * (width - len(s)) for s in sequences], device=self.device)
        with torch.inference_mode():
            logits = self.model(input_ids=ids, attention_mask=mask).logits.float()
        results = []
        for row, (start, length), sequence in zip(range(len(sequences)), spans, sequences):
            if length == 0:
                results.append(ContinuationLogprobs(None, "empty continuation"))
                continue
            predicted = torch.log_softmax(logits[row, start - 1 : start + length - 1], dim=-1)
            targets = torch.tensor(sequence[start : start + length], device=self.device)
            results.append(ContinuationLogprobs(tuple(predicted.gather(1, targets[:, None])[:, 0].cpu().tolist())))
        return results
