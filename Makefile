# signin-links: `make help` lists every target.
SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
SAM_VENV := .venv-sam
SAM := $(SAM_VENV)/bin/sam
HOST ?= 127.0.0.1
PORT ?= 3000
FUNCTION ?= MintLinkFunction
EVENT ?= events/create_sign_in_token.json
export SAM_CLI_TELEMETRY := 0

# Used by `sam build` (BuildMethod: makefile): wheels for Lambda's python3.13 on arm64.
# Lambda's Python, to write its bytecode at build time: pyenv's 3.13 where present, else python3.13.
LAMBDA_PYTHON ?= $(firstword $(wildcard $(HOME)/.pyenv/versions/3.13*/bin/python3.13) $(shell command -v python3.13 2>/dev/null))
# pip through the interpreter itself, not a pyenv shim: the shim rehashes after every `pip install`,
# and `sam build` runs the functions' builds in parallel, so two rehashes at once fail the build.
BUILD_PYTHON = $(shell $(PYTHON) -c 'import sys; print(sys.executable)')
LAMBDA_PIP = "$(BUILD_PYTHON)" -m pip install --quiet --disable-pip-version-check --platform manylinux2014_aarch64 \
	--implementation cp --python-version 3.13 --only-binary=:all: --no-deps --upgrade --target "$(ARTIFACTS_DIR)"

