# Flight-data pipeline: OpenSky/synthetic -> Kafka -> ESM-faithful trigger -> Lambda -> SNS.
# Quick start:  make setup && make up (the live map), make down        Tests:  make setup && make test
# Every target runs from the project's own virtualenv; nothing is installed by hand.

SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STACK  ?= native
SOURCE ?= synthetic
mins   ?= 1

# Local AWS endpoint defaults (MiniStack natively, LocalStack with STACK=docker), on the ports `make run`
# uses (AWS_PORT, KAFKA_PORT: infra/stack/servers.py), so every target reaches the stack `make run` started.
# Set AWS_TARGET=aws to use your real AWS credentials and endpoints unchanged.
ifneq ($(AWS_TARGET),aws)
export AWS_ENDPOINT_URL      ?= http://localhost:$(or $(AWS_PORT),4566)
export AWS_ACCESS_KEY_ID     ?= test
export AWS_SECRET_ACCESS_KEY ?= test
export AWS_REGION            ?= us-east-1
export AWS_DEFAULT_REGION    ?= $(AWS_REGION)
endif
export KAFKA_BOOTSTRAP_SERVERS ?= localhost:$(or $(KAFKA_PORT),9092)
# kafka-python's own log lines, off a person's console (src/pipeline_common/logs.py), beside the stack's logs.
export KAFKA_CLIENT_LOG ?= $(or $(STACK_STATE_DIR),.state)/logs/kafka-client.log

.PHONY: help setup run up ps logs down stop restart status \
        create-sns-topic deploy-lambda deploy-resources count-messages notifications destroy \
        geofences alerts alerts-trigger \
        produce trigger lag tracker psql demo soak test test-unit test-integration reliability bench settings-table clean \
        archiver lake-sql lake-maintain lake-gold lake-quality tracker-maintain

help: ## list the targets
	@grep -hE '^[a-zA-Z_-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-18s %s\n", $$1, $$2}'

$(VENV)/.installed: pyproject.toml
	@command -v $(PYTHON) >/dev/null || { echo "error: $(PYTHON) not found; install Python >= 3.11" >&2; exit 1; }
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	@echo "==> installing Python dependencies into $(VENV)"
	@$(PY) -m pip install -q --disable-pip-version-check --upgrade pip
	@$(PY) -m pip install -q --disable-pip-version-check -e '.[dev]'
	@touch $@

setup: $(VENV)/.installed ## install everything: virtualenv, pinned deps, Kafka broker jars (Maven), Protobuf code
	@$(PY) -m infra.stack.servers fetch
	@$(PY) -m infra.lake.spark fetch
	@$(PY) -m infra.web.map_assets fetch
	@$(PY) -m infra.web.map_assets browser
	@$(PY) -m infra.deploy.protobuf_codegen
	@$(PY) -m infra.deploy.lambda_package --fetch-wheels >/dev/null

run: setup ## start Kafka (KRaft), the AWS endpoint and PostgreSQL, wait until usable, create topics
	@$(PY) -m infra.stack.servers up --stack $(STACK)

# `make up` = `make run` + `make deploy-resources` + the session's parts (infra/session/parts.py) in the
# background; UP_BEGAN is when make read this file, so the wait can report the whole time to the map.
up: UP_BEGAN := $(shell date +%s)
up: run deploy-resources ## the whole session in the background (stack, resources, trigger, tracker, producer); waits for aircraft on the map
	@$(PY) -m infra.session.up start --since $(UP_BEGAN) $(ARGS)

ps: ## what `make up` runs: pid, CPU, memory of each part and of the stack; each consumer group's lag
	@$(PY) -m infra.session.up ps

PART ?=
logs: ## follow the logs of `make up`'s trigger, tracker, producer, or PART=notifications|alerts|kafka|... (commas for several)
	@$(PY) -m infra.session.up logs $(if $(PART),--part $(PART))

down: ## stop everything `make up` started (its parts and the stack); checks no process is left
	@$(PY) -m infra.session.up down --stack $(STACK)

stop: ## stop exactly what `make run` started
	@$(PY) -m infra.stack.servers down --stack $(STACK)

restart: stop run ## stop, then start again

status: ## broker reachable? topics? endpoint healthy? database? (prints DATABASE_URL)
	@$(PY) -m infra.stack.servers status --stack $(STACK)

create-sns-topic: setup ## create the FlightNotifications topic (idempotent)
	@$(PY) -m infra.deploy.aws_resources create-sns-topic

deploy-lambda: setup ## package and create-or-update the function; waits until active
	@$(PY) -m infra.deploy.aws_resources deploy-lambda

deploy-resources: setup ## topic + IAM role + function + demo SQS subscriber with filter policy + the lake's Iceberg table
	@$(PY) -m infra.deploy.aws_resources deploy-resources
	@$(PY) -m infra.deploy.alerts_resources deploy
	@$(PY) -m infra.lake.create

