"""The run's report: ``report.md`` and a self-contained ``report.html`` (plots embedded as PNG).

report.html is rendered from ``templates/report.html.j2`` (jinja2). Sections: the figures read in words (:mod:`gradir.pipeline.findings`), base against
tuned with the paired tests, per-query wins and losses, grade
histograms, the training loss curve, query types (generated, kept, share of the training
positives), LLM calls and failures, and a browsable sample of generated queries with
their source passages and graded candidates. Plots are drawn with matplotlib (Agg).
"""

from __future__ import annotations

import base64
import io
import json
import random
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

from gradir.atomic import write_text_atomic
from gradir.collections.loader import Collection
from gradir.collections.problems import kinds_text
from gradir.evaluation.metrics import METRICS
from gradir.pipeline.config import PipelineConfig
from gradir.pipeline.findings import findings
from gradir.pipeline.files import (
    BASE_PER_QUERY,
    COMPARISON,
    JUDGMENTS,
    KEPT,
    MODEL,
    PAIRS,
    QUERIES,
    REPORT_HTML,
    REPORT_MD,
    TRAINING_LOG,
    TRAINING_SUMMARY,
    TUNED_PER_QUERY,
)
from gradir.pipeline.rundir import RunDirectory
from gradir.tables import read_table

SAMPLE_QUERIES = 40
SECTIONS = ("summary", "metrics", "per-query", "grades", "training", "query-types", "llm", "samples")


def _per_query(path: Path) -> dict[str, float]:
    rows = path.read_text(encoding="utf-8").splitlines()[1:]
    return {line.split("\t")[0]: float(line.split("\t")[1]) for line in rows if line}


def _png(figure) -> str:
    import matplotlib.pyplot as plt

    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=100, bbox_inches="tight")
    plt.close(figure)
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def _figure(width: float = 7.0, height: float = 3.2):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt.subplots(figsize=(width, height))


def per_query_plot(deltas: list[float]) -> str:
    figure, axes = _figure()
    ordered = sorted(deltas, reverse=True)
    colours = ["#2a9d8f" if d > 0 else "#e76f51" if d < 0 else "#adb5bd" for d in ordered]
    axes.bar(range(len(ordered)), ordered, color=colours, width=1.0)
    axes.axhline(0, color="black", linewidth=0.6)
    axes.set_xlabel("queries, sorted by change")
    axes.set_ylabel("tuned − base nDCG@10")
    axes.set_title("Per-query change in nDCG@10")
    return _png(figure)


def grade_plot(histograms: dict[str, dict[str, int]]) -> str:
    figure, axes = _figure()
    grades = ["0", "1", "2", "3"]
    width = 0.8 / max(len(histograms), 1)
    for k, (label, histogram) in enumerate(histograms.items()):
        axes.bar([g + k * width for g in range(4)], [histogram.get(g, 0) for g in grades], width=width, label=label)
    axes.set_xticks([g + width * (len(histograms) - 1) / 2 for g in range(4)], grades)
    axes.set_xlabel("grade")
    axes.set_ylabel("judgments")
    axes.set_title("Grades of the judged pairs")
    axes.legend()
    return _png(figure)


def loss_plot(log: list[dict]) -> str:
    figure, axes = _figure()
    axes.plot([entry["step"] for entry in log], [float(entry["loss"]) for entry in log], marker="o")
    axes.set_xlabel("step")
    axes.set_ylabel("training loss")
    axes.set_title("Training loss")
    return _png(figure)


def _query_types(run: Path, judgments: list[dict], threshold: int) -> list[dict[str, Any]]:
    generated = Counter(q["type"] for q in read_table(run / QUERIES))
    kept_rows = read_table(run / KEPT)
    kept = Counter(q["type"] for q in kept_rows)
    type_of = {q["query_id"]: q["type"] for q in kept_rows}
    positives = Counter(type_of.get(j["query_id"], "?") for j in judgments if j["grade"] >= threshold)
    total_positives = sum(positives.values()) or 1
    return [
        {"type": t, "generated": generated[t], "kept": kept[t],
         "kept_fraction": kept[t] / generated[t] if generated[t] else 0.0,
         "positives": positives[t], "share_of_positives": positives[t] / total_positives}
        for t in sorted(generated)
    ]


