"""Running the stages in order, skipping those whose fingerprint has not changed.

A stage's fingerprint is a BLAKE2 hash of its name, its settings, the fingerprints of
the stages it reads and, for the first stage, the collection's files (and, for stages
that encode or train, the base model's files). A stage is *done* when its recorded
fingerprint equals the one it would have now and its outputs exist; otherwise it runs
again, and so does every stage downstream of it (their input fingerprints change).
An interrupted stage runs again from the start; the LLM call cache and the embedding
cache make the work it had finished free, and training continues from its last
checkpoint.
"""

from __future__ import annotations

import hashlib
import json
import resource
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gradir.collections import load_collection
from gradir.collections.loader import Collection
from gradir.collections.problems import report_skipped
from gradir.console import err_console
from gradir.cache_dir import default_cache_dir
from gradir.errors import GradirError
from gradir.file_digests import file_digest
from gradir.models import model_fingerprint, resolve_model_path
from gradir.pipeline.config import PipelineConfig, load_config, render_config
from gradir.pipeline.files import CONFIG, EVAL, MODEL, STATE
from gradir.pipeline.rundir import RunDirectory
from gradir.pipeline.stages import STAGES, Context, Stage

FINGERPRINT_VERSION = 1


def collection_fingerprint(root: Path, cache_dir: Path | None = None) -> str:
    """A hash of the collection's files (corpus, queries, qrels): their names and content digests.

    Each file's digest is read again only when its size or modification time changed
    (:mod:`gradir.file_digests`), so an unchanged corpus is not re-read on every run.
    """
    digest = hashlib.blake2b(digest_size=16)
    files = [root] if root.is_file() else sorted(p for p in root.rglob("*") if p.is_file() and not p.name.startswith("."))
    for path in files:
        digest.update(str(path.relative_to(root) if path != root else path.name).encode() + b"\0")
        digest.update(file_digest(path, cache_dir).encode())
    return digest.hexdigest()


class Fingerprints:
    """The fingerprint each stage would have under a config (computed once per stage)."""

    def __init__(self, config: PipelineConfig, collection_root: Path):
        self.config = config
        self.collection_root = collection_root
        self._values: dict[str, str] = {}
        self._collection: str | None = None
        self._model: str | None = None

    def _collection_fp(self) -> str:
        if self._collection is None:
            cache = Path(self.config.run.cache_dir) if self.config.run.cache_dir else default_cache_dir()
            self._collection = collection_fingerprint(self.collection_root, cache)
        return self._collection

    def _model_fp(self) -> str:
        if self._model is None:
            self._model = model_fingerprint(resolve_model_path(self.config.model.base or None))
        return self._model

    def of(self, stage: Stage) -> str:
        if stage.name not in self._values:
            by_name = {s.name: s for s in STAGES}
            payload: dict[str, Any] = {
                "version": FINGERPRINT_VERSION,
                "stage": stage.name,
                "settings": stage.settings(self.config),
                "inputs": {name: self.of(by_name[name]) for name in stage.inputs},
                "collection": self._collection_fp(),
            }
            if stage.uses_model:
                payload["model"] = self._model_fp()
            encoded = json.dumps(payload, sort_keys=True, default=str).encode()
            self._values[stage.name] = hashlib.blake2b(encoded, digest_size=16).hexdigest()
        return self._values[stage.name]


@dataclass
class StageStatus:
    name: str
    status: str  # done | stale | pending | running (interrupted)
    seconds: float | None = None
    finished: str | None = None
    summary: dict[str, Any] = field(default_factory=dict)
    cpu_seconds: float | None = None


def _outputs_exist(root: Path, stage: Stage) -> bool:
    return all((root / name).exists() for name in stage.outputs)


def stage_statuses(run: RunDirectory, config: PipelineConfig) -> list[StageStatus]:
    fingerprints = Fingerprints(config, config.collection_path())
    recorded = run.state()
    statuses = []
    for stage in STAGES:
        entry = recorded.get(stage.name)
        if entry is None:
            statuses.append(StageStatus(stage.name, "pending"))
            continue
        current = entry.get("fingerprint") == fingerprints.of(stage)
        if entry.get("status") == "done":
            status = "done" if current and _outputs_exist(run.root, stage) else "stale"
        else:
            status = "interrupted" if current else "stale"
        statuses.append(StageStatus(stage.name, status, entry.get("seconds"), entry.get("finished"),
                                    entry.get("summary", {}), entry.get("cpu_seconds")))
    return statuses


