# scimd — developer commands. The first use creates .venv and installs scimd, the plugins
# in plugins/ and the test and lint tools; later runs reuse it (re-installed when a
# pyproject.toml changes).
PYTHON  ?= python3
VENV    := .venv
BIN     := $(VENV)/bin
ROOT    := $(CURDIR)
CONFIG  ?= scimd.toml
STAMP   := $(VENV)/.installed
# Plugins installed into .venv and tested by `make test`. scimd-ldap needs python-ldap,
# which builds from source against libldap (Debian: libldap2-dev libsasl2-dev): it is
# included where those headers are installed (CI installs them), so that `make run` and
# `make test` still work on a machine that has only Python.
PLUGINS := plugins/scimd-postgres plugins/scimd-http examples/scimd-example-backend
ifneq ($(wildcard /usr/include/ldap.h),)
PLUGINS += plugins/scimd-ldap
endif

.PHONY: run test test-core test-plugins lint bench bench-postgres profile install clean format

$(STAMP): pyproject.toml $(addsuffix /pyproject.toml,$(PLUGINS))
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]' $(addprefix -e ,$(PLUGINS))
	@touch $(STAMP)

install: $(STAMP)

run: $(STAMP)
	$(BIN)/scimd serve -c $(CONFIG)

# The core suite, then each plugin's own suite (each plugin is its own distribution with
# its own tests package, so it runs from its own directory).
test: $(STAMP)
	@status=0; \
	$(BIN)/python -m pytest $(PYTEST_ARGS) || status=$$?; \
	for p in $(PLUGINS); do \
	  (cd $$p && $(ROOT)/$(BIN)/python -m pytest $(PYTEST_ARGS)) || status=$$?; \
	done; \
	exit $$status

test-core: $(STAMP)
	$(BIN)/python -m pytest $(PYTEST_ARGS)

test-plugins: $(STAMP)
	@status=0; for p in $(PLUGINS); do \
	  (cd $$p && $(ROOT)/$(BIN)/python -m pytest $(PYTEST_ARGS)) || status=$$?; \
	done; exit $$status

lint: $(STAMP)
	$(BIN)/ruff check scimd tests bench $(PLUGINS)
	$(BIN)/ruff format --check scimd tests bench $(PLUGINS)
	$(BIN)/mypy
	@for p in $(PLUGINS); do \
	  (cd $$p && MYPYPATH=$(ROOT) $(ROOT)/$(BIN)/mypy --config-file $(ROOT)/pyproject.toml \
	     --explicit-package-bases $$(basename $$p | tr - _) tests) || exit 1; \
	done

format: $(STAMP)
	$(BIN)/ruff format scimd tests bench $(PLUGINS)
	$(BIN)/ruff check --fix scimd tests bench $(PLUGINS)

# The embedded store next to a bare aiohttp endpoint (issues 2 and 3), then the LDAP bridge
# next to the embedded store (issue 6) where slapd and python-ldap are installed.
bench: $(STAMP)
	$(BIN)/python -m bench $(BENCH_ARGS)
ifneq ($(wildcard /usr/include/ldap.h),)
	@if command -v slapd >/dev/null 2>&1 || test -x /usr/sbin/slapd; then \
	  $(BIN)/python -m bench.ldap --users 10000 --requests 200 --seconds 5; \
	else echo "bench: slapd not installed, LDAP bench skipped (apt-get install slapd ldap-utils)"; fi
endif

# PostgreSQL at scale (issue 5): a throwaway cluster, 1,000,000 users imported, the latency
# checks next to GET by id, RSS. Long (about 15 minutes).
bench-postgres: $(STAMP)
	$(BIN)/python -m bench.postgres $(BENCH_PG_ARGS)

# Event-loop CPU per request for one scenario (``--scenario get|username|emails|list``).
profile: $(STAMP)
	$(BIN)/python -m bench.profile $(PROFILE_ARGS)

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache build *.egg-info plugins/*/*.egg-info
