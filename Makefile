# The two commands: `make demo` runs the main job on the embedded default data,
# `make test` runs the test suite. Each does its own set-up first.
VENV := .venv
STAMP := $(VENV)/.lapse-setup
export BENTOML_DO_NOT_TRACK := True

.PHONY: demo test setup lock bench clean check-model

demo: $(STAMP)
	$(VENV)/bin/lapse demo

test: $(STAMP)
	scripts/ensure-chromium.sh
	$(VENV)/bin/lint-imports
	$(VENV)/bin/python -m pytest -q

setup: $(STAMP)

$(STAMP): requirements.lock pyproject.toml scripts/bootstrap.sh
	scripts/bootstrap.sh
	touch $@

# Re-pin every dependency (run after editing pyproject.toml).
lock:
	uv pip compile pyproject.toml --extra test --extra dask --python-version 3.12 \
	  --python-platform x86_64-manylinux_2_28 --no-header -o requirements.lock

# Prove the candidate model (or MODEL=models:/lapse-dropout/3) is self-contained: a fresh uv venv from its
# own requirements.txt, then `mlflow models predict` on its input example there. Needs a trained model.
check-model: $(STAMP)
	PATH=$$HOME/.local/bin:$$PATH $(VENV)/bin/python -m training.model_check $(MODEL)

bench: $(STAMP)
	for b in benchmarks/[!_]*.py; do $(VENV)/bin/python -P $$b || exit 1; done

clean:
	rm -rf .lapse
