"""The pipeline's configuration: one TOML file, validated with pydantic.

Every section and key is declared below with its default; an unknown key, a wrong type
or an impossible value is a :class:`ConfigError` that names the file, the
line and the key path (``train.batch_size``). ``gradir init`` writes these defaults as a
commented file (:func:`render_config`).
"""

from __future__ import annotations

import re
import tomllib
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, ValidationError, field_validator

from gradir.errors import GradirError
from gradir.precision import TrainingPrecision
from gradir.retrieval.runtimes import DEFAULT_BACKEND, DEFAULT_PRECISION
from gradir.training_defaults import (
    DEFAULT_AVERAGE_CHECKPOINTS,
    DEFAULT_CONFIRM_LEVEL,
    DEFAULT_LOSS_LEARNING_RATE,
    DEFAULT_THRESHOLD,
    DEFAULT_TRAINING_PRECISION,
    DEFAULT_VALIDATE_EVERY,
    DEFAULT_VALIDATION_SHARE,
)

QueryType = Literal["question", "claim", "keywords", "title", "web"]
Retriever = Literal["dense", "bm25", "hybrid"]
LossName = Literal["infonce", "bixse", "wasserstein", "listwise_kl", "margin_mse"]


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_default=True)

    def dump_for_fingerprint(self, added: dict[str, Any], exclude: frozenset[str] = frozenset()) -> dict[str, Any]:
        """The section's settings for a stage fingerprint; the ``added`` keys (introduced after runs
        were made, with their defaults) count only when set, so earlier runs stay valid."""
        dumped = self.model_dump(exclude=set(exclude))
        return {k: v for k, v in dumped.items() if k not in added or v != added[k]}


class RunSection(Section):
    """The collection, the seed and where caches live."""

    collection: str = Field("", description="BEIR folder: corpus, queries, qrels/ (relative paths are from this file)")
    seed: int = Field(0, description="seed of passage sampling, generation and training")
    cache_dir: str = Field("", description="embedding and LLM call caches; empty: $GRADIR_CACHE_DIR or ~/.cache/gradir")
    lenient: bool = Field(
        False, description="skip records that fail validation (empty documents, qrels naming unknown ids) and report them"
    )


class ModelSection(Section):
    """The embedding model that is evaluated, used for filtering and mining, and tuned."""

    base: str = Field("", description="local sentence-transformers folder; empty: the embedded all-MiniLM-L6-v2")
    batch_size: int = Field(32, ge=1, description="texts per forward pass when encoding")
    backend: Literal["torch", "onnx", "openvino"] = Field(
        DEFAULT_BACKEND, description="encoding runtime: torch | onnx (ONNX Runtime) | openvino; training is PyTorch"
    )
    precision: Literal["fp32", "bf16", "int8"] = Field(
        DEFAULT_PRECISION, description="encoding precision: fp32 | bf16 (torch; CPUs with AMX, GPUs from Ampere on) | int8 (onnx, openvino)"
    )


class LLMSection(Section):
    """The LLM of the generation and grading stages."""

    backend: str = Field(
        "llamacpp",
        description="llamacpp[:GGUF] (embedded SmolLM2-135M) | openai:URL@MODEL | hf:PATH | vllm:PATH",
    )
    api_key_env: str = Field("OPENAI_API_KEY", description="environment variable holding the API key (openai backend); never the key itself")
    concurrency: int = Field(8, ge=1, description="requests in flight (openai backend)")
    timeout: float = Field(60.0, gt=0, description="seconds per request (openai backend)")
    max_retries: int = Field(4, ge=0, le=20, description="retries of a failed request (openai backend)")
    cache: bool = Field(True, description="cache answers; a re-run never pays twice for a call")

    @field_validator("backend")
    @classmethod
    def _known_backend(cls, spec: str) -> str:
        kind, _, rest = spec.partition(":")
        if kind not in ("llamacpp", "openai", "hf", "vllm"):
            raise ValueError(f"unknown backend '{kind}' (llamacpp, openai, hf or vllm)")
        if kind == "openai" and not re.fullmatch(r".+@.+", rest):
            raise ValueError("expected openai:URL@MODEL, e.g. openai:http://127.0.0.1:8000/v1@my-model")
        if kind in ("hf", "vllm") and not rest:
            raise ValueError(f"expected {kind}:PATH")
        return spec