define lambda_package
	$(LAMBDA_PIP) -r functions/$(1)/requirements.txt
	cp -R src/signin_links "$(ARTIFACTS_DIR)/"
	cp functions/$(1)/*.py "$(ARTIFACTS_DIR)/"
	if [ -d functions/$(1)/templates ]; then cp -R functions/$(1)/templates "$(ARTIFACTS_DIR)/"; fi
	find "$(ARTIFACTS_DIR)" -name __pycache__ -type d -prune -exec rm -rf {} +
	@# Lambda cannot write /var/task, so without bytecode every cold start compiles the package
	@# (see docs/performance.md). Only Lambda's own Python version can write its bytecode.
	if [ -n "$(LAMBDA_PYTHON)" ] && "$(LAMBDA_PYTHON)" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 13))'; then \
		"$(LAMBDA_PYTHON)" -m compileall -q -j 0 --invalidation-mode unchecked-hash "$(ARTIFACTS_DIR)"; \
	else echo "note: no Python 3.13 found: the package ships without bytecode"; fi
endef

.PHONY: help
help: ## List the targets
	@grep -hE '^[a-zA-Z_-]+:.*?## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*?## "}; {printf "  \033[36m%-18s\033[0m %s\n", $$1, $$2}'

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check --upgrade pip
	$(PY) -m pip install --quiet --disable-pip-version-check -e '.[dev]'
	touch $@

$(SAM_VENV)/.installed:
	$(PYTHON) -m venv $(SAM_VENV)
	$(SAM_VENV)/bin/pip install --quiet --disable-pip-version-check aws-sam-cli
	touch $@

.PHONY: install
install: $(VENV)/.installed ## Create .venv and install the project with its dev tools

.PHONY: chromium
chromium: ## Install Debian's Chromium for the browser tests (if missing)
	@command -v chromium >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; }

.PHONY: local
local: install ## Run the local stack (moto + the template's HttpApi routes) on http://$(HOST):$(PORT)
	HOST=$(HOST) PORT=$(PORT) $(PY) -m local.stack

.PHONY: events
events: install ## Follow what the running local stack's event buses carry, like tail -f (tokens redacted)
	$(PY) -m local.follow

.PHONY: rotate
rotate: install ## Rotate a keyring of the running local stack: SECRET=TicketSigningKeyringSecret or SessionKeyringSecret
	$(PY) -m local.rotation $(SECRET)

.PHONY: screenshots
screenshots: install chromium ## Screenshots of every page state of the running local stack, for the docs (local/page_tour.py)
	$(PY) -m local.page_tour

.PHONY: invoke
invoke: install ## Run FUNCTION (logical id) on EVENT (a file in events/), as `sam local invoke` would
	$(PY) -m local.invoke $(FUNCTION) $(EVENT)

LAMBDA_VENV := .venv-py313

$(LAMBDA_VENV)/.installed: pyproject.toml
	"$(LAMBDA_PYTHON)" -m venv $(LAMBDA_VENV)
	$(LAMBDA_VENV)/bin/python -m pip install --quiet --disable-pip-version-check -e '.[dev]'
	touch $@

.PHONY: test
# Both passes run the suite's modules in TEST_WORKERS parallel processes (pytest-xdist; `auto` is one
# per core): a module stays on one process (--dist loadfile), so its fixtures (a browser, its own local
# stack) start once, and every e2e process starts its own session stack on a free port.
# TEST_WORKERS=0 runs in this process, in order (for pdb, or to rule parallelism out).
TEST_WORKERS ?= auto
PARALLEL = $(if $(filter 0,$(TEST_WORKERS)),,-n $(TEST_WORKERS) --dist loadfile)

# The Python 3.13 pass (below) runs alongside the first, in one process (SECOND_PASS_WORKERS=0), its
# output kept in SECOND_PASS_LOG and printed after the first pass's: it builds its venv and tests while
# the first pass's processes wait on browsers, stacks and timers. `make test` fails if either fails.
SECOND_PASS_WORKERS ?= 0
SECOND_PASS_LOG := .test-lambda-python.log

test: install chromium ## Run the whole test suite (unit, integration, e2e, browser; on Python 3.13 alongside)
	@$(MAKE) --no-print-directory test-lambda-python TEST_WORKERS=$(SECOND_PASS_WORKERS) > $(SECOND_PASS_LOG) 2>&1 & \
	second=$$!; \
	$(PY) -m pytest $(PARALLEL) --durations=30; first=$$?; \
	wait $$second; second_status=$$?; \
	echo "--- the Python 3.13 pass, run alongside (make test-lambda-python; $(SECOND_PASS_LOG)):"; \
	cat $(SECOND_PASS_LOG); \
	echo "make test: first pass exit $$first, Python 3.13 pass exit $$second_status"; \
	[ $$first -eq 0 ] && [ $$second_status -eq 0 ]

# The second pass checks that the code Lambda runs behaves the same on Lambda's Python: it leaves out
# the tests of the repository's tools (marker `tooling`: the template, SAM CLI, import contracts, the
# local stack's emulation, the benchmarks), which run on the developer's Python only, and draws 10
# examples per property test (Hypothesis profile second-pass; the first pass explored the inputs).
.PHONY: test-lambda-python
test-lambda-python: ## Unit and integration tests on Lambda's Python 3.13 (skipped, said so, if none is found)
	@if [ -n "$(LAMBDA_PYTHON)" ] && "$(LAMBDA_PYTHON)" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 13))'; then \
		$(MAKE) --no-print-directory $(LAMBDA_VENV)/.installed && \
		HYPOTHESIS_PROFILE=second-pass $(LAMBDA_VENV)/bin/python -m pytest -p no:cacheprovider $(PARALLEL) \
			-m "not tooling" tests/unit tests/integration; \
	else echo "note: no Python 3.13 found: the Lambda-runtime test pass was not run"; fi

# What `make test` costs from a fresh clone, as CI runs it (REV=<commit> times another commit, e.g. an
# older one for a before/after); SAM CLI's venv is linked from here when there is one, as CI builds it
# before `make test`. Run it on a quiet machine: the wall time is the figure.
REV ?= HEAD
.PHONY: test-timing
test-timing: ## Time `make test` in a fresh clone of REV (default HEAD) in a temporary folder
	@dir=$$(mktemp -d /tmp/signin-links-timing.XXXXXX) && git clone --quiet "$(CURDIR)" "$$dir/repo" && \
	cd "$$dir/repo" && git checkout --quiet "$(REV)" && \
	if [ -x "$(CURDIR)/$(SAM_VENV)/bin/sam" ]; then ln -s "$(CURDIR)/$(SAM_VENV)" $(SAM_VENV); fi && \
	echo "timing make test at $$(git rev-parse --short HEAD) in $$dir/repo" && \
	start=$$(date +%s) && { $(MAKE) --no-print-directory test > "$$dir/make-test.log" 2>&1; rc=$$?; } ; \
	end=$$(date +%s) && grep -E "^(=+ .*(passed|failed|error).* in |note: )" "$$dir/make-test.log"; \
	echo "make test from a fresh clone: $$((end - start)) s, exit $$rc (log: $$dir/make-test.log)"; exit $$rc

.PHONY: test-fast
test-fast: install ## Unit and integration tests only
	$(PY) -m pytest $(PARALLEL) tests/unit tests/integration

.PHONY: lint
lint: install ## ruff (lint and format check), mypy, and the import contracts (lint-imports, pyproject.toml)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy
	$(VENV)/bin/lint-imports
	for app in functions/*/app.py; do $(VENV)/bin/mypy --strict "$$app" || exit 1; done

