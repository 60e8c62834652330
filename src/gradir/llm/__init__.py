"""LLM backends behind one protocol, and a persistent cache of their calls."""

from gradir.llm.base import Generation, LabelProbabilities, LLMBackend, SamplingSettings
from gradir.llm.client import CallCounts, LLMClient
from gradir.llm.spec import DEFAULT_SPEC, load_backend

__all__ = [
    "DEFAULT_SPEC",
    "CallCounts",
    "Generation",
    "LLMBackend",
    "LLMClient",
    "LabelProbabilities",
    "SamplingSettings",
    "load_backend",
]
