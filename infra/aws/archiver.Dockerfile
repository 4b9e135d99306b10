# The archiver's image for the stack's ArchiverService (infra/aws/template.yaml, DeployArchiver=true): this
# checkout installed with the project's exact pins, running `python -m archiver` (SIGTERM commits, then exits).
# Build from the repository root and push to the ECR repository ArchiverImageRepository (docs/DEPLOY_AWS.md):
#   docker build -f infra/aws/archiver.Dockerfile -t flightpipe-archiver:$(git rev-parse --short HEAD) .
# 3.11: the Python the project's virtualenv and tests run on.
FROM python:3.11-slim
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /build
COPY pyproject.toml README.md ./
COPY src ./src
COPY infra ./infra
RUN pip install . && rm -rf /build
# No root, no writable home: the archiver keeps nothing on disk (the table holds its state).
USER 65534:65534
WORKDIR /tmp
ENTRYPOINT ["python", "-m", "archiver"]
