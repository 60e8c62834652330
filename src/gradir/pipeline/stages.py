"""The pipeline's stages: what each reads, what settings it depends on, what it writes.

Each stage is a function of a :class:`Context` that writes its outputs into the run
directory (atomically) and returns a JSON summary. :data:`STAGES` lists them in order
with their upstream stages and the config settings that enter their fingerprint.
"""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gradir.atomic import write_text_atomic
from gradir.collections.loader import Collection
from gradir.collections.records import Document
from gradir.errors import GradirError
from gradir.pipeline.config import PipelineConfig
from gradir.pipeline.files import (
    BALANCE_DOCUMENTS,
    COMPARISON,
    DOCUMENTS,
    EVAL,
    JUDGMENTS,
    KEPT,
    MODEL,
    PAIRS,
    PASSAGES,
    QUERIES,
    REPORT_HTML,
    REPORT_MD,
    TRAIN_DOCUMENTS,
    TRAIN_QUERY_GROUPS,
    TRAIN_SETTINGS,
)
from gradir.tables import read_table


@dataclass
class Context:
    """What every stage may use: the config, the run directory, the collection, shared models."""

    config: PipelineConfig
    root: Path
    collection: Collection
    _client: Any = None
    _grade_client: Any = None
    _encoder: Any = None
    llm_counts: dict[str, int] = field(default_factory=dict)

    def path(self, name: str) -> Path:
        return self.root / name

    @property
    def cache_dir(self) -> Path | None:
        return Path(self.config.run.cache_dir) if self.config.run.cache_dir else None

    def client(self):
        """The LLM client, loaded once per run (the embedded GGUF takes seconds to load)."""
        if self._client is None:
            self._client = self._new_client(self.config.llm.backend)
        return self._client

    def grade_client(self):
        """The LLM that grades: ``grade.llm`` when set (e.g. a base model that scores), else the run's LLM."""
        if not self.config.grade.llm or self.config.grade.llm == self.config.llm.backend:
            return self.client()
        if self._grade_client is None:
            self._grade_client = self._new_client(self.config.grade.llm)
        return self._grade_client

    def _new_client(self, spec: str):
        from gradir.llm import LLMClient, load_backend

        llm = self.config.llm
        backend = load_backend(
            spec, api_key_env=llm.api_key_env, concurrency=llm.concurrency, timeout=llm.timeout, max_retries=llm.max_retries,
        )
        cache: Path | None | bool = (self.cache_dir if self.config.run.cache_dir else None) if llm.cache else False
        return LLMClient(backend, cache_dir=cache)

    def encoder(self):
        if self._encoder is None:
            from gradir.retrieval.encoding import Encoder

            self._encoder = Encoder(self.config.model.base or None, cache_dir=self.cache_dir,
                                    batch_size=self.config.model.batch_size, **_encoding(self.config))
        return self._encoder

    def release_index(self) -> None:
        """Free the corpus index the encoding stages share, before a stage that needs the memory."""
        if self._encoder is not None:
            self._encoder.release_index()

    def close(self) -> None:
        for name in ("_client", "_grade_client"):
            if getattr(self, name) is not None:
                getattr(self, name).close()
                setattr(self, name, None)


def _write_rows(path: Path, rows: list[dict]) -> None:
    from gradir.tables import write_table

    write_table(path, rows)


# --- stages ------------------------------------------------------------------------

def sample_passages(ctx: Context) -> dict[str, Any]:
    """Sample the passages queries are written for (seeded; documents too short to ask about are left out)."""
    chosen, eligible = sampled_passage_ids(ctx)
    _write_rows(ctx.path(PASSAGES), [{"doc_id": did} for did in chosen])
    return {"written": len(chosen), "corpus": len(ctx.collection.documents), "eligible": eligible}


def sampled_passage_ids(ctx: Context) -> tuple[list[str], int]:
    """The passages the sample stage picks (the same ids on every call), and how many were eligible."""
    from gradir.synth.stage import sample_passage_ids

    return sample_passage_ids(ctx.collection.documents, ctx.config.generate.passages, ctx.config.run.seed)


def generate_queries(ctx: Context) -> dict[str, Any]:
    from gradir.synth.stage import query_stage

    passage_ids = [row["doc_id"] for row in read_table(ctx.path(PASSAGES))]
    return query_stage(ctx.collection.documents, passage_ids, ctx.config.generate, ctx.client(), ctx.config.run.seed,
                       ctx.path(QUERIES))


def filter_queries(ctx: Context) -> dict[str, Any]:
    from gradir.synth.stage import filter_stage

    return filter_stage(ctx.path(QUERIES), ctx.collection.documents, ctx.config.filter, ctx.encoder(),
                        ctx.config.index.approximate(), ctx.path(KEPT))


