"""Judgments from human qrels, training through the CLI, and the trained model loading and scoring."""

from __future__ import annotations

import json
import random
from dataclasses import replace
from pathlib import Path

import pytest
import torch

from conftest import TINY, run_cli, shared_collection
from gradir.collections import load_collection
from gradir.errors import GradirError
from gradir.grading.judgments import judgments_from_qrels, read_judgments, write_judgments
from gradir.precision import native_bfloat16
from gradir.training import assemble_training_set


def test_judgments_from_qrels_scale_grades_and_add_mined_negatives(tmp_path: Path) -> None:
    collection = load_collection(TINY)
    judgments = judgments_from_qrels(collection, "test", negatives=1, negatives_from=(0, 6), retriever="bm25")
    human = [j for j in judgments if j.grader == "qrels"]
    assert {(j.query_id, j.doc_id): j.p_relevant for j in human} == {
        ("q1", "d1"): 1.0, ("q1", "d6"): 0.0, ("q2", "d2"): 1.0, ("q2", "d3"): 0.5, ("q3", "d5"): 0.5,
    }
    mined = [j for j in judgments if j.grader == "mined-negative"]
    assert mined and all(j.grade == 0 and j.doc_id not in collection.qrels("test")[j.query_id] for j in mined)
    for suffix in (".parquet", ".jsonl"):
        write_judgments(tmp_path / f"j{suffix}", judgments)
        assert read_judgments(tmp_path / f"j{suffix}") == judgments
    # On a wider scale than the split's own (a split that uses grades 0-2 of a 0-4 scale).
    wider = {(j.query_id, j.doc_id): j.p_relevant for j in judgments_from_qrels(collection, "test", top_grade=4)}
    assert wider == {("q1", "d1"): 0.5, ("q1", "d6"): 0.0, ("q2", "d2"): 0.5, ("q2", "d3"): 0.25, ("q3", "d5"): 0.25}
    with pytest.raises(GradirError, match="grade 2, above the top grade 1"):
        judgments_from_qrels(collection, "test", top_grade=1)


def test_bad_judgments_name_the_row(tmp_path: Path) -> None:
    path = tmp_path / "j.jsonl"
    path.write_text(
        '{"query_id": "q1", "query_text": "a", "doc_id": "d1", "grade": 2, "p_relevant": 1.0}\n'
        '{"query_id": "q1", "query_text": "a", "doc_id": "d2", "grade": 1, "p_relevant": 1.7}\n'
        '{"query_id": "q1", "query_text": "a", "doc_id": "d9", "grade": 1, "p_relevant": 0.5}\n'
    )
    with pytest.raises(GradirError) as info:
        read_judgments(path, documents={"d1", "d2"})
    assert "j.jsonl:2: p_relevant '1.7' is not a number in [0, 1]" in str(info.value)
    assert "j.jsonl:3: unknown document id 'd9'" in str(info.value)


@pytest.mark.parametrize("loss", ["infonce", "bixse", "wasserstein"])
def test_every_loss_sees_the_same_queries_and_positives(loss: str) -> None:
    collection = load_collection(TINY)
    judgments = judgments_from_qrels(collection, "test")
    dataset = assemble_training_set(judgments, collection.documents, loss, list_size=3, threshold=1, seed=1).dataset
    assert dataset.num_rows == 4  # one row per document of grade >= 1
    first_column = "positive" if loss == "infonce" else "document_1"
    assert dataset.column_names[:2] == ["query", first_column]
    if loss == "wasserstein":
        assert sorted(row[0] for row in dataset["label"]) == [1.0, 1.0, 2.0, 2.0]
    if loss == "bixse":
        assert all(row[0] >= row[1] and row[0] >= row[2] for row in dataset["label"])
    # After the labels (none for infonce): the query's index and each document's index.
    width = 3 + 1 if loss == "infonce" else 2 * 3 + 1
    assert {len(row) for row in dataset["label"]} == {width}


def _judgment(qid: str, did: str, grade: int, p: float):
    from gradir.grading.judgments import Judgment

    return Judgment(qid, f"text of {qid}", did, grade, p, "test", p)


