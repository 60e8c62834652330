"""Judgments from human qrels, training through the CLI, and the trained model loading and scoring."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from conftest import TINY, run_cli, shared_collection
from gradir.collections import load_collection
from gradir.judgments import judgments_from_qrels, read_judgments, write_judgments
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


def test_bad_judgments_name_the_row(tmp_path: Path) -> None:
    from gradir.errors import GradirError

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
    dataset = assemble_training_set(judgments, collection.documents, loss, list_size=3, seed=1)
    assert dataset.num_rows == 4  # one row per document of grade >= 1
    first_column = "positive" if loss == "infonce" else "document_1"
    assert dataset.column_names[:2] == ["query", first_column]
    if loss == "wasserstein":
        assert sorted(row[0] for row in dataset["label"]) == [1.0, 1.0, 2.0, 2.0]
    if loss == "bixse":
        assert all(row[0] >= row[1] and row[0] >= row[2] for row in dataset["label"])


def test_train_on_nfcorpus_judgments_gives_a_model_that_loads_and_scores(tmp_path: Path) -> None:
    nfcorpus = shared_collection("nfcorpus")
    judgments = tmp_path / "judgments.parquet"
    made = run_cli(
        "judgments", "from-qrels", "--collection", nfcorpus, "--split", "train", "--max-queries", "12",
        "--negatives", "2", "--retriever", "bm25", "--out", judgments, "--json",
    )
    assert made.returncode == 0, made.stderr
    assert json.loads(made.stdout)["queries"] == 12

    out = tmp_path / "model"
    trained = run_cli(
        "train", "--judgments", judgments, "--collection", nfcorpus, "--loss", "bixse", "--out", out,
        "--max-steps", "3", "--batch-size", "4", "--list-size", "2", "--json",
    )
    assert trained.returncode == 0, trained.stderr
    summary = json.loads(trained.stdout)
    assert summary["steps"] == 3 and summary["final_loss"] is not None

    from sentence_transformers import SentenceTransformer

    vectors = SentenceTransformer(str(out)).encode(["vitamin d"], normalize_embeddings=True)
    assert vectors.shape == (1, 384)
    card = (out / "README.md").read_text()
    assert "## Trained with gradir" in card and "bixse" in card

    scored = run_cli("eval", "--model", out, "--collection", TINY, "--json")
    assert scored.returncode == 0, scored.stderr
    assert 0.0 < json.loads(scored.stdout)["ndcg@10"] <= 1.0


def test_train_rejects_an_unknown_loss(tmp_path: Path) -> None:
    result = run_cli("train", "--judgments", tmp_path / "j.parquet", "--collection", TINY, "--loss", "softmax", "--out", tmp_path / "m")
    assert result.returncode == 2
    assert "unknown loss 'softmax'" in result.stderr


def test_training_resumes_from_its_last_checkpoint(tmp_path: Path) -> None:
    collection = load_collection(TINY)
    judgments = tmp_path / "judgments.jsonl"
    write_judgments(judgments, judgments_from_qrels(collection, "test"))
    out = tmp_path / "model"
    common = ["train", "--judgments", judgments, "--collection", TINY, "--loss", "infonce", "--out", out,
              "--batch-size", "2", "--list-size", "2", "--save-steps", "2", "--epochs", "10", "--json"]
    first = run_cli(*common, "--max-steps", "2")
    assert first.returncode == 0, first.stderr
    assert (out / ".checkpoints" / "checkpoint-2").is_dir()
    # A checkpoint cut short by a crash while saving (no trainer_state.json) is not resumed from.
    torn = out / ".checkpoints" / "checkpoint-3"
    torn.mkdir()
    (torn / "model.safetensors").write_bytes((out / ".checkpoints" / "checkpoint-2" / "model.safetensors").read_bytes()[:1000])
    resumed = run_cli(*common, "--max-steps", "4", "--resume")
    assert resumed.returncode == 0, resumed.stderr
    summary = json.loads(resumed.stdout)
    assert summary["steps"] == 4 and summary["resumed_from_step"] == 2
    assert not torn.exists()

    # An uninterrupted run of 4 steps with the same seed ends with nearly the same weights
    # (the first run planned its learning-rate schedule for 2 steps, not 4).
    straight = tmp_path / "straight"
    common[common.index(out)] = straight
    whole = run_cli(*common, "--max-steps", "4")
    assert whole.returncode == 0, whole.stderr
    from safetensors.numpy import load_file

    resumed_weights = load_file(out / "model.safetensors")
    straight_weights = load_file(straight / "model.safetensors")
    from gradir.models import default_model_path

    base_weights = load_file(default_model_path() / "model.safetensors")
    gap = max(float(abs(resumed_weights[k] - straight_weights[k]).max()) for k in resumed_weights)
    moved = max(float(abs(straight_weights[k] - base_weights[k]).max()) for k in resumed_weights)
    assert moved > 0 and gap < 0.5 * moved


def test_cached_training_runs_through_the_cli(tmp_path: Path) -> None:
    collection = load_collection(TINY)
    judgments = tmp_path / "judgments.jsonl"
    write_judgments(judgments, judgments_from_qrels(collection, "test"))
    result = run_cli("train", "--judgments", judgments, "--collection", TINY, "--loss", "bixse", "--out", tmp_path / "m",
                     "--batch-size", "4", "--list-size", "2", "--mini-batch-size", "2", "--max-steps", "1", "--json")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["settings"]["mini_batch_size"] == 2
