# Jauap: the two commands of the README are `make run` and `make test`.
# Every target installs what it needs (apt packages, venv, Python packages) on a fresh machine.

SHELL := /bin/bash
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
HOST ?= 127.0.0.1
PORT ?= 5000
DEMO_APPEALS ?= 300
export FLASK_APP := server:create_app
export SPATIALITE_LIBRARY_PATH ?= mod_spatialite
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
APT_INSTALL := DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -q --no-install-recommends

.PHONY: run test test-slow lint bench system-deps postgis browser-deps venv translations vendor clean

## make run: set up and run Jauap on the embedded default (SQLite + SpatiaLite) with demo data.
run: system-deps venv translations
	$(BIN)/flask db upgrade
	$(BIN)/flask demo seed --appeals $(DEMO_APPEALS) --top-up
	$(BIN)/flask serve --host $(HOST) --port $(PORT)

## make test: set up and run the whole test suite (SpatiaLite and PostGIS).
## Two pytest workers (the machine's two cores), one test file each at a time: every file builds its own
## databases with unique names and its servers on free ports, so they do not meet. PYTEST_WORKERS=0 runs serially.
PYTEST_WORKERS ?= 2
XDIST = $(if $(filter 0,$(PYTEST_WORKERS)),,-n $(PYTEST_WORKERS) --dist loadfile)
test: system-deps postgis browser-deps venv translations lint
	$(BIN)/python -m pytest -q -m "not slow" $(XDIST) $(PYTEST_ARGS)

## make test-slow: the long runs `make test` leaves out (tests marked slow): 10,000+ schema-fuzz cases,
## the kill -9 and database-stop fault runs, the full IDOR sweep, the heavy upload corpus.
test-slow: system-deps postgis browser-deps venv translations
	$(BIN)/python -m pytest -q -m slow $(XDIST) $(PYTEST_ARGS)

lint: venv
	$(BIN)/ruff check .

## make bench: every benchmark in bench/ (see bench/README.md). Each exits 1 when a goal fails;
## the `-` keeps the others running so one run prints every figure.
bench: system-deps postgis venv
	-$(BIN)/python bench/geo.py
	-$(BIN)/python bench/intake.py --floor
	-$(BIN)/python bench/fanout.py --floor
	-$(BIN)/python bench/outbox.py
	-$(BIN)/python bench/push.py
	-$(BIN)/python bench/analytics.py --reuse
	-$(BIN)/python bench/map_snapshot.py --reuse
	-$(BIN)/python bench/load.py
	-$(BIN)/python bench/faults.py


system-deps:
	@if ! ls /usr/lib/*/mod_spatialite.so >/dev/null 2>&1 && ! ls /usr/lib/mod_spatialite.so >/dev/null 2>&1; then \
	  echo "installing SpatiaLite (libsqlite3-mod-spatialite)"; \
	  $(SUDO) apt-get update -q && $(APT_INSTALL) libsqlite3-mod-spatialite; \
	fi

# Debian's Chromium for the Playwright browser tests (never `playwright install`: it downloads a browser).
browser-deps:
	@if [ ! -x /usr/bin/chromium ]; then \
	  echo "installing chromium"; \
	  $(SUDO) apt-get update -q && $(APT_INSTALL) chromium; \
	fi

# PostGIS for the PostgreSQL on this machine, when there is one (tests skip PostGIS without it, except in CI).
postgis:
	@if command -v pg_lsclusters >/dev/null 2>&1 || [ -d /usr/lib/postgresql ]; then \
	  ver=$$(ls /usr/lib/postgresql | sort -n | tail -1); \
	  if [ ! -f /usr/share/postgresql/$$ver/extension/postgis.control ]; then \
	    echo "installing postgresql-$$ver-postgis-3"; \
	    $(SUDO) apt-get update -q && $(APT_INSTALL) postgresql-$$ver-postgis-3; \
	  fi; \
	else echo "no PostgreSQL here: PostGIS tests will skip"; fi

$(BIN)/python:
	$(PY) -m venv $(VENV)

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev]'
	touch $@

venv: $(VENV)/.installed

translations: venv
	@$(BIN)/pybabel compile -q -d server/translations 2>/dev/null || $(BIN)/pybabel compile -d server/translations

# Refresh pwa/vendor from the npm registry (versions pinned in pwa/package.json).
vendor:
	rm -rf /tmp/jauap-vendor && mkdir -p /tmp/jauap-vendor && cp pwa/package.json /tmp/jauap-vendor/
	cd /tmp/jauap-vendor && npm install --no-audit --no-fund --silent
	cp /tmp/jauap-vendor/node_modules/swagger-ui-dist/{swagger-ui-bundle.js,swagger-ui.css,LICENSE,NOTICE,swagger-ui-bundle.js.LICENSE.txt} pwa/vendor/swagger-ui/
	mkdir -p pwa/vendor/leaflet/images pwa/vendor/leaflet.markercluster pwa/vendor/socket.io
	cp /tmp/jauap-vendor/node_modules/leaflet/dist/{leaflet.js,leaflet.css} /tmp/jauap-vendor/node_modules/leaflet/LICENSE pwa/vendor/leaflet/
	cp /tmp/jauap-vendor/node_modules/leaflet/dist/images/*.png pwa/vendor/leaflet/images/
	cp /tmp/jauap-vendor/node_modules/leaflet.markercluster/dist/{leaflet.markercluster.js,MarkerCluster.css,MarkerCluster.Default.css} /tmp/jauap-vendor/node_modules/leaflet.markercluster/MIT-LICENCE.txt pwa/vendor/leaflet.markercluster/
	cp /tmp/jauap-vendor/node_modules/socket.io-client/dist/socket.io.min.js /tmp/jauap-vendor/node_modules/socket.io-client/LICENSE pwa/vendor/socket.io/

clean:
	rm -rf $(VENV) instance .pytest_cache