class GenerateSection(Section):
    """Sampling passages and writing queries for them."""

    passages: int = Field(200, ge=1, description="passages sampled from the corpus (200 x 1 type: about 17 min with the embedded LLM on 2 cores)")
    per_passage: int = Field(1, ge=1, description="queries per passage and type")
    types: list[QueryType] = Field(
        ["question", "claim", "keywords", "title", "web"], min_length=1, description="query types (the mix)"
    )
    types_per_passage: int = Field(1, ge=0, description="types each passage gets, rotating through the mix (0: every type)")
    attempts: int = Field(6, ge=1, description="tries per query when an answer fails or is rejected")
    examples: str = Field("", description="your example queries (JSONL or one a line) for the few-shot prompts; empty: built-in")


class FilterSection(Section):
    """Round-trip filter: keep a query when its source passage is retrieved in the top k."""

    enabled: bool = Field(True, description="apply the filter")
    retriever: Retriever = Field("dense", description="dense | bm25 | hybrid")
    top_k: int = Field(10, ge=1, description="the source passage must rank in this many")


class IndexSection(Section):
    """The dense index that filtering and mining search (evaluation always searches exactly)."""

    kind: Literal["exact", "hnsw", "ivf", "ivfpq"] = Field(
        "exact", description="exact | hnsw | ivf | ivfpq (FAISS; approximate for large collections)")
    hnsw_m: int = Field(32, ge=2, description="hnsw: links per vector")
    ef_construction: int = Field(200, ge=1, description="hnsw: candidates kept while building")
    ef_search: int = Field(512, ge=1, description="hnsw: candidates kept while searching (at least top_k); 512: recall@100 0.92 at 300k")
    ivf_lists: int = Field(0, ge=0, description="ivf: k-means cells; 0: 4 x sqrt(documents)")
    nprobe: int = Field(0, ge=0, description="ivf, ivfpq: cells a query visits; 0: 256 (ivf), 512 (ivfpq)")
    pq_subvectors: int = Field(0, ge=0, description="ivfpq: 4-bit codes per vector; 0: one per 2 dimensions")
    refine_factor: int = Field(8, ge=1, description="ivfpq: candidates re-scored exactly, as a multiple of top_k")

    def approximate(self):
        """These settings as :class:`gradir.retrieval.dense.ApproximateSearch`."""
        from gradir.retrieval.dense import ApproximateSearch

        return ApproximateSearch(**self.model_dump())

    def fingerprint(self) -> dict[str, Any]:
        """What a stage's fingerprint records: nothing for exact search, so existing runs stay valid."""
        return {} if self.kind == "exact" else {"index": self.model_dump()}


class DocumentsSection(Section):
    """SyCL-style synthetic documents at relevance levels (needed by grade.grader = \"level\")."""

    enabled: bool = Field(False, description="write documents at each level for every kept query")
    levels: list[int] = Field([3, 2, 1, 0], min_length=1, description="levels, 3 (answers) to 0 (unrelated)")
    domain: str = Field("the same field as the query", description="what the collection is about (level-0 documents)")


class MineSection(Section):
    """Candidate documents of each query: the pairs the grader judges."""

    retriever: Retriever = Field("dense", description="dense | bm25 | hybrid")
    top_k: int = Field(8, ge=1, description="candidates retrieved per query")
    skip_top: int = Field(0, ge=0, description="leave out the first n ranks (likely unlabelled positives)")
    keep_source: bool = Field(True, description="keep the source passage among the pairs (the grader's anchor)")
    absolute_margin: float | None = Field(
        None, description="dense: keep candidates scoring below the source's score minus this (NV-Retriever's margin)"
    )
    relative_margin: float | None = Field(
        None, gt=0, lt=1, description="dense: keep candidates scoring below the source's score x (1 - this)"
    )

    validation_top_k: int = Field(
        20, ge=1,
        description="the queries train holds out for validation: candidates retrieved per query, every rank, no margins "
        "(selection can only credit what is judged; 20 against 8: benchmarks/RESULTS.md)",
    )

    def fingerprint(self) -> dict[str, Any]:
        """The settings in the mine stage's fingerprint; the keys added later count only when set (earlier runs stay valid)."""
        return self.dump_for_fingerprint({"keep_source": True, "absolute_margin": None, "relative_margin": None})


