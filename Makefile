# Two commands: `make run` serves the portal with demo data, `make test` runs every check.
# Without DATABASE_URL both start a project-local PostgreSQL (.pgdata/, a port derived from its path).

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
HOST ?= 127.0.0.1
PORT ?= 8000

.PHONY: run port-free test test-pgbouncer db db-stop migrate seed lint typecheck migrations-check pytest bench screenshots \
	clean messages \
	stack stack-down

$(BIN)/.installed: requirements.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check --upgrade pip
	$(BIN)/pip install --quiet --disable-pip-version-check -r requirements.txt
	touch $@

# Start the embedded server unless the user brought a database.
db: $(BIN)/.installed
ifndef DATABASE_URL
	$(BIN)/python -m mbusportal.embedded_db start
endif

db-stop: $(BIN)/.installed
	$(BIN)/python -m mbusportal.embedded_db stop

# Before anything else: a second `make run` on a busy port re-seeded the live database, started a second
# MQTT subscriber under the first one's client id and, when daphne then could not listen, stopped the
# first one's broker on its way out.
port-free:
	@$(PYTHON) -c 'import socket, sys; s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1); \
	s.bind((sys.argv[1], int(sys.argv[2])))' $(HOST) $(PORT) 2>/dev/null || { \
	echo "make run: $(HOST):$(PORT) is in use (another make run?); stop it, or choose another port: make run PORT=8001" >&2; \
	exit 1; }

# `make run` is a development server: DEBUG on (static files, a throwaway key) unless set.
run: export DEBUG ?= true
run: export PORTAL_URL ?= http://$(HOST):$(PORT)
run: port-free db
	$(BIN)/python manage.py migrate --no-input
	$(BIN)/python manage.py seed_demo
	$(BIN)/python manage.py seed_demo_settlement
	@echo "Portal: http://$(HOST):$(PORT)/admin/  alarms: http://$(HOST):$(PORT)/alarms/  health: http://$(HOST):$(PORT)/health"
	@# MQTT only with a broker we were given (MQTT_URL) or start ourselves: a project-local Mosquitto
	@# from deploy/mosquitto/ (.mosquitto/, a port derived from the path) when mosquitto is installed.
	@# The subscriber (and that broker) stop with daphne; without either it is HTTP only.
	@# One job worker (periodic checks, statement e-mails: README "Jobs") runs beside daphne and stops with it.
	@if [ -z "$$MQTT_URL" ] && $(BIN)/python manage.py mqtt_broker start; then \
		eval "$$($(BIN)/python manage.py mqtt_broker env)"; local_broker=1; \
	fi; \
	echo "Jobs: starting one worker (python manage.py procrastinate worker)"; \
	$(BIN)/python manage.py procrastinate worker & worker_pid=$$!; \
	if [ -n "$$MQTT_URL" ] && $(BIN)/python manage.py mqtt_ingest --probe; then \
		echo "MQTT: starting the subscriber (python manage.py mqtt_ingest)"; \
		$(BIN)/python manage.py mqtt_ingest & mqtt_pid=$$!; \
	else \
		echo "MQTT: off (HTTP only). Install mosquitto, or set MQTT_URL to your broker"; \
	fi; \
	trap 'kill $$worker_pid $$mqtt_pid 2>/dev/null; wait $$worker_pid $$mqtt_pid; [ -z "$$local_broker" ] || $(BIN)/python manage.py mqtt_broker stop' EXIT INT TERM; \
	$(BIN)/daphne -b $(HOST) -p $(PORT) mbusportal.asgi:application

# The production topology on 127.0.0.1 (README "Two commands"): nginx (TLS, self-signed) over two daphnes,
# PgBouncer, Redis, Mosquitto, the alarm relay, a job worker and the MQTT subscriber, from deploy/, with
# ports derived from the path (.stack/). Needs nginx, pgbouncer, redis-server and mosquitto installed.
# DEBUG only for the command itself: the stack's processes run with DEBUG off, as in production.
stack: db
	DEBUG=true $(BIN)/python manage.py stack up

stack-down: $(BIN)/.installed
	DEBUG=true $(BIN)/python manage.py stack down

test: db lint typecheck migrations-check pytest

lint: $(BIN)/.installed
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(BIN)/.installed
	$(BIN)/mypy .

# Every model change has its migration: fails (and prints what is missing) if makemigrations would write one.
migrations-check: db
	DEBUG=true $(BIN)/python manage.py makemigrations --check --dry-run

pytest: db
	$(BIN)/pytest

# The whole suite with the portal's connections through PgBouncer in transaction mode, as deployed
# (README "PgBouncer"); what keeps a session (LISTEN, session locks) goes past it (DATABASE_DIRECT_URL).
# Needs pgbouncer installed. PgBouncer runs from .stack-pgbouncer/ and stops afterwards.
test-pgbouncer: db
	@set -e; eval "$$(DEBUG=true $(BIN)/python manage.py stack pgbouncer --folder .stack-pgbouncer)"; \
	status=0; $(BIN)/pytest || status=$$?; \
	DEBUG=true $(BIN)/python manage.py stack down --folder .stack-pgbouncer >/dev/null; exit $$status

# Every benchmark in bench/ at a quick setting, then one table of their figures and ratios (README "Two commands");
# BENCH_ARGS="--only ingest,frames" or "--skip pages" chooses.
bench: db
	DEBUG=true $(BIN)/python -m bench.summary $(BENCH_ARGS)

# Every page a manager, tenant and operator reach, at 390 and 1366 px, Danish and English, under screenshots/
# (README "Two commands"). The demo goes into a scratch database; the development data stays as it is.
screenshots: db
	DEBUG=true $(BIN)/python -m scripts.screenshots

# Regenerate the Danish catalogues (.po) and compile them (.mo, committed). Needs GNU gettext
# (apt-get install gettext); `make run` and `make test` do not.
messages: $(BIN)/.installed
	DEBUG=true $(BIN)/python manage.py makemessages -l da --no-obsolete --ignore=.venv --ignore=tests --ignore=.pgdata --ignore=bench
	DEBUG=true $(BIN)/python manage.py compilemessages -l da --ignore=.venv

clean: db-stop
	-$(BIN)/python manage.py mqtt_broker stop
	-DEBUG=true $(BIN)/python manage.py stack down
	rm -rf $(VENV) .pgdata .mosquitto .stack .mypy_cache .ruff_cache
