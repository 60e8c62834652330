"""vLLM's offline engine on a GPU box (the optional ``vllm`` extra), imported only when chosen.

Generation goes through ``LLM.chat`` with one ``SamplingParams`` per call; label
probabilities come from the first token's top ``logprobs``.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from gradir.errors import GradirError
from gradir.llm.base import Generation, LLMBackend, LabelProbabilities, Prompt, SamplingSettings, as_messages, logprob_weights, renormalise
from gradir.models import model_fingerprint


class VLLMBackend(LLMBackend):
    kind = "vllm"
    concurrency = 256  # prompts handed to the engine at once (it batches them on the GPU)

    def __init__(self, path: Path | str, **engine_options):
        try:
            from vllm import LLM
        except ImportError:
            raise GradirError("vLLM is not installed (pip install 'gradir[vllm]' on a GPU machine)") from None
        self.path = Path(path)
        if not self.path.is_dir():
            raise GradirError(f"{self.path}: no such model folder")
        self.engine = LLM(model=str(self.path), **engine_options)

    @property
    def model_id(self) -> str:
        return self.path.name

    def fingerprint(self) -> str:
        return model_fingerprint(self.path)

    def generate(self, prompts: Sequence[Prompt], settings: Sequence[SamplingSettings]) -> list[Generation]:
        from vllm import SamplingParams

        params = [  # one per prompt: the engine batches prompts whose settings differ
            SamplingParams(temperature=s.temperature, top_p=s.top_p, max_tokens=s.max_tokens, seed=s.seed) for s in settings
        ]
        outputs = self.engine.chat([as_messages(p) for p in prompts], params, use_tqdm=False)
        results = []
        for output in outputs:
            text = output.outputs[0].text.strip() if output.outputs else ""
            results.append(Generation(text) if text else Generation(None, "empty completion"))
        return results

    def label_probabilities(self, prompts: Sequence[Prompt], labels: Sequence[str]) -> list[LabelProbabilities]:
        from vllm import SamplingParams

        params = SamplingParams(temperature=0.0, max_tokens=1, logprobs=20)
        outputs = self.engine.chat([as_messages(p) for p in prompts], params, use_tqdm=False)
        results = []
        for output in outputs:
            first = output.outputs[0].logprobs[0] if output.outputs and output.outputs[0].logprobs else {}
            top = [(lp.decoded_token or "", lp.logprob) for lp in first.values()]
            results.append(renormalise(logprob_weights(top), labels) if top else LabelProbabilities(None, "no logprobs"))
        return results