class GradeSection(Section):
    """Graded labels 0-3 for the mined pairs."""

    grader: Literal["likelihood", "llm", "cross-encoder", "level", "unverified"] = Field(
        "likelihood",
        description="likelihood (query likelihood, UPR) | llm (grade tokens 0-3) | cross-encoder | level | "
        "unverified (mined candidates taken as grade 0, unread)",
    )
    llm: str = Field("", description="LLM that grades (same spec as llm.backend); empty: llm.backend")
    temperature: float = Field(
        0.5, gt=0, description="likelihood: p_relevant = exp((score - the query's best score) / temperature); "
        "in nats per token, or in standard deviations when fused with the retriever"
    )
    retriever_weight: float = Field(
        0.3, ge=0, le=1, description="likelihood: weight w_r of the retriever's z-scored score in the label, "
        "(1 - w_r - w_b) z(likelihood) + w_r z(retriever) + w_b z(bm25) per query; 0 and bm25_weight 0: the likelihood alone"
    )
    bm25_weight: float = Field(
        0.3, ge=0, le=1, description="likelihood: weight w_b of the candidate's z-scored BM25 score in the label"
    )
    validation_retriever_weight: float | None = Field(
        None, ge=0, le=1, description="likelihood: w_r in the labels of the queries held out for validation; "
        "0 keeps the base model's own score out of the grades the tuned model is chosen on; unset: retriever_weight"
    )
    max_passage_tokens: int = Field(0, ge=0, description="passage tokens the grader reads; 0: the grader's default (likelihood 128, llm 400)")
    cross_encoder: str = Field("", description="local CrossEncoder folder (grader = \"cross-encoder\")")
    samples: int = Field(0, ge=0, description="no logprobs from the LLM: average this many sampled answers")
    source_floor: int = Field(
        3, ge=0, le=3, description="the passage a query was written from is graded at least this (0: trust the grader)"
    )
    check_queries: int = Field(
        0, ge=0, description="also grade the base top 10 of this many judged eval-split queries and report agreement with the human qrels (0: off)"
    )
    balance: bool = Field(False, description="ask the LLM for documents at under-represented middle grades")
    budget: int = Field(100, ge=0, description="generations the balancing may spend")

    def fingerprint(self) -> dict[str, Any]:
        """The settings in the grade stage's fingerprint; keys added later count only when set (earlier runs stay valid)."""
        return self.dump_for_fingerprint({"validation_retriever_weight": None})


