"""The names of the files in a run directory, in one place (stages write them, the report and status read them)."""

# bookkeeping
STATE = "state.json"
LOCK = "run.lock"
LOG = "log.txt"
CONFIG = "config.toml"

# stage outputs, in stage order: Parquet tables (pyarrow, pandas and `datasets` read them)
PASSAGES = "passages.parquet"
QUERIES = "queries.parquet"
KEPT = "queries.kept.parquet"
DOCUMENTS = "documents.parquet"
PAIRS = "pairs.parquet"
JUDGMENTS = "judgments.parquet"
BALANCE_DOCUMENTS = "judgments.documents.parquet"
MODEL = "model"
EVAL = "eval"
BASE_PER_QUERY = "eval/base/per_query.tsv"
TUNED_PER_QUERY = "eval/tuned/per_query.tsv"
COMPARISON = "eval/comparison.json"
REPORT_MD = "report.md"
REPORT_HTML = "report.html"

# what the train stage hands to a launched `gradir train`
TRAIN_SETTINGS = "train.settings.json"
TRAIN_QUERY_GROUPS = "train.query_groups.json"
TRAIN_DOCUMENTS = "train.documents.jsonl"

# inside the model folder
TRAINING_LOG = "training_log.jsonl"
TRAINING_SUMMARY = "training.json"
