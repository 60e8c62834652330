"""How fast each loss draws the document embeddings together, on NFCorpus dev lists.

A diagnostic for the collapse seen in `losses_nfcorpus.py` (listwise_kl and margin_mse
falling far below the base on the held-out queries): every loss trains a fresh copy of
the base model on the rows gradir's assembler builds for it from NFCorpus dev's human
grades (plus 3 grade-0 documents per query from the base's ranks 30–100, as in
`losses_nfcorpus.py`), with the same batch (16), learning rate (3e-5, 10 % linear
warm-up then linear decay), loss learning rate (0.05) and in-batch judged labels as
gradir's trainer, in a plain loop so that it can stop every few steps and measure:

- spread: the mean cosine between 200 documents (all pairs, the same documents each
  time); it rises when the space contracts, which no retrieval loss asks for;
- nDCG@10 of 40 dev queries held out of training (and their judged documents plus 800
  others as the corpus), a quick stand-in for the validation set.

    .venv/bin/python benchmarks/embedding_spread.py [--steps 20] [--every 10] [--losses ...]

About 2 minutes per loss at 20 steps on 2 CPU cores.
"""

from __future__ import annotations

import argparse
import os
import random
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import torch  # noqa: E402
from sentence_transformers import SentenceTransformer  # noqa: E402
from sentence_transformers.base.losses.merged_forward import embed_columns  # noqa: E402

from gradir.collections import load_collection  # noqa: E402
from gradir.evaluation.metrics import score_run  # noqa: E402
from gradir.grading.judgments import judgments_from_qrels  # noqa: E402
from gradir.losses import LOSSES  # noqa: E402
from gradir.losses.base import uniformity  # noqa: E402
from gradir.models import resolve_model_path  # noqa: E402
from gradir.training import assemble_training_set  # noqa: E402
from gradir.training_defaults import DEFAULT_LOSS_LEARNING_RATE  # noqa: E402
from losses_nfcorpus import loss_options  # noqa: E402
from results_file import append_section  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
NFCORPUS = ROOT.parent / "shared" / "data" / "beir" / "nfcorpus"
HELD_OUT, OTHER_DOCUMENTS, SPREAD_DOCUMENTS, BATCH = 40, 800, 200, 16


def parse_arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--losses", nargs="+", default=["infonce", "bixse", "wasserstein", "listwise_kl", "margin_mse"],
                        choices=list(LOSSES))
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--every", type=int, default=10, help="measure every this many steps")
    parser.add_argument("--learning-rate", type=float, default=3e-5)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--loss-option", action="append", default=[], metavar="LOSS:KEY=VALUE",
                        help="a loss setting, e.g. listwise_kl:teacher_temperature=0.05 (repeatable)")
    parser.add_argument("--uniformity", type=float, default=0.0, metavar="W",
                        help="add W × the uniformity loss of the batch's documents (Wang & Isola 2020), a probe "
                             "of whether keeping the documents apart keeps the held-out nDCG")
    parser.add_argument("--no-record", action="store_true", help="do not append to RESULTS.md")
    return parser.parse_args()


class Probe:
    """The held-out queries, their small corpus, and the two measures."""

    def __init__(self, collection, judgments, held_out: set[str], rng: random.Random):
        judged = {j.doc_id for j in judgments if j.query_id in held_out}
        others = rng.sample(sorted(set(collection.documents) - judged), OTHER_DOCUMENTS)
        self.doc_ids = sorted(judged) + others
        self.texts = [collection.documents[d].full_text for d in self.doc_ids]
        self.spread_rows = torch.tensor(rng.sample(range(len(self.doc_ids)), SPREAD_DOCUMENTS))
        self.query_ids = sorted(held_out)
        query_text = {j.query_id: j.query_text for j in judgments}
        self.query_texts = [query_text[q] for q in self.query_ids]
        self.qrels = {q: {} for q in self.query_ids}
        for j in judgments:
            if j.query_id in held_out and j.grade > 0:
                self.qrels[j.query_id][j.doc_id] = j.grade

    def measure(self, model: SentenceTransformer) -> tuple[float, float]:
        model.eval()
        with torch.no_grad():
            documents = model.encode(self.texts, convert_to_tensor=True, normalize_embeddings=True, batch_size=64)
            queries = model.encode(self.query_texts, convert_to_tensor=True, normalize_embeddings=True)
        model.train()
        sample = documents[self.spread_rows]
        cosines = sample @ sample.T
        spread = (cosines.sum() - cosines.diagonal().sum()) / (SPREAD_DOCUMENTS * (SPREAD_DOCUMENTS - 1))
        top = torch.topk(queries @ documents.T, 10)
        run = {q: {self.doc_ids[d]: float(s) for d, s in zip(top.indices[i].tolist(), top.values[i].tolist())}
               for i, q in enumerate(self.query_ids)}
        metrics, _ = score_run(self.qrels, run)
        return float(spread), metrics["ndcg@10"]