class TrainSection(Section):
    """Fine-tuning the embedding model on the graded judgments."""

    loss: LossName = Field("bixse", description="infonce | bixse | wasserstein | listwise_kl | margin_mse")
    epochs: float = Field(2.0, gt=0, description="passes over the training set")
    max_steps: int = Field(-1, ge=-1, description="stop after this many steps; -1: no limit")
    batch_size: int = Field(16, ge=1, description="queries per step and process")
    learning_rate: float = Field(2e-5, gt=0, lt=1, description="peak learning rate (linear warm-up over 10%)")
    list_size: int = Field(4, ge=1, description="documents per query in each example")
    positives_per_query: int = Field(
        0, ge=0,
        description="training rows per query at most (its highest-graded positives), so queries with many positives "
        "do not outweigh the rest; 0: one row per positive",
    )
    threshold: int = Field(
        DEFAULT_THRESHOLD, ge=0, le=3,
        description="lowest grade that counts as a positive; 0: half the top grade, rounded up (2 of 0-3)",
    )
    loss_options: dict[str, float | int | str] = Field(
        {}, description="keyword arguments of the loss, e.g. {form = \"emd\"} for wasserstein"
    )
    loss_learning_rate: float = Field(
        DEFAULT_LOSS_LEARNING_RATE, gt=0, lt=10, description="learning rate of the loss's own parameters (BiXSE scale and bias)"
    )
    validation_share: float = Field(
        DEFAULT_VALIDATION_SHARE, ge=0, lt=1,
        description="share of the queries (grouped by source passage) held out to choose among base, epochs and interpolations; 0: off",
    )
    validate_every: int = Field(
        DEFAULT_VALIDATE_EVERY, ge=0,
        description="also score the model on the validation queries every this many steps (a candidate for the output); 0: epoch ends only",
    )
    average_checkpoints: int = Field(
        DEFAULT_AVERAGE_CHECKPOINTS, ge=1,
        description="also score the average of the k best-scoring checkpoints (a candidate for the output); 1: off",
    )
    confirm_level: float = Field(
        DEFAULT_CONFIRM_LEVEL, gt=0, le=1,
        description="hand back a model that beat the base on the validation queries only if its gain is significant "
        "at this level (one-sided paired randomisation test); 1: off, the highest validation score wins",
    )
    mini_batch_size: int = Field(0, ge=0, description="GradCache mini-batches (less memory); 0: off")
    precision: TrainingPrecision = Field(
        DEFAULT_TRAINING_PRECISION,
        description="fp32 | bf16 (bfloat16 mixed precision: CPUs with AMX or AVX-512 BF16, GPUs from Ampere on) | auto (bf16 where native)",
    )
    max_seq_length: int = Field(0, ge=0, description="token limit while training; 0: the model's own")
    save_steps: int = Field(50, ge=1, description="checkpoint every this many steps (resume after a crash)")
    launcher: str = Field("", description="empty: train in this process; or e.g. \"torchrun --nproc_per_node=2\"")

    def fingerprint(self) -> dict[str, Any]:
        """The settings in the train stage's fingerprint; keys added later count only when set (earlier runs stay valid)."""
        # Runs made before `precision` existed trained in fp32.
        return self.dump_for_fingerprint({"validate_every": 0, "precision": "fp32", "average_checkpoints": 1, "positives_per_query": 0,
                                           "confirm_level": 1.0}, exclude=frozenset({"launcher", "save_steps"}))

    def trainer_settings(self, seed: int):
        """This section as the trainer takes it (:class:`gradir.training.TrainSettings`): the one place the two meet.

        ``gradir run`` and ``gradir train`` both build their settings here.
        """
        from gradir.training import TrainSettings

        return TrainSettings(
            epochs=self.epochs, max_steps=self.max_steps, batch_size=self.batch_size,
            learning_rate=self.learning_rate, list_size=self.list_size, threshold=self.threshold, seed=seed,
            mini_batch_size=self.mini_batch_size or None, save_steps=self.save_steps,
            max_seq_length=self.max_seq_length or None, loss_learning_rate=self.loss_learning_rate,
            validation_share=self.validation_share, validate_every=self.validate_every, precision=self.precision,
            average_checkpoints=self.average_checkpoints, positives_per_query=self.positives_per_query,
            confirm_level=self.confirm_level,
        )


class EvalSection(Section):
    """Base against tuned on the collection's judged split."""

    split: str = Field("test", min_length=1, description="qrels split to evaluate on")
    retriever: Literal["dense", "hybrid"] = Field("dense", description="dense | hybrid")
    top_k: int = Field(100, ge=1, description="documents retrieved per query")