def generate_documents(ctx: Context) -> dict[str, Any]:
    from gradir.synth.stage import documents_stage

    client = ctx.client() if ctx.config.documents.enabled else None
    return documents_stage(ctx.path(KEPT), ctx.config.documents, client, ctx.config.run.seed, ctx.path(DOCUMENTS))


def mine(ctx: Context) -> dict[str, Any]:
    from gradir.synth.stage import mine_stage

    return mine_stage(ctx.path(KEPT), ctx.collection.documents, ctx.config.mine, ctx.encoder(),
                      ctx.config.index.approximate(), ctx.path(PAIRS), held_out=_held_out_queries(ctx))


def _held_out_queries(ctx: Context) -> set[str]:
    """The kept queries the train stage will hold out for validation: the same draw of source passages."""
    from gradir.training.validation import held_out_groups

    sources = _source_passages(ctx)
    held = held_out_groups(sources.values(), share=ctx.config.train.validation_share, seed=ctx.config.run.seed)
    return {query for query, passage in sources.items() if passage in held}


def synthetic_documents(ctx: Context) -> dict[str, Document]:
    """Documents written by the LLM (levels, balancing): not in the corpus, but in the judgments."""
    return synthetic_documents_in(ctx.root)


def synthetic_documents_in(run_dir: Path) -> dict[str, Document]:
    """The written documents of the run in ``run_dir`` (also read by benchmarks that retrain on a finished run)."""
    documents: dict[str, Document] = {}
    for name in (DOCUMENTS, BALANCE_DOCUMENTS):
        if (run_dir / name).is_file():
            for row in read_table(run_dir / name):
                documents[row["doc_id"]] = Document(row["doc_id"], row["text"])
    return documents


def grade(ctx: Context) -> dict[str, Any]:
    from gradir.grading.stage import LLM_GRADERS, grade_by_level_to_file, grade_to_files
    from gradir.synth.records import read_synthetic_documents

    settings = ctx.config.grade
    written = read_synthetic_documents(ctx.path(DOCUMENTS)) if ctx.config.documents.enabled else []
    if settings.grader == "level":
        ctx.path(BALANCE_DOCUMENTS).unlink(missing_ok=True)
        return grade_by_level_to_file(written, ctx.path(JUDGMENTS))
    pairs, documents = pairs_to_grade(ctx, written)
    client = ctx.grade_client() if settings.grader in LLM_GRADERS else None
    mark = client.usage_mark() if client else None
    held_out = _held_out_queries(ctx) if settings.validation_retriever_weight is not None else frozenset()
    summary = grade_to_files(pairs, documents, settings, client, ctx.client() if settings.balance else None,
                             ctx.config.run.seed, ctx.path(JUDGMENTS), ctx.path(BALANCE_DOCUMENTS), held_out)
    if settings.check_queries:
        summary["check"] = _check_grader(ctx, client)
    if client is not None:
        summary.update(client.usage_since(mark))
    return summary


def pairs_to_grade(ctx: Context, written: list) -> tuple[list, dict[str, Document]]:
    """The mined pairs and the written documents' pairs, with every document they name."""
    from gradir.grading.grade import Pair

    pairs = [Pair(r["query_id"], r["query_text"], r["doc_id"], r["is_source"], r.get("score"), r.get("bm25_score"))
             for r in read_table(ctx.path(PAIRS))]
    pairs += [Pair(d.query_id, d.query_text, d.doc_id, False) for d in written]
    return pairs, {**ctx.collection.documents, **{d.doc_id: Document(d.doc_id, d.text) for d in written}}


def _check_grader(ctx: Context, client) -> dict[str, Any]:
    """The grader on the eval split's judged queries: reranking the base top 10, pairwise accuracy, agreement."""
    from gradir.grading.check import check_against_qrels
    from gradir.grading.stage import pair_grader

    result = check_against_qrels(
        ctx.collection, ctx.config.eval.split, pair_grader(ctx.config.grade, ctx.collection.documents, client),
        queries=ctx.config.grade.check_queries, top_k=10, seed=ctx.config.run.seed, encoder=ctx.encoder(),
    )
    return {k: v for k, v in result.items() if k not in ("confusion", "human_grades")}


def train_model(ctx: Context, resume: bool) -> dict[str, Any]:
    """Train in this process, or under ``train.launcher`` (torchrun, accelerate launch) as a child."""
    from gradir.training import train

    settings = ctx.config.train
    ctx.release_index()  # filtering and mining are done with it; training needs the memory
    if settings.launcher:
        return _launch_training(ctx, resume)
    result = train(
        ctx.path(JUDGMENTS), ctx.collection, settings.loss, ctx.path(MODEL), model=ctx.config.model.base or None,
        settings=train_settings(ctx.config), resume=resume, extra_documents=synthetic_documents(ctx),
        loss_options=dict(settings.loss_options), query_groups=_source_passages(ctx),
    )
    summary = result.summary()
    summary.pop("settings", None)
    return summary


