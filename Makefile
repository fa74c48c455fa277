# kefu — quick start: `make run` (local emulation with a demo tenant) and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: install runtime first-run run reset faults test suite lint typecheck unit integration e2e infra browser screenshots bench eval cost system-deps node-deps clean

## Two installs in one .venv: what running needs (`make run`, `./kefu`: the runtime and the emulator's
## moto/uvicorn, extra "local") and everything for tests and tooling (extra "dev": CDK, mypy, Playwright…).
$(VENV)/.runtime: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e ".[local]"
	touch $@

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e ".[dev]"
	touch $@ $(VENV)/.runtime

install: $(VENV)/.installed

## Only what `make run` needs (no test or deploy tooling).
runtime: $(VENV)/.runtime

## Local emulation on 127.0.0.1 (KEFU_PORT, default 8700) with a demo tenant; Ctrl-C stops it.
## State (tenants, keys, knowledge, agents, conversations) stays in .kefu/ across runs; FRESH=1 starts empty.
run: runtime
	$(BIN)/python -m local.run $(if $(FRESH),--fresh)

## Forget the local state in .kefu/ (refused while a `make run` uses it).
reset: runtime
	$(BIN)/python -m local.run --reset

## What the tests need beyond Python packages: redis-server (Debian package) and the pinned CDK CLI.
## The browser tests drive Debian's chromium (Playwright never downloads a browser here) with a CJK font.
system-deps:
	@command -v redis-server >/dev/null 2>&1 || ($(SUDO) apt-get update -qq && $(SUDO) apt-get install -y -qq redis-server)
	@[ -x /usr/bin/chromium ] || ($(SUDO) apt-get update -qq && $(SUDO) apt-get install -y -qq chromium)
	@[ -e /usr/share/fonts/truetype/wqy/wqy-microhei.ttc ] || ($(SUDO) apt-get update -qq && $(SUDO) apt-get install -y -qq fonts-wqy-microhei)

node-deps: node_modules/.package-lock.json

node_modules/.package-lock.json: package.json package-lock.json
	npm ci --no-audit --no-fund --loglevel=error

## ruff, and shared/'s layering: imports only go down (import-linter; the layers are in pyproject.toml).
lint: install
	$(BIN)/ruff check .
	$(BIN)/lint-imports

typecheck: install
	$(BIN)/mypy shared functions local infra

unit: install
	$(BIN)/pytest tests/unit -q

integration: install system-deps
	$(BIN)/pytest tests/integration -q

e2e: install system-deps
	$(BIN)/pytest tests/e2e -q

infra: install node-deps
	$(BIN)/pytest tests/infra -q

## The widget and the agent console in Chromium (Playwright).
browser: install system-deps
	$(BIN)/pytest tests/browser -q

## Re-take the README's screenshots (docs/screenshots/) with the browser test.
screenshots: install system-deps
	KEFU_SCREENSHOT_DIR=docs/screenshots $(BIN)/pytest tests/browser -q

## Every suite: lint, types, unit, integration, e2e, browser, infra. mypy (a minute and more on a cold
## cache) runs beside pytest, whose workers leave a core partly idle while they wait on the stacks.
test: install system-deps node-deps lint
	$(MAKE) --no-print-directory -j2 typecheck suite

## The whole pytest suite on three workers for two cores: much of it waits on local stacks, browsers and
## subprocesses, so a third worker fills the idle core time (test files kept whole: tests/conftest.py).
suite: install system-deps node-deps
	$(BIN)/pytest tests -n 3 --dist loadgroup

## The long fault-injection run (model killed/refusing/429/500/503/hanging/slow, Redis and moto restarted,
## generate crashing) -> docs/reliability.md. `make test` runs a short version (tests/e2e/test_faults.py).
faults: install system-deps
	$(BIN)/python -m tests.support.faults --visitors 12 --messages 3 --state-dir .kefu-faults --report docs/reliability.md

## What a new user's first `make run` installs and how long it takes (a fresh clone of HEAD; README figures).
first-run:
	$(PYTHON) local/first_run.py --port $(or $(KEFU_PORT),8765)

bench: install system-deps
	$(BIN)/python -m local.bench

## docs/cost.md: the idle floor of each synthesized profile (local/cost/prices.toml) and the infra cost per
## conversation measured through the local stack (~3 min; `python -m local.cost --reuse` re-renders).
cost: install system-deps
	$(BIN)/python -m local.cost

## Retrieval quality through the admin API (StackFAQ, HINT3) -> docs/quality.md.
eval: install
	$(BIN)/python -m local.eval_quality

clean:
	rm -rf .kefu .kefu-faults cdk.out .pytest_cache .mypy_cache .ruff_cache