def _samples(run: Path, collection: Collection, judgments: list[dict], seed: int) -> list[dict[str, Any]]:
    queries = read_table(run / KEPT)
    chosen = random.Random(seed).sample(queries, min(SAMPLE_QUERIES, len(queries)))
    by_query: dict[str, list[dict]] = defaultdict(list)
    for j in judgments:
        by_query[j["query_id"]].append(j)
    samples = []
    for q in chosen:
        source = collection.documents.get(q["source_doc_id"])
        graded = sorted(by_query.get(q["query_id"], []), key=lambda j: -j["p_relevant"])
        source_grade = next((j["grade"] for j in graded if j["doc_id"] == q["source_doc_id"]), None)
        samples.append({
            "query_id": q["query_id"], "text": q["text"], "type": q["type"], "source_doc_id": q["source_doc_id"],
            "source_text": source.full_text if source else "", "source_grade": source_grade,
            "candidates": [(j["doc_id"], j["grade"], j["p_relevant"]) for j in graded[:8]],
        })
    return samples


def collect(root: Path, collection: Collection, config: PipelineConfig) -> dict[str, Any]:
    """Everything the report shows, read from the run directory."""
    state = RunDirectory(root).state()
    comparison = json.loads((root / COMPARISON).read_text(encoding="utf-8"))
    base, tuned = _per_query(root / BASE_PER_QUERY), _per_query(root / TUNED_PER_QUERY)
    judgments = read_table(root / JUDGMENTS)
    training_log = [e for e in read_table(root / MODEL / TRAINING_LOG) if "loss" in e]
    training = json.loads((root / MODEL / TRAINING_SUMMARY).read_text(encoding="utf-8"))
    by_source: dict[str, Counter] = {"source passages": Counter(), "mined candidates": Counter(), "synthetic documents": Counter()}
    pairs = {(p["query_id"], p["doc_id"]): p["is_source"] for p in read_table(root / PAIRS)}
    for j in judgments:
        key = (j["query_id"], j["doc_id"])
        kind = "synthetic documents" if key not in pairs else "source passages" if pairs[key] else "mined candidates"
        by_source[kind][str(j["grade"])] += 1
    llm = {name: {k: entry.get("summary", {}).get(k) for k in ("llm_calls", "cache_hits", "failed", "failures", "retries")}
           for name, entry in state.items() if "llm_calls" in entry.get("summary", {})}
    return {
        "collection": str(collection.root),
        "skipped": collection.log.skipped(),
        "config": config,
        "comparison": comparison,
        "deltas": [tuned[q] - base[q] for q in base if q in tuned],
        "histograms": {k: dict(v) for k, v in by_source.items() if v},
        "training_log": training_log,
        "training": training,
        # The threshold training resolved (0 in the config means half the top grade).
        "query_types": _query_types(root, judgments, training.get("settings", {}).get("threshold") or config.train.threshold or 2),
        "llm": llm,
        "samples": _samples(root, collection, judgments, config.run.seed),
        "stage_seconds": {name: entry.get("seconds") for name, entry in state.items()},
        "grader_check": state.get("grade", {}).get("summary", {}).get("check"),
        "generation": state.get("generate", {}).get("summary", {}),
    }