FILE ?= infra/deploy/geofences/default.geojson
geofences: setup ## validate a GeoJSON file and replace the alert geofences: make geofences FILE=my.geojson
	@$(PY) -m infra.deploy.alerts_resources geofences $(FILE)

alerts: setup ## read the demo alerts queue; print alerts (up to 100 lines/s, then a count): make alerts ARGS="--type EMERGENCY"
	@$(PY) -m infra.deploy.alerts_resources alerts $(ARGS)

ALERTS_TRIGGER_ARGS ?= --function-name flight-alerts --group-id flight-alerts --dlq-topic aviation-data-alerts-dlq --batch-size 1000
alerts-trigger: setup ## run the second event source mapping: aviation-data -> flight-alerts
	@$(PY) -m trigger $(ALERTS_TRIGGER_ARGS) $(ARGS)

count-messages: setup ## notifications published in the last $(mins) minute(s): make count-messages mins=5
	@$(PY) -m infra.demo.observe count-messages --mins $(mins)

notifications: setup ## read the demo subscriber's queue as fast as it fills; print notifications (up to 100 lines/s, then a count; ARGS=--all)
	@$(PY) -m infra.demo.observe notifications $(ARGS)

destroy: setup ## delete the functions, roles, topics, subscriber queues and the alert state table
	@$(PY) -m infra.deploy.aws_resources destroy
	@$(PY) -m infra.deploy.alerts_resources destroy

produce: setup ## run the producer: make produce SOURCE=opensky|synthetic|replay
	@$(PY) -m producer --source $(SOURCE) $(ARGS)

trigger: setup ## run the Kafka -> Lambda trigger; MAPPINGS=infra/aws/template.yaml runs every mapping declared there
	@$(PY) -m trigger $(if $(MAPPINGS),--mappings $(MAPPINGS)) $(ARGS)

lag: setup ## OffsetLag of each mapping's consumer group (MAPPINGS=... as for make trigger)
	@$(PY) -m trigger.lag $(if $(MAPPINGS),--mappings $(MAPPINGS))

tracker: setup ## run the flight tracker: consumer + REST/WebSocket API + map (TRACKER_API_PORT, default 8000)
	@$(PY) -m tracker $(ARGS)

archiver: setup ## archive aviation-data into the Iceberg table exactly once (group flight-archiver; LAKE_* settings)
	@$(PY) -m archiver $(ARGS)

SQL ?= SELECT count(*) FROM positions
lake-sql: setup ## one SQL query over the lake with DuckDB: make lake-sql SQL="SELECT count(*) FROM positions"
	@$(PY) -m infra.lake.sql "$$LAKE_SQL_TEXT" $(ARGS)
lake-sql: export LAKE_SQL_TEXT = $(SQL)

.PHONY: lake-athena
lake-athena: setup ## one SQL query through Athena (StartQueryExecution/GetQueryResults; tables published first locally): make lake-athena SQL="SELECT count(*) AS n FROM positions"
	@$(PY) -m infra.lake.athena "$$LAKE_SQL_TEXT" $(ARGS)
lake-athena: export LAKE_SQL_TEXT = $(SQL)

lake-maintain: setup ## the lake's maintenance: compaction of small files, snapshot expiry, orphan-file cleanup
	@$(PY) -m infra.lake.maintain $(ARGS)

DAY ?=
lake-gold: setup ## silver and gold tables of one UTC day from the lake: make lake-gold DAY=YYYY-MM-DD
	@test -n "$(DAY)" || { echo 'error: say which UTC day: make lake-gold DAY=YYYY-MM-DD' >&2; exit 2; }
	@$(PY) -m infra.lake.gold --day $(DAY) $(ARGS)

CHECKS ?=
lake-quality: setup ## data-quality checks of one UTC day (lake vs PostgreSQL vs Kafka, duplicates, values, freshness): make lake-quality DAY=YYYY-MM-DD [CHECKS=rows,values]
	@test -n "$(DAY)" || { echo 'error: say which UTC day: make lake-quality DAY=YYYY-MM-DD' >&2; exit 2; }
	@$(PY) -m lakehouse.quality --day $(DAY) $(if $(CHECKS),--checks $(CHECKS)) $(ARGS)

tracker-maintain: setup ## PostgreSQL retention outside the tracker: drop day partitions past TRACKER_RETENTION_DAYS, create the coming days' (ARGS=--dry-run)
	@$(PY) -m tracker.maintain $(ARGS)

psql: setup ## a psql shell on the tracker's database (DATABASE_URL, else the native server)
	@command -v psql >/dev/null || { echo "error: psql not found (Debian: apt-get install postgresql-client; macOS: brew install libpq)" >&2; exit 1; }
	@url=$$($(PY) -m infra.stack.servers database-url) && exec psql "$$url"

demo: setup ## whole pipeline for about a minute, then a reconciled summary
	@$(PY) -m infra.demo.run $(ARGS)