class PipelineConfig(Section):
    """The whole pipeline: one section per stage."""

    run: RunSection = RunSection()
    model: ModelSection = ModelSection()
    llm: LLMSection = LLMSection()
    generate: GenerateSection = GenerateSection()
    filter: FilterSection = FilterSection()
    index: IndexSection = IndexSection()
    documents: DocumentsSection = DocumentsSection()
    mine: MineSection = MineSection()
    grade: GradeSection = GradeSection()
    train: TrainSection = TrainSection()
    eval: EvalSection = EvalSection()
    _source: str = PrivateAttr("config")
    _text: str | None = PrivateAttr(None)

    def where(self, *path: str) -> str:
        """``file:line`` of a key of the file this config was read from (for error messages)."""
        line = _key_line(self._text, path) if self._text is not None else None
        return f"{self._source}:{line}" if line else self._source

    def inconsistencies(self) -> list[tuple[tuple[str, ...], str]]:
        """Settings that are each valid but impossible together: (key path, what is wrong)."""
        problems = []
        if self.grade.grader == "level" and not self.documents.enabled:
            problems.append((("grade", "grader"), 'grader "level" needs documents.enabled = true'))
        if self.grade.grader == "cross-encoder" and not self.grade.cross_encoder:
            problems.append((("grade", "grader"), 'grader "cross-encoder" needs grade.cross_encoder (a local folder)'))
        if self.grade.llm:
            try:
                LLMSection(backend=self.grade.llm)
            except ValidationError as exc:
                problems.append((("grade", "llm"), _describe(exc.errors()[0])))
        if self.grade.check_queries and self.grade.grader not in ("likelihood", "llm", "cross-encoder"):
            problems.append((("grade", "check_queries"), f'grader "{self.grade.grader}" cannot be checked against qrels'))
        if self.grade.retriever_weight + self.grade.bm25_weight > 1:
            problems.append((("grade", "bm25_weight"), f"{self.grade.bm25_weight} + grade.retriever_weight = "
                             f"{self.grade.retriever_weight} is more than 1 (the likelihood's weight is 1 minus both)"))
        held_out_weight = self.grade.validation_retriever_weight
        if held_out_weight is not None and held_out_weight + self.grade.bm25_weight > 1:
            problems.append((("grade", "validation_retriever_weight"), f"{held_out_weight} + grade.bm25_weight = "
                             f"{self.grade.bm25_weight} is more than 1 (the likelihood's weight is 1 minus both)"))
        if self.grade.balance and self.grade.grader != "llm":
            problems.append((("grade", "balance"), 'balancing needs grade.grader = "llm"'))
        if self.mine.skip_top >= self.mine.top_k:
            problems.append((("mine", "skip_top"), f"{self.mine.skip_top} leaves no candidate of mine.top_k = {self.mine.top_k}"))
        if self.train.loss == "margin_mse" and self.train.list_size < 2:
            problems.append((("train", "list_size"), "must be at least 2 for margin_mse (a positive and a negative)"))
        if self.model.backend == "torch" and self.model.precision == "int8":
            problems.append((("model", "precision"), 'int8 needs model.backend = "onnx" or "openvino"'))
        if self.model.backend != "torch" and self.model.precision == "bf16":
            problems.append((("model", "precision"), 'bf16 needs model.backend = "torch"'))
        if self.train.mini_batch_size > self.train.batch_size:
            problems.append((("train", "mini_batch_size"),
                             f"{self.train.mini_batch_size} is larger than train.batch_size = {self.train.batch_size}"))
        return problems

    def collection_path(self) -> Path:
        if not self.run.collection:
            raise ConfigError(f"{self.where('run')}: run.collection: no collection given (set it, or pass --collection)")
        return Path(self.run.collection)


class ConfigError(GradirError):
    """A config file that cannot be run: the message names the file, line and key."""


def _key_line(text: str, path: tuple[str, ...]) -> int | None:
    """The line that sets ``path`` (a table header for a section), by scanning the TOML text."""
    table: tuple[str, ...] = ()
    header_line: dict[tuple[str, ...], int] = {}
    for number, line in enumerate(text.splitlines(), start=1):
        stripped = line.strip()
        header = re.match(r"^\[\s*([A-Za-z0-9_.\- ]+?)\s*\]", stripped)
        if header:
            table = tuple(part.strip() for part in header.group(1).split("."))
            header_line.setdefault(table, number)
            continue
        assignment = re.match(r"^([A-Za-z0-9_.\-\"' ]+?)\s*=", stripped)
        if assignment:
            key = tuple(part.strip().strip("\"'") for part in assignment.group(1).split("."))
            if table + key == path:
                return number
    for length in range(len(path), 0, -1):
        if path[:length] in header_line:
            return header_line[path[:length]]
    return None