def test_listwise_lists_span_the_teacher_order_and_fillers_are_counted() -> None:
    collection = load_collection(TINY)
    judgments = [_judgment("q1", "d1", 3, 1.0), _judgment("q1", "d2", 2, 0.7), _judgment("q1", "d3", 1, 0.4),
                 _judgment("q1", "d4", 1, 0.3), _judgment("q1", "d5", 0, 0.1), _judgment("q2", "d2", 3, 0.9)]
    built = assemble_training_set(judgments, collection.documents, "listwise_kl", list_size=3, threshold=3)
    first, second = built.dataset["label"]
    # q1's others ranked by the teacher (d2 .7, d3 .4, d4 .3, d5 .1) taken at the two ends.
    assert first[:3] == pytest.approx([1.0, 0.7, 0.1])
    # q2 has one judged document: two fillers from the corpus, grade 0, and counted.
    assert second[:3] == pytest.approx([0.9, 0.0, 0.0])
    assert built.summary() == {"rows": 2, "queries": 2, "filler_documents": 2}
    # Another row's document judged for a query keeps its judged label in the pair table.
    q1, d2 = int(first[3]), int(first[5])
    assert built.judged.matrix(torch.tensor([q1]), torch.tensor([d2]), torch.float64).item() == pytest.approx(0.7)


def test_positives_per_query_keeps_a_query_s_highest_grades_and_leaves_smaller_queries_whole() -> None:
    collection = load_collection(TINY)
    judgments = [_judgment("q1", "d1", 1, 0.5), _judgment("q1", "d2", 3, 1.0), _judgment("q1", "d3", 2, 0.7),
                 _judgment("q1", "d4", 1, 0.4), _judgment("q1", "d5", 0, 0.1), _judgment("q2", "d2", 3, 0.9)]
    capped = assemble_training_set(judgments, collection.documents, "bixse", list_size=2, threshold=1,
                                   positives_per_query=2)
    # q1's four positives capped at its two best (grades 3 and 2); q2's one positive kept.
    assert sorted(row[0] for row in capped.dataset["label"]) == pytest.approx([0.7, 0.9, 1.0])
    assert capped.summary()["queries"] == 2
    whole = assemble_training_set(judgments, collection.documents, "bixse", list_size=2, threshold=1)
    assert whole.dataset.num_rows == 5
    with pytest.raises(GradirError, match="--positives-per-query -1"):
        assemble_training_set(judgments, collection.documents, "bixse", positives_per_query=-1)


def test_a_list_longer_than_the_corpus_allows_is_a_clear_error() -> None:
    from gradir.errors import GradirError

    collection = load_collection(TINY)
    judgments = [_judgment("q1", "d1", 3, 1.0)]
    with pytest.raises(GradirError, match=r"query 'q1'.*corpus has only 5"):
        assemble_training_set(judgments, collection.documents, "bixse", list_size=8)


