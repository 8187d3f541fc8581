# Two entry points: `make demo` (set up, then check, build and draw a zoo model) and `make test`.
PYTHON ?= python3
VENV   ?= .venv
PY      = $(VENV)/bin/python
DEMO_MODEL ?= resnet50

.PHONY: setup demo test typecheck lint clean

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q torch==2.13.0
	$(PY) -m pip install -q -e '.[dev,kernels,onnx]'
	@command -v dot >/dev/null 2>&1 || { [ "$$(id -u)" = 0 ] && (apt-get update -qq && apt-get install -y -qq graphviz >/dev/null) || echo "note: install graphviz for SVG output"; }
	touch $@

setup: $(VENV)/.installed

demo: setup
	$(VENV)/bin/archdsl check $(DEMO_MODEL)
	$(VENV)/bin/archdsl stats $(DEMO_MODEL) --input N=1,H=224,W=224 --depth 1
	$(VENV)/bin/archdsl build $(DEMO_MODEL) -o out/$(DEMO_MODEL) --force
	$(VENV)/bin/archdsl viz $(DEMO_MODEL) -o out/$(DEMO_MODEL).svg --depth 1
	$(VENV)/bin/archdsl simplify repvgg_a0 -o out/repvgg_a0_deploy --force
	$(VENV)/bin/archdsl viz repvgg_a0 --diff --depth 1 -o out/repvgg_a0_diff.svg
	@echo "built out/$(DEMO_MODEL)/ and drew out/$(DEMO_MODEL).svg; simplified RepVGG-A0 into out/repvgg_a0_deploy/ (drawn in out/repvgg_a0_diff.svg)"

test: setup
	$(VENV)/bin/ruff check .
	$(MAKE) --no-print-directory typecheck
	$(VENV)/bin/archdsl fmt --check specs examples
	CI=$${CI:-1} $(PY) -m pytest -m "not slow and not reference" -p no:cacheprovider

typecheck: setup
	@mkdir -p build/typecheck/archdsl && ln -sfn ../../../backends build/typecheck/archdsl/backends
	$(VENV)/bin/mypy

clean:
	rm -rf $(VENV) out build *.egg-info