# Keys earlier versions wrote (``gradir init`` writes every key), with what to do about each.
RETIRED_KEYS = {
    ("train", "validation_documents"): "no longer used (validation ranks each held-out query's judged documents, "
                                       "whatever the corpus size); delete the line",
}


def _describe(error: dict[str, Any], location: tuple[str, ...] = ()) -> str:
    if error["type"] == "extra_forbidden":
        return RETIRED_KEYS.get(location, "unknown key")
    if error["type"] == "missing":
        return "required key is missing"
    message = error["msg"]
    return message.removeprefix("Value error, ")


def parse_config(text: str, source: str, base_dir: Path | None = None) -> PipelineConfig:
    """Validate TOML text; ``source`` names it in errors; relative paths resolve against ``base_dir``."""
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{source}: not valid TOML: {exc}") from None
    config = validate_config(raw, source, text)
    if base_dir is not None:
        config = _resolved(config, base_dir)
    return config


def validate_config(raw: dict[str, Any], source: str = "config", text: str | None = None) -> PipelineConfig:
    """Validate parsed sections; with the TOML ``text``, errors name the line of each bad key."""

    def where(location: tuple[str, ...]) -> str:
        line = _key_line(text, location) if location and text is not None else None
        return f"{source}:{line}" if line else source

    try:
        config = PipelineConfig.model_validate(raw)
    except ValidationError as exc:
        problems = []
        for error in exc.errors():
            location = tuple(str(part) for part in error["loc"] if not isinstance(part, int))
            key = ".".join(location) or "(top level)"
            value = "" if error["type"] in ("extra_forbidden", "missing") or not location else f" (got {error['input']!r})"
            problems.append(f"{where(location)}: {key}: {_describe(error, location)}{value}")
        raise ConfigError("invalid config:\n  " + "\n  ".join(problems)) from None
    problems = [f"{where(location)}: {'.'.join(location)}: {message}" for location, message in config.inconsistencies()]
    if problems:
        raise ConfigError("invalid config:\n  " + "\n  ".join(problems))
    config._source, config._text = source, text
    return config


def _resolved(config: PipelineConfig, base_dir: Path) -> PipelineConfig:
    """Relative file paths in the config are relative to the config file."""

    def resolve(value: str) -> str:
        return str((base_dir / value).resolve()) if value and not Path(value).is_absolute() else value

    config.run.collection = resolve(config.run.collection)
    config.run.cache_dir = resolve(config.run.cache_dir)
    config.generate.examples = resolve(config.generate.examples)
    if config.model.base and (base_dir / config.model.base).exists():
        config.model.base = resolve(config.model.base)
    if config.grade.cross_encoder:
        config.grade.cross_encoder = resolve(config.grade.cross_encoder)
    return config


def load_config(path: Path | str) -> PipelineConfig:
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{path}: config file not found") from None
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: not UTF-8 text (byte {exc.start})") from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read: {exc.strerror}") from None
    return parse_config(text, str(path), path.resolve().parent)


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(value, list):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    return repr(value)


def render_config(config: PipelineConfig | None = None) -> str:
    """The config as commented TOML: every section and key with its description."""
    config = config or PipelineConfig()
    lines = [
        "# gradir pipeline configuration. `gradir run THIS_FILE` runs every stage;",
        "# a stage whose inputs and settings did not change is skipped.",
    ]
    for name, field in PipelineConfig.model_fields.items():
        section = getattr(config, name)
        lines += ["", f"# {type(section).__doc__.strip()}", f"[{name}]"]
        for key, info in type(section).model_fields.items():
            value = getattr(section, key)
            if value is None:  # TOML has no null: an unset key is shown commented out
                lines.append(f"# {key} = 0.1  # {info.description} (unset: off)")
            else:
                lines.append(f"{key} = {_toml_value(value)}  # {info.description}")
    return "\n".join(lines) + "\n"