def _generation_sentence(generation: dict[str, Any]) -> str:
    """How well the LLM filled the query slots: the share filled, answers per written query, what was rejected."""
    if not generation.get("slot_yield") and not generation.get("written"):
        return ""
    written, unfilled = generation.get("written", 0), generation.get("unfilled", 0)
    rejected = ", ".join(f"{reason} {n}" for reason, n in sorted(generation.get("rejected", {}).items(), key=lambda kv: -kv[1]))
    per_query = generation.get("calls_per_query")
    return (f"The LLM filled {written} of {written + unfilled} query slots ({100 * generation.get('slot_yield', 0):.0f}%)"
            + (f", {per_query:.2f} answers per written query" if per_query is not None else "")
            + f"; {generation.get('shortened', 0)} over-long answers were cut to fit"
            + (f"; rejected answers: {rejected}." if rejected else "; no answer was rejected."))


def _grader_check_rows(check: dict | None) -> list[list[str]]:
    """One row of figures for the grader against the human judgments, or none when it was not checked."""
    if not check:
        return []
    rerank, fused = check["rerank_test"], check["fused_test"]
    accuracy = check["pairwise_accuracy"]["vs_unjudged"]["accuracy"]
    return [[
        str(check["queries"]), f"{check['ndcg@10_base']:.4f}",
        f"{check['ndcg@10_reranked']:.4f} ({rerank['delta']:+.4f}, p {rerank['p_randomization']:.3f})",
        f"{check['ndcg@10_fused']:.4f} ({fused['delta']:+.4f}, p {fused['p_randomization']:.3f})",
        _teacher_cell(check),
        "–" if accuracy is None else f"{accuracy:.3f}", f"{check['spearman']:.3f}",
    ]]


def _teacher_cell(check: dict) -> str:
    """The labels' order: absent from the checks of runs made before it was measured."""
    if "teacher_test" not in check:
        return "–"
    test = check["teacher_test"]
    return f"{check['ndcg@10_teacher']:.4f} ({test['delta']:+.4f}, p {test['p_randomization']:.3f})"


GRADER_CHECK_HEADER = ["queries", "nDCG@10 base top 10", "reranked by the grader", "fused with the retriever",
                       "ordered by the labels (the teacher)", "pairwise accuracy (relevant > unjudged)", "Spearman ρ"]


def _skipped_sentence(skipped: dict) -> str:
    """The lenient read's account: how many records of the collection were left out, and why."""
    return (f"Lenient run: {skipped['records']} bad record(s) of the collection were skipped "
            f"({kinds_text(skipped['by_kind'])}); the first:")


def _metric_rows(comparison: dict) -> list[tuple[str, float, float, float]]:
    return [(m, comparison["base"][m], comparison["tuned"][m], comparison["tuned"][m] - comparison["base"][m]) for m in METRICS]


