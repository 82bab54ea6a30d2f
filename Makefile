# `make demo`: install into .venv, then run every notebook in its demo preset (CPU, embedded data).
# `make test`: install into .venv, then run the whole test suite (notebooks executed end to end).
SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp
DEMO_OUT ?= runs/demo

.PHONY: install demo test test-fast bench clean

$(STAMP): requirements.txt pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q -r requirements.txt
	$(PY) -m pip install -q --no-deps -e .
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(PY) -m kdlib run mnist-kd --preset demo --out $(DEMO_OUT)/mnist-kd
	$(PY) -m kdlib run cifar10-ast --preset demo --out $(DEMO_OUT)/cifar10-ast
	$(PY) -m kdlib run imagenet100-ast --preset demo --out $(DEMO_OUT)/imagenet100-ast

test: $(STAMP)
	$(PY) -m pytest

test-fast: $(STAMP)
	$(PY) -m pytest -m "not notebook"

bench: $(STAMP)
	$(PY) benchmarks/bench_mnist_loop.py
	$(PY) benchmarks/bench_ast_step.py
	$(PY) benchmarks/bench_parallel_students.py
	$(PY) benchmarks/bench_imagenet_pipeline.py
	$(PY) benchmarks/bench_new_shapes.py

clean:
	rm -rf $(VENV) runs .pytest_cache
