"""The project's tooling, one folder per job; the Makefile runs each as `python -m infra.<job>.<module>`.

stack/     the local servers: `make run`, `make stop`, `make status`, `make psql` (Kafka, MiniStack, PostgreSQL)
deploy/    the functions' zip and their resources: `make deploy-resources`, `make geofences`, `make destroy`
aws/       the CloudFormation template and script for real AWS (also the trigger's MAPPINGS file)
session/   the typical session in the background: `make up`, `make ps`, `make logs`, `make down`
demo/      `make demo` and the recounts it is checked against; `make notifications`, `make count-messages`
soak/      `make soak`            bench/    `make bench`          lake/     the lake's tools
reports/   writers of generated documents (the settings table, the reliability table)
web/       the map page's pinned browser libraries and the browser for its tests (`make setup`)
progress.py  the one way every job prints its progress
"""
