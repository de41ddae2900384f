# Two commands do all set-up on a fresh machine:
#   make demo   - create .venv, install, stylize the embedded example images into out/
#   make test   - create .venv with test extras, run ruff and the test suite
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# Ikomia pins numpy and brings mlflow: it gets a venv of its own, used only by its host's tests.
IK_VENV := .venv-ikomia
IK_STAMP := $(IK_VENV)/.installed
IK_TESTS := tests/test_host_ikomia.py tests/test_host_ikomia_translate.py

.PHONY: demo test lint bench clean-venv ikomia-test

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e ".[test,napari,distributed,video]"
	touch $(STAMP)

$(IK_STAMP): pyproject.toml
	test -x $(IK_VENV)/bin/python || $(PYTHON) -m venv $(IK_VENV)
	$(IK_VENV)/bin/pip install -q --upgrade pip
	$(IK_VENV)/bin/pip install -q -e ".[ikomia]" "pytest>=8"
	touch $(IK_STAMP)

# NST_REQUIRE_IKOMIA=1: a missing ikomia fails these tests instead of skipping them.
ikomia-test: $(IK_STAMP)
	NST_REQUIRE_IKOMIA=1 $(IK_VENV)/bin/pytest -p no:cacheprovider $(IK_TESTS)

demo: $(STAMP)
	$(BIN)/nst example --out out

test: $(STAMP) $(IK_STAMP)
	$(BIN)/ruff check .
	$(BIN)/lint-imports
	$(BIN)/pytest
	$(MAKE) --no-print-directory ikomia-test

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports

clean-venv:
	rm -rf $(VENV) $(IK_VENV)