.PHONY: format
format: install ## Apply ruff's formatting and safe fixes
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

LOCALE := src/signin_links/locale
PYBABEL := $(VENV)/bin/pybabel

.PHONY: catalogues
catalogues: install ## Extract the page and email texts (texts.py), merge them into every language's .po, compile the .mo files
	$(PYBABEL) extract --no-default-keywords -k N_ --add-comments=Translators: --project=signin-links \
		--no-wrap --sort-output --no-location --omit-header -o $(LOCALE)/signin_links.pot src/signin_links/texts.py
	$(PYBABEL) update -i $(LOCALE)/signin_links.pot -d $(LOCALE) -D signin_links \
		--no-wrap --no-fuzzy-matching --ignore-obsolete --ignore-pot-creation-date
	$(PYBABEL) compile -d $(LOCALE) -D signin_links --statistics

.PHONY: validate
validate: $(SAM_VENV)/.installed ## sam validate --lint
	$(SAM) validate --lint

.PHONY: build
build: $(SAM_VENV)/.installed ## sam build (arm64 python3.13 packages, no Docker needed)
	$(SAM) build

$(VENV)/.docs-installed: pyproject.toml $(VENV)/.installed
	$(PY) -m pip install --quiet --disable-pip-version-check -e '.[docs]'
	touch $@

.PHONY: docs
docs: $(VENV)/.docs-installed ## Serve the documentation site (MkDocs) on http://127.0.0.1:8000
	NO_MKDOCS_2_WARNING=1 $(VENV)/bin/mkdocs serve --dev-addr 127.0.0.1:8000

.PHONY: docs-build
docs-build: $(VENV)/.docs-installed ## Build the documentation site with --strict (a broken link fails)
	NO_MKDOCS_2_WARNING=1 $(VENV)/bin/mkdocs build --strict --site-dir build/site

.PHONY: bench
bench: install ## Run the benchmarks and print every figure with its ratio
	$(PY) -m bench

.PHONY: capacity
capacity: install ## What a deploy takes (sign-ins/s, open tabs, concurrency, quotas, cost): PARAMS="Name=value ..."
	$(PY) -m bench.capacity $(PARAMS)

.PHONY: ci
ci: ## What CI runs (.ci/run)
	bash .ci/run

build-MintLinkFunction:
	$(call lambda_package,mint_link)

build-AcceptTokenFunction:
	$(call lambda_package,accept_token)

build-RotateKeysFunction:
	$(call lambda_package,rotate_keys)

build-SendLinkEmailFunction:
	$(call lambda_package,send_link_email)

build-SessionsFunction:
	$(call lambda_package,sessions)

build-ClerkFrontendFunction:
	$(call lambda_package,clerk_frontend)

build-EmptyResultsBucketFunction:
	cp functions/empty_bucket/app.py "$(ARTIFACTS_DIR)/"

build-AuditEventsFunction:
	$(call lambda_package,audit_events)
