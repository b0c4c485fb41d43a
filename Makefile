# hookd — developer entry points. Every target installs what it needs itself.
PY      ?= python3
VENV    := .venv
BIN     := $(VENV)/bin
STAMP   := $(VENV)/.installed

.PHONY: test unit integration chaos lint typecheck demo bench cpu check clean broker floor tinyproxy

## BROKER: what the integration tests run on: kafka (Apache Kafka, KRaft, from its pinned
## jars; needs Java 17+ and, once, Maven) or tansu (the demo's broker: Python only)
BROKER  ?= kafka
export HOOKD_TEST_BROKER := $(BROKER)

BENCH_STAMP := $(VENV)/.installed-bench
DURATION ?= 60
RATE    ?= 20

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

## make broker: Java checked, Apache Kafka's pinned jars fetched once (Maven) and checked
## into ~/.cache/hookd/kafka; stops at once, saying what to install, when they cannot be
broker: $(STAMP)
ifeq ($(BROKER),kafka)
	$(BIN)/python -m hookd.dev.kafka --check
endif

## make tinyproxy: the real HTTP proxy tests/integration/test_proxy.py runs (Debian's package),
## installed when missing (as root); its tests fail, never skip, without it
tinyproxy:
	@command -v tinyproxy >/dev/null || DEBIAN_FRONTEND=noninteractive apt-get install -y \
		--no-install-recommends tinyproxy || (apt-get update && DEBIAN_FRONTEND=noninteractive \
		apt-get install -y --no-install-recommends tinyproxy)

## make test: lint, type-check, then every test (unit + integration against a real broker)
test: $(STAMP) broker tinyproxy lint typecheck
	$(BIN)/pytest -q

unit: $(STAMP)
	$(BIN)/pytest -q tests/unit

## make floor: the unit tests and lint-imports against the LOWEST version pyproject.toml admits
## for each direct dependency (uv's --resolution lowest-direct), in a second venv made anew
## whenever pyproject.toml changes; a floor that fails here is raised in pyproject.toml
FLOOR       := .venv-floor
FLOOR_STAMP := $(FLOOR)/.installed
$(FLOOR_STAMP): pyproject.toml
	rm -rf $(FLOOR)
	$(PY) -m venv $(FLOOR)
	$(FLOOR)/bin/pip install --quiet 'uv>=0.4'
	$(FLOOR)/bin/uv pip install --quiet --python $(FLOOR)/bin/python \
		--resolution lowest-direct -e '.[dev]'
	touch $(FLOOR_STAMP)

floor: $(FLOOR_STAMP)
	$(FLOOR)/bin/uv pip list --python $(FLOOR)/bin/python 2>/dev/null \
		| grep -iE '^(aiokafka|aiohttp|yarl|pyyaml|jinja2|tenacity|structlog|pydantic|orjson|aiolimiter|uvloop|httptools|ahocorasick-rs|prometheus-client|pytest|pytest-asyncio|hypothesis|import-linter) '
	$(FLOOR)/bin/pytest -q -p no:cacheprovider tests/unit
	$(FLOOR)/bin/lint-imports --no-cache

integration: $(STAMP) broker tinyproxy
	$(BIN)/pytest -q tests/integration

## make chaos: many kill -9 rounds under steady load (make test runs 3); prints lost/duplicates;
## then every broker fault on a 3-node cluster (make test runs the first): a leader killed, a
## rolling restart, the whole cluster down 30 s (figures in /tmp/cluster-faults/)
CHAOS_ROUNDS ?= 12
chaos: $(STAMP) broker
	HOOKD_CHAOS_ROUNDS=$(CHAOS_ROUNDS) $(BIN)/pytest -q -s tests/integration/test_chaos.py
	HOOKD_CLUSTER_FAULTS=all $(BIN)/pytest -q -s tests/integration/test_cluster_faults.py

## make lint / make typecheck: ruff; the stages' imports (import-linter: pyproject's
## [tool.importlinter], ARCHITECTURE.md); mypy --strict (pyproject's packages, then bench/)
lint: $(STAMP)
	$(BIN)/ruff check hookd tests bench
	$(BIN)/lint-imports --no-cache

typecheck: $(STAMP)
	$(BIN)/mypy
	$(BIN)/mypy -p bench

## make demo: local broker + receiver + hookd (config/ samples) + simulated traffic, live
## summary; stops after $(DURATION) s or on Ctrl-C, leaving no process behind
demo: $(STAMP)
	$(BIN)/python -m bench.demo --duration $(DURATION) --rate $(RATE)

$(BENCH_STAMP): $(STAMP)
	$(BIN)/pip install --quiet -e '.[dev,bench]'
	touch $(BENCH_STAMP)

## make bench: hookd vs a plain aiohttp client vs a hand-written loop, on Apache Kafka; table,
## figures and chart in bench/results/ only (bench/README.md: what each row means;
## BENCH_ARGS=--quick for a short try)
bench: $(BENCH_STAMP)
	$(BIN)/python -m bench.run $(BENCH_ARGS)

## make cpu: instructions per delivery, counted under valgrind (bench.cpu --callgrind; ~15
## minutes): 3 hooks, then beside a black-holed hook, then stage by stage (bench.stages)
cpu: $(STAMP)
	$(BIN)/python -m bench.cpu --callgrind --events 500 --warm 300
	$(BIN)/python -m bench.cpu --callgrind --events 500 --warm 300 --blackhole
	$(BIN)/python -m bench.stages --callgrind --events 300
	$(BIN)/python -m bench.cpu --callgrind --events 500 --warm 300 --others 997

## make check: validate the sample configuration
check: $(STAMP)
	$(BIN)/hookd check -c config/hookd.yaml

clean:
	rm -rf $(VENV) $(FLOOR) .pytest_cache .mypy_cache .ruff_cache build *.egg-info