def render_markdown(data: dict[str, Any]) -> str:
    config: PipelineConfig = data["config"]
    comparison = data["comparison"]
    generation = _generation_sentence(data["generation"])
    lines = [
        "# gradir run report", "",
        f"Collection `{data['collection']}`, split `{comparison['split']}` ({comparison['base']['queries']} queries); "
        f"loss `{config.train.loss}`, LLM `{config.llm.backend}`, grader `{config.grade.grader}`"
        f" (`{config.grade.llm or config.llm.backend}`); encoding `{config.model.backend} {config.model.precision}`.", "",
        *([_skipped_sentence(data["skipped"]), "", *[f"- {reason}" for reason in data["skipped"]["first"]], ""]
          if data["skipped"] else []),
        "## In short", "",
        *[f"- {sentence}" for sentence in findings(data)], "",
        "## Base against tuned", "",
        "| metric | base | tuned | Δ |", "|---|---|---|---|",
        *[f"| {m} | {b:.4f} | {t:.4f} | {d:+.4f} |" for m, b, t, d in _metric_rows(comparison)], "",
        "| paired test | wins | losses | ties | p (t-test) | p (randomisation) |", "|---|---|---|---|---|---|",
        *[f"| {m} | {t['wins']} | {t['losses']} | {t['ties']} | {t['p_ttest']:.4f} | {t['p_randomization']:.4f} |"
          for m, t in comparison["paired_tests"].items()], "",
        "## Per-query wins and losses", "",
        f"{sum(d > 0 for d in data['deltas'])} queries gained, {sum(d < 0 for d in data['deltas'])} lost, "
        f"{sum(d == 0 for d in data['deltas'])} unchanged in nDCG@10 (plot in report.html).", "",
        "## Grades", "",
        "| judged pairs | 0 | 1 | 2 | 3 |", "|---|---|---|---|---|",
        *[f"| {k} | " + " | ".join(str(h.get(g, 0)) for g in "0123") + " |" for k, h in data["histograms"].items()], "",
        *(["## The grader against the human judgments", "",
            "| " + " | ".join(GRADER_CHECK_HEADER) + " |", "|---" * len(GRADER_CHECK_HEADER) + "|",
            *["| " + " | ".join(row) + " |" for row in _grader_check_rows(data["grader_check"])], ""]
          if data["grader_check"] else []),
        "## Training", "",
        f"`{data['training']['loss']}` on {data['training']['examples']} examples, {data['training']['steps']} steps, "
        f"{data['training']['seconds']:.0f} s; last logged loss {data['training']['final_loss']:.4f}.", "",
        _validation_sentence(data["training"].get("selection") or {}), "",
        *(["| " + " | ".join(VALIDATION_HEADER) + " |", "|---" * len(VALIDATION_HEADER) + "|",
           *["| " + " | ".join(row) + " |" for row in _validation_rows(data["training"]["selection"])], ""]
          if data["training"].get("selection") else []),
        "## Query types", "",
        *([generation, ""] if generation else []),
        "| type | generated | kept | kept fraction | training positives | share of positives |", "|---|---|---|---|---|---|",
        *[f"| {r['type']} | {r['generated']} | {r['kept']} | {r['kept_fraction']:.2f} | {r['positives']} | {r['share_of_positives']:.2f} |"
          for r in data["query_types"]], "",
        "## LLM calls and failures", "",
        "| stage | calls | from cache | failed | failures | retries |", "|---|---|---|---|---|---|",
        *[f"| {s} | {v['llm_calls']} | {v['cache_hits']} | {v['failed']} | {_failures(v['failures'])} | {v['retries']} |"
          for s, v in data["llm"].items()], "",
        "## Sample of generated queries", "",
        "| type | query | source | source grade |", "|---|---|---|---|",
        *[f"| {s['type']} | {_cell(s['text'])} | {s['source_doc_id']} | {s['source_grade']} |" for s in data["samples"][:20]],
        "",
    ]
    return "\n".join(lines)


VALIDATION_HEADER = ["model", "weights", "validation nDCG@10"]


def _validation_rows(selection: dict[str, Any]) -> list[list[str]]:
    """The base, each epoch and each interpolation on the held-out synthetic queries."""
    rows = [["base", "θ_base", f"{selection['base']:.4f}"]]
    from gradir.training.selection import average_row, tuned_checkpoint

    tuned = tuned_checkpoint(selection)
    rows += [[f"epoch {c['epoch']:g}", f"step {c['step']}" + (" (θ_tuned)" if c["step"] == tuned else ""),
              f"{c['ndcg@10']:.4f}"] for c in selection["epochs"]]
    if (averaged := average_row(selection)) is not None:
        label, weights, score = averaged
        rows.append([label, f"({weights})" if weights else "", f"{score:.4f}"])
    rows += [["interpolation", f"α = {c['alpha']:g}", f"{c['ndcg@10']:.4f}"] for c in selection["interpolation"]]
    return rows