def _clear_outputs(root: Path, stage: Stage) -> None:
    """Remove what an out-of-date run of the stage left, so no stale file passes for a new one."""
    for name in stage.outputs:
        (root / name).unlink(missing_ok=True)
    if stage.name == "train":
        shutil.rmtree(root / MODEL, ignore_errors=True)
    if stage.name == "evaluate":
        shutil.rmtree(root / EVAL, ignore_errors=True)


@dataclass
class PipelineResult:
    out: Path
    stages: dict[str, dict[str, Any]]
    seconds: float

    skipped: dict[str, Any] = field(default_factory=dict)
    plan: dict[str, Any] = field(default_factory=dict)

    def summary(self) -> dict[str, Any]:
        return {"out": str(self.out), "seconds": round(self.seconds, 3), "stages": self.stages, "skipped": self.skipped,
                "plan": self.plan}


def prepare(config: PipelineConfig | Path | str) -> tuple[PipelineConfig, Collection]:
    """Validate everything a run needs before it writes anything."""
    if not isinstance(config, PipelineConfig):
        config = load_config(config)
    path = config.collection_path()
    if not path.exists():
        raise GradirError(f"{config.where('run', 'collection')}: run.collection: {path}: no such folder or file")
    collection = load_collection(path, lenient=config.run.lenient)
    if config.model.base and not Path(config.model.base).is_dir():
        raise GradirError(f"{config.where('model', 'base')}: model.base: {config.model.base}: no such model folder")
    if config.eval.split not in collection.splits():
        raise GradirError(
            f"{config.where('eval', 'split')}: eval.split: {collection.root} has no qrels for '{config.eval.split}' "
            f"(available: {', '.join(collection.splits()) or 'none'})"
        )
    collection.qrels(config.eval.split)
    report_skipped(collection.log.summary())
    if not collection.split_queries(config.eval.split):
        raise GradirError(f"{collection.root}: split '{config.eval.split}' has no judged queries to evaluate on")
    if config.generate.examples and not Path(config.generate.examples).is_file():
        raise GradirError(f"{config.where('generate', 'examples')}: generate.examples: {config.generate.examples}: no such file")
    if config.grade.cross_encoder and not Path(config.grade.cross_encoder).is_dir():
        raise GradirError(f"{config.where('grade', 'cross_encoder')}: grade.cross_encoder: {config.grade.cross_encoder}: no such folder")
    return config, collection


LLM_STAGES = ("generate", "documents", "grade")


def run_pipeline(config: PipelineConfig | Path | str, out: Path | str, *, dry_run: bool = False) -> PipelineResult:
    """Run every stage that is not already done under this config; return what each did.

    When every stage is already done under this config and these collection files (their
    fingerprints match), nothing is loaded: a rerun costs the fingerprints alone. Before
    the LLM stages run, the plan (:mod:`gradir.pipeline.plan`) is printed; ``dry_run``
    prints it and returns without writing anything.
    """
    start = time.perf_counter()
    config = config if isinstance(config, PipelineConfig) else load_config(config)
    if config.collection_path().exists() and (Path(out) / STATE).is_file():
        run = RunDirectory(out)
        with run:
            _announce_takeover(run)
            fingerprints = Fingerprints(config, config.collection_path())
            if not dry_run and all(_up_to_date(run, stage, fingerprints.of(stage)) for stage in STAGES):
                stages = {stage.name: _skipped(run, stage) for stage in STAGES}
                return PipelineResult(run.root, stages, time.perf_counter() - start)
    config, collection = prepare(config)
    if dry_run:
        context = Context(config, Path(out), collection)
        try:
            plan = _show_plan(context, RunDirectory(out))
        finally:
            context.close()
        return PipelineResult(Path(out), {}, time.perf_counter() - start, collection.log.skipped(), plan)
    run = RunDirectory(out)
    with run:
        _announce_takeover(run)
        from gradir.atomic import write_text_atomic

        write_text_atomic(run.path(CONFIG), render_config(config))
        skipped = collection.log.skipped()
        if skipped:
            run.log(f"lenient: skipped {skipped['records']} bad record(s): " + "; ".join(skipped["first"]))
        fingerprints = Fingerprints(config, config.collection_path())
        context = Context(config, run.root, collection)
        stages: dict[str, dict[str, Any]] = {}
        plan: dict[str, Any] = {}
        try:
            if not all(_up_to_date(run, stage, fingerprints.of(stage)) for stage in STAGES if stage.name in LLM_STAGES):
                plan = _show_plan(context, run)
            for stage in STAGES:
                stages[stage.name] = _run_stage(run, context, stage, fingerprints.of(stage))
        finally:
            context.close()
    return PipelineResult(run.root, stages, time.perf_counter() - start, collection.log.skipped(), plan)