def test_train_on_nfcorpus_judgments_gives_a_model_that_loads_and_scores(tmp_path: Path) -> None:
    nfcorpus = shared_collection("nfcorpus")
    judgments = tmp_path / "judgments.parquet"
    made = run_cli(
        "judgments", "from-qrels", "--collection", nfcorpus, "--split", "train", "--max-queries", "12",
        "--negatives", "2", "--retriever", "bm25", "--top-grade", "2", "--out", judgments, "--json",
    )
    assert made.returncode == 0, made.stderr
    assert json.loads(made.stdout)["queries"] == 12
    # Train's grade 1 on NFCorpus' 0-2 scale: relevant, not highly relevant.
    assert {j.p_relevant for j in read_judgments(judgments) if j.grader == "qrels"} == {0.5}

    out = tmp_path / "model"
    trained = run_cli(
        "train", "--judgments", judgments, "--collection", nfcorpus, "--loss", "bixse", "--out", out,
        "--max-steps", "3", "--batch-size", "4", "--list-size", "2", "--validation-share", "0",
        "--loss-option", "init_bias=-7.5", "--json",
    )
    assert trained.returncode == 0, trained.stderr
    summary = json.loads(trained.stdout)
    assert summary["steps"] == 3 and summary["final_loss"] is not None
    assert summary["loss_settings"]["init_bias"] == -7.5 and summary["loss_settings"]["init_scale"] == 20.0

    from sentence_transformers import SentenceTransformer

    vectors = SentenceTransformer(str(out)).encode(["vitamin d"], normalize_embeddings=True)
    assert vectors.shape == (1, 384)
    card = (out / "README.md").read_text()
    assert "## Trained with gradir" in card and "bixse" in card
    # the loss and its settings: in gradir's section, and in sentence-transformers' own card with the citation
    assert "Loss `bixse` (init_scale=20.0, init_bias=-7.5," in card
    assert '"init_bias": -7.5' in card and "tsirigotis2025bixse" in card

    scored = run_cli("eval", "--model", out, "--collection", TINY, "--json")
    assert scored.returncode == 0, scored.stderr
    assert 0.0 < json.loads(scored.stdout)["ndcg@10"] <= 1.0


def test_train_rejects_an_unknown_loss(tmp_path: Path) -> None:
    result = run_cli("train", "--judgments", tmp_path / "j.parquet", "--collection", TINY, "--loss", "softmax", "--out", tmp_path / "m")
    assert result.returncode == 2
    assert "unknown loss 'softmax'" in result.stderr


def test_training_resumes_from_its_last_checkpoint_with_its_loss_parameters(tmp_path: Path) -> None:
    collection = load_collection(TINY)
    judgments = tmp_path / "judgments.jsonl"
    write_judgments(judgments, judgments_from_qrels(collection, "test"))
    out = tmp_path / "model"
    common = ["train", "--judgments", judgments, "--collection", TINY, "--loss", "bixse", "--out", out,
              "--batch-size", "2", "--list-size", "2", "--save-steps", "2", "--epochs", "10", "--threshold", "1",
              "--validation-share", "0", "--json"]
    first = run_cli(*common, "--max-steps", "2")
    assert first.returncode == 0, first.stderr
    assert (out / ".checkpoints" / "checkpoint-2").is_dir()
    # BiXSE's bias trains at the loss learning rate: 2 steps (the first a warm-up step at rate 0)
    # move it off -10 by far more than the encoder's rate of 2e-5 could; the checkpoint holds it.
    trained = json.loads(first.stdout)["loss_parameters"]
    assert abs(trained["bias"] + 10.0) > 1e-3
    saved = json.loads((out / ".checkpoints" / "checkpoint-2" / "loss_parameters.json").read_text())
    assert saved == pytest.approx(trained)
    # A checkpoint cut short by a crash while saving (no trainer_state.json) is not resumed from.
    torn = out / ".checkpoints" / "checkpoint-3"
    torn.mkdir()
    (torn / "model.safetensors").write_bytes((out / ".checkpoints" / "checkpoint-2" / "model.safetensors").read_bytes()[:1000])
    resumed = run_cli(*common, "--max-steps", "4", "--resume")
    assert resumed.returncode == 0, resumed.stderr
    summary = json.loads(resumed.stdout)
    assert summary["steps"] == 4 and summary["resumed_from_step"] == 2
    assert not torn.exists()

    # An uninterrupted run of 4 steps with the same seed ends with nearly the same weights and
    # loss parameters (the first run planned its learning-rate schedule for 2 steps, not 4).
    straight = tmp_path / "straight"
    common[common.index(out)] = straight
    whole = run_cli(*common, "--max-steps", "4")
    assert whole.returncode == 0, whole.stderr
    from safetensors.numpy import load_file

    resumed_weights = load_file(out / "model.safetensors")
    straight_weights = load_file(straight / "model.safetensors")
    from gradir.models import default_model_path

    base_weights = load_file(default_model_path() / "model.safetensors")
    # L2 over all weights: Adam moves every weight by about the learning rate, even on a tiny
    # gradient, so the largest single difference says little; the total distance does.
    gap = sum(float(((resumed_weights[k] - straight_weights[k]) ** 2).sum()) for k in resumed_weights) ** 0.5
    moved = sum(float(((straight_weights[k] - base_weights[k]) ** 2).sum()) for k in resumed_weights) ** 0.5
    assert moved > 0 and gap < 0.5 * moved
    # A resume that reset the bias to -10 would end about 2 steps' movement short of the straight run.
    resumed_bias = summary["loss_parameters"]["bias"]
    straight_bias = json.loads(whole.stdout)["loss_parameters"]["bias"]
    assert abs(resumed_bias - straight_bias) < 0.5 * abs(straight_bias + 10.0)