def train_and_probe(loss_name: str, rows, judged, probe: Probe, args: argparse.Namespace) -> list[tuple[int, float, float]]:
    torch.manual_seed(args.seed)
    model = SentenceTransformer(str(resolve_model_path(None)), device="cpu")
    model.max_seq_length = 128
    loss = LOSSES[loss_name](model, **loss_options(args, loss_name))
    loss.use_judgments(judged)
    own = [p for name, p in loss.named_parameters() if not name.startswith("model.")]
    groups = [{"params": list(model.parameters()), "lr": args.learning_rate}]
    if own:
        groups.append({"params": own, "lr": DEFAULT_LOSS_LEARNING_RATE})
    optimiser = torch.optim.AdamW(groups)
    warmup = max(1, round(0.1 * args.steps))
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimiser, lambda t: (t + 1) / warmup if t < warmup else max(0.0, (args.steps - t) / (args.steps - warmup)))
    columns = [c for c in rows.column_names if c != "label"]
    points = [(0, *probe.measure(model))]
    model.train()
    for step in range(args.steps):
        batch = rows[step * BATCH:(step + 1) * BATCH]
        features = [model.preprocess(batch[c]) for c in columns]
        embeddings = embed_columns(model, features)
        value = loss.compute_loss_from_embeddings(embeddings, torch.tensor(batch["label"], dtype=torch.float32))
        if args.uniformity:
            value = value + args.uniformity * uniformity(torch.cat(embeddings[1:]))
        optimiser.zero_grad()
        value.backward()
        optimiser.step()
        schedule.step()
        if (step + 1) % args.every == 0 or step + 1 == args.steps:
            points.append((step + 1, *probe.measure(model)))
            print(f"{loss_name} step {step + 1}: spread {points[-1][1]:.3f}, nDCG@10 {points[-1][2]:.4f}", flush=True)
    return points


def main() -> None:
    args = parse_arguments()
    started = time.perf_counter()
    collection = load_collection(NFCORPUS)
    judgments = judgments_from_qrels(collection, "dev", negatives=3, negatives_from=(30, 100))
    rng = random.Random(args.seed)
    queries = sorted({j.query_id for j in judgments})
    held_out = set(rng.sample(queries, HELD_OUT))
    probe = Probe(collection, judgments, held_out, rng)
    training = [j for j in judgments if j.query_id not in held_out]
    lines = ["| loss | step | spread (mean doc–doc cosine) | nDCG@10, 40 held-out dev queries |", "|---|---|---|---|"]
    for loss_name in args.losses:
        built = assemble_training_set(training, collection.documents, loss_name, list_size=4, threshold=1,
                                      seed=args.seed)
        rows = built.dataset.shuffle(seed=args.seed).select(range(args.steps * BATCH))
        for step, spread, ndcg in train_and_probe(loss_name, rows, built.judged, probe, args):
            lines.append(f"| {loss_name} | {step} | {spread:.3f} | {ndcg * 100:.2f} |")
    table = "\n".join(lines)
    print(table)
    if not args.no_record:
        append_section(
            "Embedding spread while training on NFCorpus dev",
            f"python benchmarks/embedding_spread.py --steps {args.steps} --every {args.every} "
            f"--learning-rate {args.learning_rate} --seed {args.seed} --losses {' '.join(args.losses)}"
            + "".join(f" --loss-option {o}" for o in args.loss_option)
            + (f" --uniformity {args.uniformity}" if args.uniformity else ""),
            f"Data: NFCorpus dev judgments (human grades 1–2, 3 grade-0 documents per query from the base's ranks "
            f"30–100), {HELD_OUT} queries held out; each loss's rows as gradir's assembler builds them, batch {BATCH}, "
            f"list size 4; one seed.  \nTime: {(time.perf_counter() - started) / 60:.0f} min for the whole script.",
            table,
        )


if __name__ == "__main__":
    main()
