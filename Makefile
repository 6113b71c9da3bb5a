# SampleHub: `make demo` runs the main job on the embedded default, `make test` the tests.
VENV    ?= .venv
PYTHON  ?= python3
PY      := $(VENV)/bin/python
EXTRAS  := dev,s3,postgres,ui,neo4j,spark,spatial
STAMP   := $(VENV)/.installed
export HF_HUB_OFFLINE := 1
export SAMPLEHUB_DATA ?= $(abspath ../shared/data)

.PHONY: demo test bench lint install clean stack stack-stop

install: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q -U pip
	$(PY) -m pip install -q -e '.[$(EXTRAS)]'
	touch $(STAMP)

demo: $(STAMP)
	$(PY) -m orchestration.demo

test: $(STAMP)
	$(PY) -m pytest

# The server stack on loopback (infra/stack.py): PostgreSQL, S3, MLflow, Spark, Dagster.
# Then `source ~/.samplehub/stack/stack.env` (the path it prints) and `make demo`.
stack: $(STAMP)
	$(PY) infra/stack.py start

stack-stop:
	$(PY) infra/stack.py stop

bench: $(STAMP)
	$(PY) -m bench

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/lint-imports
	$(VENV)/bin/mypy

clean:
	rm -rf $(VENV) .pytest_cache