def test_cached_training_runs_through_the_cli(tmp_path: Path) -> None:
    collection = load_collection(TINY)
    judgments = tmp_path / "judgments.jsonl"
    write_judgments(judgments, judgments_from_qrels(collection, "test"))
    # bf16 mixed precision (emulated where the CPU lacks it): the cached loss's replayed
    # mini-batches hand bfloat16 gradients back; the saved weights stay float32.
    result = run_cli("train", "--judgments", judgments, "--collection", TINY, "--loss", "bixse", "--out", tmp_path / "m",
                     "--batch-size", "4", "--list-size", "2", "--mini-batch-size", "2", "--max-steps", "1",
                     "--precision", "bf16", "--threshold", "1", "--positives-per-query", "1", "--validation-share", "0",
                     "--confirm-level", "0.05", "--json")
    assert result.returncode == 0, result.stderr
    # bf16 named where it is only emulated: one warning, the training's (its encoders run in fp32)
    assert result.stderr.count("no native bfloat16") == (0 if native_bfloat16() else 1), result.stderr
    summary = json.loads(result.stdout)
    settings = summary["settings"]
    assert settings["mini_batch_size"] == 2 and settings["precision"] == "bf16"
    assert summary["training_set"]["rows"] == 3  # four positives of grade >= 1, q2's two capped at one
    from safetensors.numpy import load_file

    assert {str(w.dtype) for w in load_file(tmp_path / "m" / "model.safetensors").values()} == {"float32"}
    # One settings model: options left out take the [train] section's defaults, as `gradir run` does.
    from dataclasses import asdict

    from gradir.pipeline.config import TrainSection

    expected = asdict(TrainSection(batch_size=4, list_size=2, mini_batch_size=2, max_steps=1, precision="bf16",
                                   positives_per_query=1, validation_share=0.0, confirm_level=0.05).trainer_settings(0))
    # The threshold is resolved from the judgments, the batch clipped to the tiny set; JSON has no tuples.
    for resolved in ("threshold", "batch_size", "alphas"):
        expected.pop(resolved)
    assert {key: settings[key] for key in expected} == expected


def test_a_training_set_smaller_than_the_batch_trains_and_an_empty_one_is_a_clear_error(tmp_path: Path) -> None:
    """Also: a validation set given as its own judgments file (the dev query) chooses the output."""
    from gradir.training import train

    collection = load_collection(TINY)
    judgments = tmp_path / "judgments.jsonl"
    write_judgments(judgments, judgments_from_qrels(collection, "test"))
    validation = tmp_path / "validation.jsonl"
    write_judgments(validation, judgments_from_qrels(collection, "dev"))
    common = ["train", "--judgments", judgments, "--collection", TINY, "--loss", "bixse", "--list-size", "2",
              "--validation-share", "0", "--json"]
    small = run_cli(*common, "--out", tmp_path / "m", "--batch-size", "16", "--validation-judgments", validation)
    assert small.returncode == 0, small.stderr
    assert "fewer than the batch size 16: training with batches of 4" in small.stderr
    result = json.loads(small.stdout)
    assert result["steps"] >= 1
    assert result["selection"]["validation"] == {"queries": 1, "groups": 1, "judged_pairs": 2, "documents": 2,
                                                 "file": str(validation)}
    assert f"Validation: 1 query of {validation}, 2 judged pairs" in (tmp_path / "m" / "README.md").read_text()
    with pytest.raises(GradirError, match="3 validation queries are also training queries .first: 'q1'"):
        train(judgments, collection, "bixse", tmp_path / "x", validation_judgments=judgments)
    empty = run_cli(*common, "--out", tmp_path / "e", "--threshold", "3")
    assert empty.returncode == 2
    assert "no judgment reaches grade 3" in empty.stderr and "Traceback" not in empty.stderr