def train_settings(config: PipelineConfig):
    """The ``[train]`` section as the trainer takes it, with the run's seed."""
    return config.train.trainer_settings(config.run.seed)


def _launch_training(ctx: Context, resume: bool) -> dict[str, Any]:
    """``gradir train`` as the launcher's child, given the same settings through a JSON file."""
    settings = ctx.config.train
    extra = synthetic_documents(ctx)
    arguments = [
        "-m", "gradir", "train", "--judgments", str(ctx.path(JUDGMENTS)), "--collection", str(ctx.collection.root),
        "--loss", settings.loss, "--out", str(ctx.path(MODEL)),
        "--settings", str(train_settings(ctx.config).write(ctx.path(TRAIN_SETTINGS))),
        "--query-groups", str(_query_groups_file(ctx)), "--json",
    ]
    arguments += [f"--loss-option={key}={value}" for key, value in settings.loss_options.items()]
    if extra:
        arguments += ["--documents", str(_extra_documents_file(ctx, extra))]
    if ctx.config.model.base:
        arguments += ["--model", ctx.config.model.base]
    if ctx.config.run.lenient:
        arguments.append("--lenient")  # each process reads the collection as this run did
    if resume:
        arguments.append("--resume")
    command = [*shlex.split(settings.launcher), *arguments]
    if command[0] in ("python", "python3"):
        command[0] = sys.executable
    elif (beside := Path(sys.executable).parent / command[0]).is_file():
        command[0] = str(beside)  # torchrun / accelerate of this environment, even when it is not on PATH
    environment = dict(os.environ)
    if ctx.cache_dir is not None:
        environment["GRADIR_CACHE_DIR"] = str(ctx.cache_dir)  # the child shares this run's caches
    completed = subprocess.run(command, stdout=subprocess.PIPE, text=True, env=environment)
    if completed.returncode != 0:
        raise GradirError(f"training under '{settings.launcher}' failed with exit code {completed.returncode}")
    lines = [line for line in completed.stdout.splitlines() if line.startswith("{")]
    summary = json.loads(lines[-1]) if lines else {}
    summary.pop("settings", None)
    summary["launcher"] = settings.launcher
    return summary


def _source_passages(ctx: Context) -> dict[str, str]:
    return source_passages_in(ctx.root)


def source_passages_in(run_dir: Path) -> dict[str, str]:
    """Each kept synthetic query's source passage: its group when validation queries are held out."""
    from gradir.synth.records import read_synthetic_queries

    return {q.query_id: q.source_doc_id for q in read_synthetic_queries(run_dir / KEPT)}


def _query_groups_file(ctx: Context) -> Path:
    path = ctx.path(TRAIN_QUERY_GROUPS)
    write_text_atomic(path, json.dumps(_source_passages(ctx)) + "\n")
    return path


def _extra_documents_file(ctx: Context, extra: dict[str, Document]) -> Path:
    path = ctx.path(TRAIN_DOCUMENTS)
    _write_rows(path, [{"_id": d.doc_id, "text": d.text} for d in extra.values()])
    return path


def evaluate_models(ctx: Context) -> dict[str, Any]:
    from gradir.retrieval.encoding import Encoder
    from gradir.evaluation import evaluate
    from gradir.evaluation.compare import compare_per_query

    from gradir.retrieval.runtimes import export_into_model_folder

    settings = ctx.config.eval
    start = time.perf_counter()
    # The tuned model is exported once, into its own folder beside the PyTorch weights.
    export_into_model_folder(ctx.path(MODEL), ctx.config.model.backend, ctx.config.model.precision)
    export_seconds = time.perf_counter() - start
    results = {}
    # The base model is the run's own encoder (its corpus index, when still held, is reused);
    # its index is freed before the tuned model's is built, so one corpus index is in memory at a time.
    results["base"] = evaluate(ctx.collection, split=settings.split, retriever=settings.retriever,
                               encoder=ctx.encoder(), top_k=settings.top_k)
    ctx.release_index()
    tuned_is_base = _selected_output(ctx.path(MODEL)) == "base"
    if tuned_is_base:  # the validation handed back the base weights: the same vectors, nothing to encode
        results["tuned"] = results["base"]
    else:
        tuned = Encoder(ctx.path(MODEL), cache_dir=ctx.cache_dir, batch_size=ctx.config.model.batch_size,
                        **_encoding(ctx.config))
        results["tuned"] = evaluate(ctx.collection, split=settings.split, retriever=settings.retriever,
                                    encoder=tuned, top_k=settings.top_k)
    for name, result in results.items():
        result.save(ctx.path(f"{EVAL}/{name}"))
    tests = {
        metric: compare_per_query(results["base"].per_query, results["tuned"].per_query, metric).as_dict()
        for metric in ("ndcg@10", "recall@100")
    }
    summary = {
        "split": settings.split,
        "base": results["base"].summary(),
        "tuned": results["tuned"].summary(),
        "paired_tests": tests,
    }
    write_text_atomic(ctx.path(COMPARISON), json.dumps(summary, indent=2) + "\n")
    return {"ndcg@10": {"base": results["base"].metrics["ndcg@10"], "tuned": results["tuned"].metrics["ndcg@10"]},
            "recall@100": {"base": results["base"].metrics["recall@100"], "tuned": results["tuned"].metrics["recall@100"]},
            "p_ndcg@10": tests["ndcg@10"]["p_randomization"], "queries": results["base"].queries,
            "encoding": f"{ctx.config.model.backend} {ctx.config.model.precision}",
            "tuned_export_seconds": round(export_seconds, 1), "tuned_is_base": tuned_is_base}