MINUTES ?= 30
soak: setup ## the typical session for MINUTES (default 30) on a fresh stack: docs/SOAK.md, exit 1 if it falls behind or grows
	@$(PY) -m infra.soak --minutes $(MINUTES) $(ARGS)

test: setup ## unit + integration tests (starts and stops the broker and endpoint itself)
	@$(PY) -m pytest tests $(ARGS)

test-unit: setup ## unit tests only, no servers
	@$(PY) -m pytest tests/unit $(ARGS)

test-integration: setup ## integration tests against the real broker and endpoint
	@$(PY) -m pytest tests/integration $(ARGS)

reliability: setup ## refresh docs/RELIABILITY.md from the last fault-test run
	@$(PY) -m infra.reports.reliability_report

bench: setup ## benchmarks; writes docs/BENCHMARKS.md
	@$(PY) -m infra.bench.run $(ARGS)

settings-table: setup ## regenerate docs/CONFIGURATION.md's table from the settings' declarations
	@$(PY) -m infra.reports.settings_table --write

# ------------------------------------------------------------------ Airflow (issue 23, docs/AIRFLOW.md)
# Airflow 3 gets a virtualenv of its own: its API server pins a FastAPI older than the tracker's. The exact
# package set is infra/airflow/requirements-lock.txt (bash infra/airflow/lock.sh makes it); the project is
# installed into it without dependencies (the lock has them), editable, so the DAGs' tasks run this tree.
# Every airflow command goes through infra/airflow/airflow.sh (home under .state/airflow, DAGs from dags/).
.PHONY: setup-airflow airflow dags-test
AIRFLOW_VENV := .venv-airflow

$(AIRFLOW_VENV)/.installed: infra/airflow/requirements-lock.txt pyproject.toml
	@command -v $(PYTHON) >/dev/null || { echo "error: $(PYTHON) not found; install Python >= 3.11" >&2; exit 1; }
	@echo "==> installing Airflow into $(AIRFLOW_VENV) (infra/airflow/requirements-lock.txt)"
	@test -x $(AIRFLOW_VENV)/bin/python || $(PYTHON) -m venv $(AIRFLOW_VENV)
	@$(AIRFLOW_VENV)/bin/python -m pip install -q --disable-pip-version-check --upgrade pip
	@$(PYTHON) infra/airflow/project_requirements.py > $(AIRFLOW_VENV)/project-requirements.txt
	@$(AIRFLOW_VENV)/bin/python -m pip install -q --disable-pip-version-check -r infra/airflow/requirements-lock.txt \
	    -r $(AIRFLOW_VENV)/project-requirements.txt || { echo "error: pyproject.toml's pins and the lock disagree? \
	    bash infra/airflow/lock.sh renews the lock" >&2; exit 1; }
	@# setuptools' editable build warns at length about package data; its output is kept for a failure only.
	@$(AIRFLOW_VENV)/bin/python -m pip install -q --disable-pip-version-check --no-deps -e . \
	    >$(AIRFLOW_VENV)/project-install.log 2>&1 || { cat $(AIRFLOW_VENV)/project-install.log >&2; exit 1; }
	@# The one mismatch expected: the project's fastapi pin (infra/airflow/project_requirements.py says why).
	@problems=$$($(AIRFLOW_VENV)/bin/python -m pip check | grep -v -E '^flightpipe .* fastapi==' | grep -v '^No broken'); \
	test -z "$$problems" || { echo "$$problems" >&2; exit 1; }
	@touch $@

setup-airflow: ## Airflow 3 in its own virtualenv .venv-airflow with the project (prints its size and the time taken)
	@start=$$($(PYTHON) -c 'import time; print(time.time())'); \
	$(MAKE) --no-print-directory -s $(AIRFLOW_VENV)/.installed || exit 1; \
	echo "==> $(AIRFLOW_VENV): apache-airflow $$($(AIRFLOW_VENV)/bin/python -c 'from importlib.metadata import version; print(version("apache-airflow"))'), $$(du -sh $(AIRFLOW_VENV) | cut -f1), ready in $$($(PYTHON) -c "import time; print(f'{time.time() - $$start:.1f}')") s"

airflow: setup-airflow ## Airflow standalone on 127.0.0.1 with the DAGs of dags/ (prints the UI and login); ARGS="backfill create ..." runs another airflow command
	@bash infra/airflow/airflow.sh $(or $(ARGS),standalone)

dags-test: setup-airflow ## run each DAG once with `airflow dags test` against the running stack (DAY=YYYY-MM-DD, default today UTC); exit 1 when a task fails
	@bash infra/airflow/dags_test.sh $(DAY)

clean: stop ## remove runtime state (broker data, database, logs); keeps the jar cache
	@$(PY) -c "from infra.stack import postgres; postgres.remove_data()"
	rm -rf .state