def _validation_sentence(selection: dict[str, Any]) -> str:
    if not selection:
        return "No validation set (too few queries, or `train.validation_share` 0): the last model is the output."
    held = selection["validation"]
    from gradir.training.selection import rejected, rejected_sentence, undecided

    if undecided(selection):
        verdict = "**Every model scored what the base scored: the output is the base model, unchanged.**"
    elif rejected(selection):
        sentence = rejected_sentence(selection)
        verdict = f"**{sentence[0].upper()}{sentence[1:]}.**"
    elif selection["output"] == "base":
        verdict = "**The base model scored best: the output is the base model, unchanged.**"
    else:
        verdict = f"Output: the {selection['output']} model, α = {selection['alpha']:g}."
    return (f"Validation: {held['queries']} held-out synthetic queries ({held['groups']} source passages, "
            f"{held['judged_pairs']} teacher-graded pairs), each ranking its own graded documents; "
            f"θ_α = (1 − α)·θ_base + α·θ_tuned. {verdict}")


def _failures(failures: dict | None) -> str:
    return ", ".join(f"{k}: {v}" for k, v in (failures or {}).items()) or "none"


def _bold(escaped: str) -> str:
    """Markdown's **bold** as <b> in already escaped HTML text (the findings are written for report.md)."""
    parts = escaped.split("**")
    return "".join(f"<b>{part}</b>" if i % 2 else part for i, part in enumerate(parts))


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def render_html(data: dict[str, Any]) -> str:
    """report.html from ``templates/report.html.j2`` (jinja2, autoescaped): one file, plots embedded."""
    import jinja2
    from markupsafe import Markup, escape

    comparison, training = data["comparison"], data["training"]
    images = {"per-query": per_query_plot(data["deltas"]), "grades": grade_plot(data["histograms"])}
    if data["training_log"]:
        images["training"] = loss_plot(data["training_log"])
    selection = training.get("selection")
    environment = jinja2.Environment(
        loader=jinja2.PackageLoader("gradir.pipeline", "templates"), autoescape=True, undefined=jinja2.StrictUndefined,
    )
    return environment.get_template("report.html.j2").render(
        config=data["config"], collection=data["collection"], split=comparison["split"],
        queries=comparison["base"]["queries"], images=images,
        skipped_sentence=_skipped_sentence(data["skipped"]) if data["skipped"] else "",
        skipped_first=data["skipped"]["first"] if data["skipped"] else [],
        findings=[Markup(_bold(str(escape(sentence)))) for sentence in findings(data)],
        metric_rows=[[m, f"{b:.4f}", f"{t:.4f}", f"{d:+.4f}"] for m, b, t, d in _metric_rows(comparison)],
        test_rows=[[m, t["wins"], t["losses"], t["ties"], f"{t['p_ttest']:.4f}", f"{t['p_randomization']:.4f}"]
                   for m, t in comparison["paired_tests"].items()],
        grade_rows=[[k, *[h.get(g, 0) for g in "0123"]] for k, h in data["histograms"].items()],
        grader_check_header=GRADER_CHECK_HEADER, grader_check_rows=_grader_check_rows(data["grader_check"]),
        training=training, validation_sentence=_validation_sentence(selection or {}).replace("**", ""),
        validation_header=VALIDATION_HEADER, validation_rows=_validation_rows(selection) if selection else [],
        generation_sentence=_generation_sentence(data["generation"]),
        query_type_rows=[[r["type"], r["generated"], r["kept"], f"{r['kept_fraction']:.2f}", r["positives"],
                          f"{r['share_of_positives']:.2f}"] for r in data["query_types"]],
        llm_rows=[[s, v["llm_calls"], v["cache_hits"], v["failed"], _failures(v["failures"]), v["retries"]]
                  for s, v in data["llm"].items()],
        samples=data["samples"],
    )


def write_reports(root: Path, collection: Collection, config: PipelineConfig) -> dict[str, Any]:
    data = collect(root, collection, config)
    write_text_atomic(root / REPORT_MD, render_markdown(data))
    write_text_atomic(root / REPORT_HTML, render_html(data))
    return {"report_md": str(root / REPORT_MD), "report_html": str(root / REPORT_HTML),
            "sampled_queries": len(data["samples"])}