def _selected_output(model_dir: Path) -> str | None:
    """What the validation handed back ("base", "interpolated", "tuned"), from the model's training.json."""
    from gradir.pipeline.files import TRAINING_SUMMARY

    try:
        return json.loads((model_dir / TRAINING_SUMMARY).read_text(encoding="utf-8")).get("selection", {}).get("output")
    except (FileNotFoundError, json.JSONDecodeError):
        return None


def write_report(ctx: Context) -> dict[str, Any]:
    from gradir.pipeline.report import write_reports

    return write_reports(ctx.root, ctx.collection, ctx.config)


@dataclass(frozen=True)
class Stage:
    name: str
    run: Callable[..., dict[str, Any]]
    inputs: tuple[str, ...]
    settings: Callable[[PipelineConfig], dict[str, Any]]
    outputs: tuple[str, ...]
    uses_model: bool = False
    resumable: bool = False  # run(ctx, resume) continues a half-done stage from its checkpoints
    description: str = ""


def _llm_settings(config: PipelineConfig) -> dict[str, Any]:
    return {"backend": config.llm.backend}


def _encoding(config: PipelineConfig) -> dict[str, Any]:
    """The settings that change the vectors of the stages that encode (part of their fingerprints)."""
    return {"backend": config.model.backend, "precision": config.model.precision}


STAGES: tuple[Stage, ...] = (
    Stage("sample", sample_passages, (), lambda c: {"passages": c.generate.passages, "seed": c.run.seed},
          (PASSAGES,), description="sampling passages"),
    Stage("generate", generate_queries, ("sample",),
          lambda c: {**c.generate.model_dump(exclude={"passages"}), **_llm_settings(c), "seed": c.run.seed},
          (QUERIES,), description="generating queries with the LLM"),
    Stage("filter", filter_queries, ("generate",), lambda c: {**c.filter.model_dump(), **_encoding(c), **c.index.fingerprint()}, (KEPT,),
          uses_model=True,
          description="round-trip filtering the queries"),
    Stage("documents", generate_documents, ("filter",),
          lambda c: {**c.documents.model_dump(), **(_llm_settings(c) if c.documents.enabled else {}), "seed": c.run.seed},
          (DOCUMENTS,), description="writing documents at relevance levels"),
    # "pair_scores": mined pairs carry each candidate's BM25 score too (runs mined before it mine again)
    Stage("mine", mine, ("filter",),
          lambda c: {**c.mine.fingerprint(), **_encoding(c), **c.index.fingerprint(), "pair_scores": "retriever+bm25",
                     "held_out": {"share": c.train.validation_share, "seed": c.run.seed}},
          (PAIRS,), uses_model=True,
          description="mining candidate documents"),
    Stage("grade", grade, ("mine", "documents"),
          lambda c: {**c.grade.fingerprint(), **(_llm_settings(c) if c.grade.grader in ("llm", "likelihood") else {}),
                     "seed": c.run.seed},
          (JUDGMENTS,), description="grading the pairs 0-3"),
    Stage("train", train_model, ("grade",),
          lambda c: {**c.train.fingerprint(), "seed": c.run.seed},
          (f"{MODEL}/training.json",), uses_model=True, resumable=True, description="fine-tuning the embedding model"),
    Stage("evaluate", evaluate_models, ("train",), lambda c: {**c.eval.model_dump(), **_encoding(c)}, (COMPARISON,),
          uses_model=True,
          description="evaluating the base and tuned models"),
    Stage("report", write_report, ("sample", "generate", "filter", "documents", "mine", "grade", "train", "evaluate"),
          lambda c: {}, (REPORT_MD, REPORT_HTML), description="writing report.md and report.html"),
)
STAGE_NAMES = tuple(stage.name for stage in STAGES)