def best_graded_and_random_documents(nfcorpus, queries: int) -> list:
    """``queries`` NFCorpus dev queries with their 3 best-graded documents each (grades 1-2) and 3 seeded
    random documents judged 0: small enough to score often, and a ranking a broken model gets wrong."""
    kept: dict[str, int] = {}
    judgments = []
    corpus_ids = sorted(nfcorpus.documents)
    pick = random.Random(0)
    for j in sorted(judgments_from_qrels(nfcorpus, "dev", max_queries=queries, seed=0),
                    key=lambda j: (j.query_id, -j.grade, j.doc_id)):
        if kept.setdefault(j.query_id, 0) < 3:
            kept[j.query_id] += 1
            judgments.append(j)
            graded = set(nfcorpus.qrels("dev")[j.query_id])
            unrelated = next(d for d in iter(lambda: pick.choice(corpus_ids), None) if d not in graded)
            judgments.append(replace(j, doc_id=unrelated, grade=0, p_relevant=0.0))
    return judgments


def test_the_output_is_the_validation_winner_and_never_worse_than_the_base(tmp_path: Path) -> None:
    """A learning rate that wrecks the model: the run falls back towards the base and says so."""
    from sentence_transformers import SentenceTransformer

    from gradir.models import default_model_path
    from gradir.training import TrainSettings, train
    from gradir.training.validation import hold_out

    nfcorpus = load_collection(shared_collection("nfcorpus"))
    # 60 queries, 18 held out: enough that a wrecked model's near-random ranking of its 6 judged
    # documents cannot match the base's by chance.
    path = tmp_path / "judgments.jsonl"
    write_judgments(path, best_graded_and_random_documents(nfcorpus, 60))
    settings = TrainSettings(max_steps=4, batch_size=8, list_size=2, learning_rate=0.3, validation_share=0.3,
                             validate_every=2)
    result = train(path, nfcorpus, "infonce", tmp_path / "m", settings=settings)
    selection = result.selection
    assert selection["validation"]["queries"] >= 15
    assert [c["alpha"] for c in selection["interpolation"]] == [0.0, 0.25, 0.5, 0.75, 1.0]
    # Scored every 2 steps (the run ends mid-epoch at step 4); α = 1 is the best of those checkpoints.
    assert [c["step"] for c in selection["epochs"]] == [2, 4]
    tuned = selection["interpolation"][-1]["ndcg@10"]
    assert tuned == max(c["ndcg@10"] for c in selection["epochs"])
    assert tuned < selection["base"]  # the wrecked model is worse on the held-out queries...
    assert selection["output"] != "tuned" and selection["score"] >= selection["base"]  # ...and is not handed back
    # The saved model is the chosen one: scored again on the same held-out queries it gives the same figure.
    _, validation = hold_out(read_judgments(path), nfcorpus.documents, share=0.3, threshold=1, seed=0)
    saved = SentenceTransformer(str(tmp_path / "m"), local_files_only=True)
    assert validation.score(saved) == pytest.approx(selection["score"], abs=1e-4)
    if selection["output"] == "base":
        base = SentenceTransformer(str(default_model_path()), local_files_only=True)
        assert validation.score(base) == pytest.approx(selection["score"], abs=1e-6)
    training = json.loads((tmp_path / "m" / "training.json").read_text())
    assert training["selection"]["alpha"] == selection["alpha"]
    card = (tmp_path / "m" / "README.md").read_text()
    assert "Output: **" in card
    assert f"(step {selection['chosen_step']}) | θ_tuned |" in card  # the checkpoint the interpolations start from


