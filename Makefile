# Set-up and the two things a fresh machine does: run the offline default, run the tests.
VENV ?= .venv
PY := $(VENV)/bin/python
SNAKEMAKE := $(VENV)/bin/snakemake
CORES ?= 8

.PHONY: setup browser run report test lint clean-results

setup: $(VENV)/.installed

# torch is pinned to the local CPU wheel (2.13.0); installing it on its own first keeps any
# other package from pulling a CUDA build.
$(VENV)/.installed: requirements.txt
	python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q torch==2.13.0
	$(PY) -m pip install -q -r requirements.txt
	touch $@

# Debian's Chromium (and a Japanese font for it) for the browser tests of the report and pages.
browser:
	@{ command -v chromium >/dev/null && fc-list | grep -qi "noto.*cjk"; } || { \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
	  chromium fonts-noto-cjk >/dev/null; }

run: setup
	$(SNAKEMAKE) --cores $(CORES) --resources gpu=1
	$(SNAKEMAKE) --report results/report.zip

report: setup
	$(SNAKEMAKE) --report results/report.zip

# The SLURM tests need the single-node test cluster (root, apt); without it they are skipped.
test: setup browser
	tests/slurm/cluster.sh start || echo "no SLURM test cluster (needs root and apt): slurm tests will be skipped"
	$(PY) -m pytest; rc=$$?; tests/slurm/cluster.sh stop; exit $$rc

lint: setup
	$(SNAKEMAKE) --lint
	$(VENV)/bin/ruff check scripts tests benchmarks
	$(VENV)/bin/ruff format --check scripts tests benchmarks
	$(VENV)/bin/snakefmt --check Snakefile rules
