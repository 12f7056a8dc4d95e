# EvalSign: `make run` to start a local instance, `make test` to run the suite.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
DATA_DIR ?= var
PYTEST_ARGS ?=
# One pytest process per core (pytest-xdist), each test file kept on one worker so its
# module fixtures are built once; PYTEST_WORKERS=0 runs the suite in one process.
PYTEST_WORKERS ?= auto
# Installed without its declared opencv-python (see pyproject.toml); its needs are ours.
INSIGHTFACE := insightface==2.1

.PHONY: install run test lint bench bench-supervision demo clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

# constraints.txt holds the exact versions CI tested; pyproject.toml the ranges.
$(STAMP): pyproject.toml constraints.txt | $(BIN)/python
	$(BIN)/python -m pip install --quiet -c constraints.txt -e '.[test]'
	$(BIN)/python -m pip install --quiet --no-deps -c constraints.txt $(INSIGHTFACE)
	touch $@

install: $(STAMP)

run: install
	$(BIN)/evalsign init --data-dir $(DATA_DIR)
	@echo "Use a token above as 'Authorization: Bearer <token>' (a supervisor's also opens the console)."
	$(BIN)/evalsign serve --data-dir $(DATA_DIR)

# Exit code 5 is pytest's "no tests collected"; anything else non-zero is a failure.
test: install
	$(BIN)/pytest -n $(PYTEST_WORKERS) --dist loadfile $(PYTEST_ARGS) || [ $$? -eq 5 ]

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/lint-imports

# The whole job on a fresh temporary instance: draw, QR sign-in, scoring, the signed report.
demo: install
	$(BIN)/evalsign demo --out $(DATA_DIR)/demo

bench: install
	$(BIN)/python bench/registry_bench.py
	$(BIN)/python bench/face_bench.py
	$(BIN)/python bench/liveness_bench.py
	$(BIN)/python bench/signing_bench.py
	$(BIN)/python bench/documents_bench.py
	$(BIN)/python bench/draw_bench.py
	$(BIN)/python bench/pages_bench.py

# Needs PostgreSQL (EVALSIGN_BENCH_DATABASE_URL, default the local postgres user's server).
bench-supervision: install
	$(BIN)/python bench/supervision_bench.py

# Regenerate the pins after changing dependency ranges (then run make test).
constraints:
	$(BIN)/python -m pip freeze --exclude-editable | grep -v '^evalsign' > constraints.txt

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