def test_held_out_groups_are_drawn_among_all_groups_and_no_group_is_on_both_sides() -> None:
    """With query groups (a synthetic query's source passage) the draw is among all the groups,
    judged or not, so the pipeline's mine stage draws the same ones before grading; a group is on
    one side only, and a held-out query that cannot score is on neither."""
    from gradir.collections.records import Document
    from gradir.grading.judgments import Judgment
    from gradir.training.validation import held_out_groups, hold_out

    documents = {f"d{i}": Document(f"d{i}", f"passage {i}") for i in range(40)}
    groups = {f"q{i}": f"d{i // 2}" for i in range(40)}  # 2 queries per passage; passages d0..d19
    # judged: every query but those of passages d15..d19 (never graded); q1, q3, ... find nothing relevant
    judged = [q for q in groups if int(q[1:]) < 30]
    judgments = [Judgment(q, f"text {q}", groups[q], 0 if int(q[1:]) % 2 else 2, 0.5, "test", 0.0) for q in judged]
    judgments += [Judgment(q, f"text {q}", "d39", 0, 0.1, "test", 0.0) for q in judged]
    held = held_out_groups(groups.values(), share=0.25, seed=3)
    assert len(held) == 5 and held == held_out_groups(reversed(list(groups.values())), share=0.25, seed=3)
    assert held - {groups[q] for q in judged}  # the draw took a passage none of whose queries was graded
    training, validation = hold_out(judgments, documents, share=0.25, groups=groups, threshold=1, seed=3)
    held_queries = {q for q in judged if groups[q] in held}
    assert {j.query_id for j in training} == set(judged) - held_queries
    assert set(validation.queries) == {q for q in held_queries if int(q[1:]) % 2 == 0}  # the ones that can score
    assert validation.groups == len({groups[q] for q in validation.queries})
    assert all(validation.qrels[q] == {groups[q]: 2, "d39": 0} for q in validation.queries)
    # without groups each judged query that can score is a group of its own, drawn among those alone
    _, alone = hold_out(judgments, documents, share=0.25, threshold=1, seed=3)
    assert set(alone.queries) == held_out_groups([q for q in judged if int(q[1:]) % 2 == 0], share=0.25, seed=3)


def test_validation_ranks_each_held_out_query_s_judged_documents_only(tmp_path: Path) -> None:
    """The score is nDCG@10 of the condensed list: the model's ranking of the whole corpus with the
    documents a query has no judgment for removed (computed here through the evaluation's own search)."""
    from sentence_transformers import SentenceTransformer

    from gradir.evaluation.metrics import score_run
    from gradir.models import default_model_path
    from gradir.retrieval.encoding import Encoder
    from gradir.retrieval.search import search
    from gradir.training.validation import hold_out

    nfcorpus = load_collection(shared_collection("nfcorpus"))
    judgments = judgments_from_qrels(nfcorpus, "dev", max_queries=12, seed=0)
    _, validation = hold_out(judgments, nfcorpus.documents, share=0.5, threshold=1, seed=0)
    judged = {d for docs in validation.qrels.values() for d in docs}
    assert set(validation.documents) == judged  # nothing else is encoded, whatever the corpus size
    # the judged documents among 300 others: a corpus with unjudged documents, small enough to encode quickly
    corpus = {d: nfcorpus.documents[d] for d in sorted(judged | set(sorted(nfcorpus.documents)[:300]))}
    queries = {q: nfcorpus.queries[q] for q in validation.queries}
    ranked = search(corpus, queries, "dense", encoder=Encoder(None, cache_dir=tmp_path), top_k=len(corpus))
    condensed = {q: {d: s for d, s in ranked[q].items() if d in validation.qrels[q]} for q in queries}
    unjudged_as_misses = score_run(validation.qrels, ranked)[0]["ndcg@10"]
    expected = score_run(validation.qrels, condensed)[0]["ndcg@10"]
    model = SentenceTransformer(str(default_model_path()), device="cpu", local_files_only=True)
    assert validation.score(model) == pytest.approx(expected, abs=1e-4)
    assert expected > unjudged_as_misses  # the corpus holds unjudged documents the base ranks in its top 10