def _show_plan(context: Context, run: RunDirectory) -> dict[str, Any]:
    """Measure this machine's speed with the run's models, print the plan, and return it."""
    from gradir.pipeline.plan import cached_calls, measure_timings, plan_run, print_plan

    config, collection = context.config, context.collection
    done = {s.name for s in stage_statuses(run, config) if s.status == "done"}
    sample = [d.full_text for d in list(collection.documents.values())[:16]]
    timings = measure_timings(context, sample, done)
    cached = 0 if {"filter", "mine"} <= done else context.encoder().cached_count(
        [d.full_text for d in collection.documents.values()])
    plan = plan_run(config, len(collection.documents), len(collection.split_queries(config.eval.split)), done, timings,
                    cached_passages=cached, cached=cached_calls(context, done))
    print_plan(plan, timings, config.llm.backend)
    return {"stages": [row.as_dict() for row in plan], "timings": timings.as_dict(),
            "llm_calls": sum(row.llm_calls for row in plan), "seconds": round(sum(row.seconds for row in plan), 1)}


def _announce_takeover(run: RunDirectory) -> None:
    if run.took_over_from:
        err_console.print(f"[yellow]took over a stale lock left by {run.took_over_from} (that process is gone)[/yellow]")
        run.log(f"took over a stale lock left by {run.took_over_from}")


def _up_to_date(run: RunDirectory, stage: Stage, fingerprint: str) -> bool:
    entry = run.state().get(stage.name, {})
    return entry.get("status") == "done" and entry.get("fingerprint") == fingerprint and _outputs_exist(run.root, stage)


def _skipped(run: RunDirectory, stage: Stage) -> dict[str, Any]:
    err_console.print(f"[dim]{stage.name}: up to date, skipped[/dim]")
    return {"status": "skipped", "seconds": 0.0, "summary": run.state()[stage.name].get("summary", {})}


def _run_stage(run: RunDirectory, context: Context, stage: Stage, fingerprint: str) -> dict[str, Any]:
    entry = run.state().get(stage.name, {})
    if _up_to_date(run, stage, fingerprint):
        return _skipped(run, stage)
    resume = stage.resumable and entry.get("status") == "running" and entry.get("fingerprint") == fingerprint
    if not resume:
        _clear_outputs(run.root, stage)
    err_console.print(f"[bold]{stage.name}[/bold]: {stage.description}" + (" (resuming)" if resume else ""))
    run.record(stage.name, fingerprint=fingerprint, status="running", started=time.strftime("%Y-%m-%dT%H:%M:%S"))
    run.log(f"{stage.name}: started" + (" (resuming)" if resume else ""))
    began, cpu_began = time.perf_counter(), _cpu_seconds()
    summary = stage.run(context, resume) if stage.resumable else stage.run(context)
    seconds = round(time.perf_counter() - began, 3)
    run.record(stage.name, fingerprint=fingerprint, status="done", seconds=seconds,
               cpu_seconds=round(_cpu_seconds() - cpu_began, 3),
               finished=time.strftime("%Y-%m-%dT%H:%M:%S"), summary=summary)
    line = _one_line(summary)
    run.log(f"{stage.name}: done in {seconds:.1f} s; {line}")
    err_console.print(f"  {stage.name}: done in {seconds:.1f} s; {line}")
    return {"status": "ran", "seconds": seconds, "summary": summary}


def _cpu_seconds() -> float:
    """User + system CPU seconds of this process and of its finished children (a training launcher).

    Recorded beside each stage's wall seconds: it is what a stage costs on a fleet, and
    unlike wall time it does not grow when other tenants of a shared machine take the cores.
    """
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def _one_line(summary: dict[str, Any]) -> str:
    keys = ("written", "llm_calls", "cache_hits", "failed", "kept_fraction", "steps", "final_loss", "ndcg@10")
    return ", ".join(f"{k} {summary[k]}" for k in keys if k in summary)
