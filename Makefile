# The two commands a fresh machine needs: `make run` and `make test`.
# Both install exactly the versions in requirements.lock (regenerate it with `make lock`).
PY       ?= python3.11
VENV     ?= .venv
BIN      := $(VENV)/bin
STAMP    := $(VENV)/.installed
PIP      := pip==26.3
RUN_ARGS ?=

.PHONY: install run test lock clean

$(STAMP): pyproject.toml requirements.lock
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/pip install -q $(PIP)
	# torch first and pinned: an unpinned torch pulls a multi-GB CUDA build.
	$(BIN)/pip install -q torch==2.13.0
	$(BIN)/pip install -q -r requirements.lock
	$(BIN)/pip install -q --no-deps -e .
	$(BIN)/pip check
	touch $(STAMP)

install: $(STAMP)

run: $(STAMP)
	$(BIN)/onefeed run $(RUN_ARGS)

test: $(STAMP)
	$(BIN)/python -m pytest

lock:
	PY=$(PY) bash tools/lock.sh

clean:
	rm -rf $(VENV) runs