def test_a_static_embedding_student_trains_with_a_token_limit_set(tmp_path: Path) -> None:
    """A StaticEmbedding model has no token limit to set: max_seq_length does not apply, training goes on."""
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.sentence_transformer.modules import StaticEmbedding
    from tokenizers import Tokenizer

    from gradir.models import default_model_path
    from gradir.training import TrainSettings, train

    weights = SentenceTransformer(str(default_model_path()), device="cpu")[0].auto_model.embeddings.word_embeddings.weight
    tokenizer = Tokenizer.from_file(str(default_model_path() / "tokenizer.json"))
    static = SentenceTransformer(modules=[StaticEmbedding(tokenizer, embedding_weights=weights.detach().numpy())])
    static.save(str(tmp_path / "static"))
    collection = load_collection(TINY)
    judgments = tmp_path / "judgments.jsonl"
    write_judgments(judgments, judgments_from_qrels(collection, "test"))
    settings = TrainSettings(max_steps=2, batch_size=2, list_size=2, max_seq_length=32, validation_share=0)
    result = train(judgments, collection, "bixse", tmp_path / "m", model=tmp_path / "static", settings=settings)
    assert result.steps == 2
    saved = SentenceTransformer(str(tmp_path / "m"), local_files_only=True)
    assert isinstance(saved[0], StaticEmbedding)
    assert not torch.equal(saved[0].embedding.weight, static[0].embedding.weight)  # it was trained


def test_checkpoints_are_scored_reading_as_many_tokens_as_the_base_and_the_output(tmp_path: Path) -> None:
    """Training under a token limit below the model's: each checkpoint is scored under the output's limit.

    With a learning rate of 0 every checkpoint is the base model, so each must score what the base
    scores; scored under the training limit of 16 tokens they would score less.
    """
    from gradir.training import TrainSettings, train

    nfcorpus = load_collection(shared_collection("nfcorpus"))
    path = tmp_path / "judgments.jsonl"
    write_judgments(path, judgments_from_qrels(nfcorpus, "dev", max_queries=12, seed=0))
    settings = TrainSettings(max_steps=2, batch_size=4, list_size=2, learning_rate=0.0, max_seq_length=16,
                             validation_share=0.5, validate_every=1, average_checkpoints=2)
    selection = train(path, nfcorpus, "bixse", tmp_path / "m", settings=settings).selection
    assert [c["step"] for c in selection["epochs"]] == [1, 2]
    for checkpoint in selection["epochs"]:
        assert checkpoint["ndcg@10"] == pytest.approx(selection["base"], abs=1e-6)
    # The average of the two (identical) checkpoints is scored too; it does not beat them, so it is not chosen.
    assert selection["average"]["steps"] == [1, 2] and not selection["average"]["chosen"]
    assert selection["average"]["ndcg@10"] == pytest.approx(selection["base"], abs=1e-6)
    assert "| average of steps 1, 2 |  |" in (tmp_path / "m" / "README.md").read_text()  # on the model card


