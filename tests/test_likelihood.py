"""Query likelihood: the score is the mean log-probability of exactly the query's tokens."""

from __future__ import annotations

import math

import pytest

from gradir.grading.likelihood import fused_scores, labels_from_scores, likelihood_prompt
from gradir.llm import LLMClient, load_backend

PASSAGE = "Vitamin D deficiency is associated with low bone mineral density in older adults."
QUERIES = ["Does vitamin D affect bone density?", "What is the capital of France?"]


@pytest.fixture(scope="module")
def hf(hf_smollm2):
    return hf_smollm2


def test_hf_scores_are_the_mean_log_probability_of_exactly_the_query_tokens(hf) -> None:
    """Against a plain transformers forward pass over prompt + query, written out here."""
    import torch

    prefix = likelihood_prompt(PASSAGE)
    scored = hf.continuation_logprobs([prefix] * 2, QUERIES)
    tokenizer, model = hf.tokenizer, hf.model
    for query, result in zip(QUERIES, scored):
        head = [tokenizer.bos_token_id] + tokenizer.encode(prefix.rstrip(" "), add_special_tokens=False)
        tail = tokenizer.encode(" " + query, add_special_tokens=False)
        with torch.inference_mode():
            logits = model(input_ids=torch.tensor([head + tail])).logits[0].float()
        expected = [torch.log_softmax(logits[len(head) - 1 + i], -1)[token].item() for i, token in enumerate(tail)]
        assert result.ok and len(result.logprobs) == len(tail)
        assert result.logprobs == pytest.approx(expected, abs=1e-4)
        assert result.mean == pytest.approx(sum(expected) / len(expected), abs=1e-4)
    assert scored[0].mean > scored[1].mean  # the related question is the likelier one


def test_llama_cpp_agrees_with_transformers_and_shares_the_passage_prefix(hf, tmp_path) -> None:
    llamacpp = load_backend("llamacpp")
    prefix = likelihood_prompt(PASSAGE)
    together = llamacpp.continuation_logprobs([prefix] * 2, QUERIES)  # one decode of the passage for both
    alone = [llamacpp.continuation_logprobs([prefix], [q])[0] for q in QUERIES]
    reference = hf.continuation_logprobs([prefix] * 2, QUERIES)
    for shared, single, ref in zip(together, alone, reference):
        assert len(shared.logprobs) == len(ref.logprobs)  # the same tokens: GGUF tokenizer = transformers' tokenizer
        assert shared.logprobs == pytest.approx(single.logprobs, abs=1e-3)
        assert shared.mean == pytest.approx(ref.mean, abs=0.25)  # llama.cpp F16 kernels against transformers fp32
    assert together[0].mean > together[1].mean

    client = LLMClient(llamacpp, cache_dir=tmp_path, show_progress=False)
    first = client.continuation_logprobs([prefix] * 2, QUERIES)
    again = client.continuation_logprobs([prefix] * 2, QUERIES)
    assert client.counts.llm_calls == 2 and client.counts.cache_hits == 2
    assert [a.logprobs for a in again] == [f.logprobs for f in first]
    client.close()


def test_scores_become_labels_against_each_querys_best_candidate() -> None:
    labels = labels_from_scores(["a", "a", "a", "b", "b"], [-1.0, -1.2, -3.0, -2.0, -2.5], temperature=0.5)
    assert labels[0] == (1.0, 3) and labels[3] == (1.0, 3)  # each query's best
    assert labels[1][0] == pytest.approx(math.exp(-0.4)) and labels[1][1] == 2  # 0.67
    assert labels[4][0] == pytest.approx(math.exp(-1.0)) and labels[4][1] == 1  # 0.37
    assert labels[2][0] == pytest.approx(math.exp(-4.0)) and labels[2][1] == 0


def z(values: list[float]) -> list[float]:
    """Standard scores, written out here independently of the code under test."""
    mean = sum(values) / len(values)
    std = math.sqrt(sum((v - mean) ** 2 for v in values) / len(values))
    return [(v - mean) / std for v in values]


def test_fused_scores_weigh_each_querys_z_scores_and_treat_unscored_as_average() -> None:
    query_ids = ["a", "a", "a", "b", "b"]
    likelihoods = [-1.0, -2.0, -4.0, -3.0, -1.0]
    retrieved = [0.2, None, 0.6, None, None]  # "a": one unretrieved document; "b": none retrieved
    fused = fused_scores(query_ids, likelihoods, [(0.25, retrieved)])
    own_a, ret_a = z(likelihoods[:3]), z([0.2, 0.6])
    assert fused[0] == pytest.approx(0.75 * own_a[0] + 0.25 * ret_a[0])
    assert fused[1] == pytest.approx(0.75 * own_a[1])  # the retriever never scored it: z = 0
    assert fused[2] == pytest.approx(0.75 * own_a[2] + 0.25 * ret_a[1])
    assert fused[3:] == pytest.approx(z(likelihoods[3:]))  # nothing retrieved: the likelihood alone
    assert fused_scores(query_ids, likelihoods, [(0.0, retrieved)])[:3] == pytest.approx(own_a)
    # the retriever can overturn the likelihood's order: at w = 0.75 document 2 beats document 0
    overturned = fused_scores(query_ids[:3], likelihoods[:3], [(0.75, [0.2, 0.4, 0.9])])
    assert overturned[2] > overturned[0]
    with pytest.raises(ValueError, match="weights"):
        fused_scores(query_ids, likelihoods, [(1.5, retrieved)])


def test_a_second_signal_adds_its_weighted_z_scores_and_gives_its_weight_back_where_absent() -> None:
    query_ids = ["a", "a", "a", "b", "b"]
    likelihoods = [-1.0, -2.0, -4.0, -3.0, -1.0]
    dense = [0.2, 0.5, 0.6, 0.3, 0.1]
    bm25 = [7.0, 1.0, 3.0, None, None]  # "b": no BM25 score (documents written by the LLM)
    fused = fused_scores(query_ids, likelihoods, [(0.3, dense), (0.3, bm25)])
    own_a, dense_a, bm25_a = z(likelihoods[:3]), z(dense[:3]), z(bm25[:3])
    for i in range(3):
        assert fused[i] == pytest.approx(0.4 * own_a[i] + 0.3 * dense_a[i] + 0.3 * bm25_a[i])
    # BM25's weight goes back to the likelihood for "b": 0.7 z(likelihood) + 0.3 z(dense)
    assert fused[3:] == pytest.approx([0.7 * o + 0.3 * d for o, d in zip(z(likelihoods[3:]), z(dense[3:]))])
    with pytest.raises(ValueError, match="sum to at most 1"):
        fused_scores(query_ids, likelihoods, [(0.6, dense), (0.6, bm25)])


def test_the_openai_path_reads_exactly_the_querys_tokens_from_a_real_server(llama_server: str, hf) -> None:
    """The echoed prompt's tokens past the prefix are the query's tokens, no more, no fewer.

    The values are not compared: llama-cpp-python's server (0.3.x) pairs each echoed token
    with the logits of its own position instead of the one before, so its prompt
    log-probabilities are shifted by one token (the README says so; vLLM's are right).
    """
    server = load_backend(f"openai:{llama_server}@smollm2", concurrency=2)
    prefix = likelihood_prompt(PASSAGE)
    scored = server.continuation_logprobs([prefix] * 2, QUERIES)
    reference = hf.continuation_logprobs([prefix] * 2, QUERIES)
    for result, ref in zip(scored, reference):
        assert result.ok and len(result.logprobs) == len(ref.logprobs)
        assert all(math.isfinite(v) and v <= 0.0 for v in result.logprobs)