def test_the_average_of_the_best_checkpoints_is_chosen_when_it_scores_higher() -> None:
    """Two checkpoints θ₀ ± δ, each hurt by the noise δ: their average is θ₀ again and must win.
    A checkpoint that is θ₀ itself ties every candidate with the base: the selection says it cannot choose.

    Real model, real held-out NFCorpus queries; the checkpoints are made by hand so that the
    average's advantage is known without training.
    """
    from sentence_transformers import SentenceTransformer

    from gradir.models import default_model_path
    from gradir.training.selection import EpochScores, Selection, choose, snapshot
    from gradir.training.validation import hold_out

    nfcorpus = load_collection(shared_collection("nfcorpus"))
    _, validation = hold_out(judgments_from_qrels(nfcorpus, "dev", max_queries=12, seed=0), nfcorpus.documents,
                             share=0.5, threshold=1, seed=0)
    model = SentenceTransformer(str(default_model_path()), device="cpu", local_files_only=True)
    base = snapshot(model)
    generator = torch.Generator().manual_seed(0)
    noise = {name: 0.05 * torch.randn(value.shape, generator=generator) if value.is_floating_point() else None
             for name, value in base.items()}
    selection = Selection(validation.describe(), validation.score(model))
    scores = EpochScores(model, validation, selection, keep=2)
    for step, sign in ((1, 1.0), (2, -1.0)):
        model.load_state_dict({n: v + sign * noise[n] if noise[n] is not None else v for n, v in base.items()})
        scores.score(epoch=step / 2, step=step)
    assert max(c["ndcg@10"] for c in selection.epochs) < selection.base  # each perturbed checkpoint is worse
    choose(model, base, scores, alphas=(0.0, 0.5, 1.0))
    assert selection.average["steps"] == [1, 2] and selection.average["chosen"]
    assert selection.average["ndcg@10"] == pytest.approx(selection.base, abs=1e-4)
    # The interpolations start from the average (θ₀ itself here), so every α scores the base's figure.
    assert [c["ndcg@10"] for c in selection.interpolation] == pytest.approx([selection.base] * 3, abs=1e-4)
    assert selection.score == pytest.approx(selection.base, abs=1e-4)
    assert not selection.summary()["undecided"]  # the checkpoints scored below the base: a choice on evidence
    # The untrained model as the only checkpoint: it and every interpolation score what the base scores,
    # so the base wins on the tie rule, and the run says its validation set could not choose.
    model.load_state_dict(base)
    tied = Selection(validation.describe(), selection.base)
    scores = EpochScores(model, validation, tied)
    scores.score(epoch=1.0, step=1)
    choose(model, base, scores, alphas=(0.0, 0.5, 1.0))
    assert tied.summary()["output"] == "base" and tied.summary()["undecided"]
    assert "cannot tell them apart" in tied.sentence()


def test_a_tuned_winner_is_handed_back_only_when_its_held_out_gain_passes_the_confirmation_test() -> None:
    """The untouched model as the only checkpoint against a base wrecked by noise: the checkpoint wins on
    the held-out queries. At a level its p-value passes it is the output; at a level equal to its p-value
    the output is the base, and the run says why. Real model, real held-out NFCorpus queries."""
    from sentence_transformers import SentenceTransformer

    from gradir.models import default_model_path
    from gradir.training.selection import EpochScores, Selection, choose, snapshot
    from gradir.training.validation import hold_out

    nfcorpus = load_collection(shared_collection("nfcorpus"))
    _, validation = hold_out(best_graded_and_random_documents(nfcorpus, 24), nfcorpus.documents, share=0.5,
                             threshold=1, seed=0)
    model = SentenceTransformer(str(default_model_path()), device="cpu", local_files_only=True)
    good = snapshot(model)
    generator = torch.Generator().manual_seed(0)
    wrecked = {name: value + 0.2 * torch.randn(value.shape, generator=generator) if value.is_floating_point() else value
               for name, value in good.items()}
    model.load_state_dict(wrecked)
    selection = Selection(validation.describe(), validation.score(model))
    scores = EpochScores(model, validation, selection)
    model.load_state_dict(good)
    scores.score(epoch=1.0, step=1)
    choose(model, wrecked, scores, alphas=(0.0, 1.0), confirm_level=0.5)
    test = selection.confirmation
    assert selection.alpha == 1.0 and test["kept"] and test["p"] < 0.5
    assert test["gain"] == pytest.approx(selection.score - selection.base, abs=1e-6) and test["wins"] > test["losses"]
    assert validation.score(model) == pytest.approx(selection.score, abs=1e-6)  # the winner is loaded
    choose(model, wrecked, scores, alphas=(0.0, 1.0), confirm_level=test["p"])  # p < level fails at level = p
    assert selection.alpha == 0.0 and selection.summary()["output"] == "base" and not selection.confirmation["kept"]
    assert selection.score == selection.base and validation.score(model) == pytest.approx(selection.base, abs=1e-6)
    assert "not significant" in selection.sentence() and not selection.summary()["undecided"]
