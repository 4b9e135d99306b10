#!/usr/bin/env bash
# Deploys flight-processor to real AWS behind a Kafka event source mapping (infra/aws/template.yaml):
# builds the reproducible zip, uploads it to s3://$ARTIFACT_BUCKET/<prefix>/<sha256>.zip, runs
# `aws cloudformation deploy` with parameters taken from the environment, prints the outputs.
#
# Required: ARTIFACT_BUCKET, and either MSK_CLUSTER_ARN or KAFKA_BOOTSTRAP_SERVERS (self-managed).
# Optional (unset = template default / previous value): STACK_NAME [flight-pipeline], ARTIFACT_PREFIX
# [flight-processor], FUNCTION_NAME, SNS_TOPIC_NAME, METRICS_NAMESPACE, LAMBDA_TIMEOUT, LAMBDA_MEMORY,
# KAFKA_TOPIC, KAFKA_SASL_SECRET_ARN, KAFKA_SASL_MECHANISM, VPC_SUBNET_IDS (comma, up to 3),
# VPC_SECURITY_GROUP_ID, TRIGGER_GROUP_ID, TRIGGER_STARTING_POSITION,
# TRIGGER_STARTING_POSITION_TIMESTAMP, TRIGGER_BATCH_SIZE, TRIGGER_MAXIMUM_BATCHING_WINDOW_S,
# TRIGGER_MAXIMUM_RETRY_ATTEMPTS, TRIGGER_MAXIMUM_RECORD_AGE_S, TRIGGER_BISECT_BATCH_ON_FUNCTION_ERROR,
# TRIGGER_REPORT_BATCH_ITEM_FAILURES, ESM_POLLER_MODE, ESM_MINIMUM_POLLERS, ESM_MAXIMUM_POLLERS,
# ON_FAILURE_DESTINATION (kafka://<topic> | SQS/SNS/S3 ARN | none) or else KAFKA_DLQ_TOPIC.
# flight-alerts (same zip, its own mapping): ALERTS_FUNCTION_NAME, ALERTS_TOPIC_NAME, ALERTS_FIFO,
# ALERTS_TABLE, GEOFENCES_KEY, ALERT_WATCHLIST, ALERTS_GROUP_ID, ALERTS_BATCH_SIZE,
# ALERTS_ON_FAILURE_DESTINATION (kafka://<topic> or an ARN of the same kind as ON_FAILURE_DESTINATION).
# LAMBDA_ZIP [build/lambda/flight-processor.zip] is where the zip is written; PYTHON [.venv/bin/python].
# The lake (docs/LAKE.md "On AWS"; all off unless set): LAKE_CATALOG (s3tables | glue | none), LAKE_TABLE_BUCKET,
# LAKE_NAMESPACE, LAKE_TABLE, VPC_ID and PRIVATE_SUBNET_IDS (comma, 1 or 2; MWAA needs 2). The archiver on ECS:
# ARCHIVER_IMAGE_TAG (an image already pushed to ARCHIVER_IMAGE_REPOSITORY [flightpipe-archiver]; setting it
# deploys the service), ARCHIVER_BOOTSTRAP_SERVERS, LAKE_GROUP_ID. MWAA: AIRFLOW (bucket | environment |
# none), AIRFLOW_ENVIRONMENT_NAME, AIRFLOW_VERSION, TRACKER_DATABASE_SECRET_ARN, AIRFLOW_REQUIREMENTS
# [infra/airflow/requirements-mwaa.txt], AIRFLOW_STARTUP_SCRIPT (a file; none by default), AIRFLOW_DAGS [dags],
# AIRFLOW_BUILD_DIR [build/mwaa]. With AIRFLOW=environment the script creates the bucket first (a deploy with
# Airflow=BUCKET), uploads dags/, the requirements, plugins.zip (the project's wheel) and the startup script,
# then deploys with their object versions.
# Refuses to run when AWS_ENDPOINT_URL points at this machine (the local stack) unless FORCE=1.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$ROOT"

die() { echo "error: $*" >&2; exit 2; }
say() { echo "==> $*" >&2; }

LOCAL_HOST_RE='(^|[/@,])(localhost|127\.[0-9.]+|0\.0\.0\.0|\[::1\])([:/,]|$)'
is_local() {  # does this URL or host:port list name this machine?
  [[ "$1" =~ $LOCAL_HOST_RE ]]
}
upper() { printf '%s' "$1" | tr '[:lower:]' '[:upper:]'; }  # bash 3.2 (macOS) has no ${v^^}

# --- guard rails -----------------------------------------------------------------------------
# The Makefile exports AWS_ENDPOINT_URL=http://localhost:4566 for the local stack; CloudFormation
# there is not the target of this script.
for var in AWS_ENDPOINT_URL AWS_ENDPOINT_URL_CLOUDFORMATION AWS_ENDPOINT_URL_S3; do
  value="${!var:-}"
  if [[ -n "$value" ]] && is_local "$value" && [[ "${FORCE:-0}" != "1" ]]; then
    die "$var=$value is the local stack; this script deploys to real AWS. Unset it (or set FORCE=1)."
  fi
done
command -v aws >/dev/null || die "the AWS CLI ('aws') is not installed"
[[ -n "${ARTIFACT_BUCKET:-}" ]] || die "ARTIFACT_BUCKET is required (an S3 bucket in the target region)"

STACK_NAME="${STACK_NAME:-flight-pipeline}"
ARTIFACT_PREFIX="${ARTIFACT_PREFIX:-flight-processor}"
TEMPLATE="infra/aws/template.yaml"
ZIP="${LAMBDA_ZIP:-build/lambda/flight-processor.zip}"
if [[ -x .venv/bin/python ]]; then PYTHON="${PYTHON:-.venv/bin/python}"; else PYTHON="${PYTHON:-python3}"; fi

params=()
add() { params+=("$1=$2"); }                      # ParameterKey=value
add_env() { [[ -z "${!2:-}" ]] || add "$1" "${!2}"; }  # only when the variable is set and not empty

whole() {  # whole number check for values AWS takes as integers
  [[ "$2" =~ ^-?[0-9]+$ ]] || die "$1=$2 must be a whole number"
}
boolean() {  # the same spellings as pipeline_common.settings.env_bool, normalised for the template
  case "$(upper "$2")" in
    1|TRUE|YES|ON) echo true ;;
    0|FALSE|NO|OFF) echo false ;;
    *) die "$1=$2 is not a boolean (use true/false)" ;;
  esac
}

# --- cluster and authentication --------------------------------------------------------------
if [[ -n "${MSK_CLUSTER_ARN:-}" ]]; then
  add MskClusterArn "$MSK_CLUSTER_ARN"
  add BootstrapServers ""  # the MSK path; an exported KAFKA_BOOTSTRAP_SERVERS is ignored
elif [[ -n "${KAFKA_BOOTSTRAP_SERVERS:-}" ]]; then
  is_local "$KAFKA_BOOTSTRAP_SERVERS" \
    && die "KAFKA_BOOTSTRAP_SERVERS=$KAFKA_BOOTSTRAP_SERVERS is this machine; Lambda cannot reach it"
  add MskClusterArn ""
  add BootstrapServers "$KAFKA_BOOTSTRAP_SERVERS"
else
  die "set MSK_CLUSTER_ARN (Amazon MSK) or KAFKA_BOOTSTRAP_SERVERS (self-managed Kafka)"
fi

mechanism="${KAFKA_SASL_MECHANISM:-}"
case "$(upper "$mechanism")" in
  "") ;;
  SCRAM-SHA-512) add SaslAuthType SASL_SCRAM_512_AUTH ;;
  SCRAM-SHA-256) add SaslAuthType SASL_SCRAM_256_AUTH ;;
  PLAIN) add SaslAuthType BASIC_AUTH ;;
  AWS_MSK_IAM) [[ -z "${KAFKA_SASL_SECRET_ARN:-}" ]] \
                 || die "KAFKA_SASL_MECHANISM=AWS_MSK_IAM takes no KAFKA_SASL_SECRET_ARN" ;;
  *) die "KAFKA_SASL_MECHANISM=$mechanism is not SCRAM-SHA-512, SCRAM-SHA-256, PLAIN or AWS_MSK_IAM" ;;
esac
add SaslSecretArn "${KAFKA_SASL_SECRET_ARN:-}"

subnets=("" "" "")
if [[ -n "${VPC_SUBNET_IDS:-}" ]]; then
  IFS=, read -r -a given <<<"$VPC_SUBNET_IDS"
  (( ${#given[@]} <= 3 )) || die "VPC_SUBNET_IDS lists ${#given[@]} subnets; the template takes up to 3"
  for i in "${!given[@]}"; do subnets[$i]="${given[$i]// /}"; done
fi
add VpcSubnetId1 "${subnets[0]}"
add VpcSubnetId2 "${subnets[1]}"
add VpcSubnetId3 "${subnets[2]}"
add VpcSecurityGroupId "${VPC_SECURITY_GROUP_ID:-}"

# --- function --------------------------------------------------------------------------------
add_env FunctionName FUNCTION_NAME
add_env TopicName SNS_TOPIC_NAME
add_env MetricsNamespace METRICS_NAMESPACE
add_env FunctionTimeout LAMBDA_TIMEOUT
add_env FunctionMemory LAMBDA_MEMORY

# --- the mapping: the local trigger's TRIGGER_* settings, under AWS's names --------------------
add_env KafkaTopic KAFKA_TOPIC
add_env ConsumerGroupId TRIGGER_GROUP_ID
add_env StartingPosition TRIGGER_STARTING_POSITION
if [[ -n "${TRIGGER_STARTING_POSITION_TIMESTAMP:-}" ]]; then
  add StartingPositionTimestamp "$TRIGGER_STARTING_POSITION_TIMESTAMP"
fi
for pair in BatchSize:TRIGGER_BATCH_SIZE MaximumRetryAttempts:TRIGGER_MAXIMUM_RETRY_ATTEMPTS \
            MaximumRecordAgeInSeconds:TRIGGER_MAXIMUM_RECORD_AGE_S \
            MinimumPollers:ESM_MINIMUM_POLLERS MaximumPollers:ESM_MAXIMUM_POLLERS; do
  param="${pair%%:*}" var="${pair#*:}"
  if [[ -n "${!var:-}" ]]; then whole "$var" "${!var}"; add "$param" "${!var}"; fi
done
if [[ -n "${TRIGGER_MAXIMUM_BATCHING_WINDOW_S:-}" ]]; then
  window="$TRIGGER_MAXIMUM_BATCHING_WINDOW_S"
  # AWS takes whole seconds; its Kafka default (500 ms, the local trigger's default too) is only
  # had by leaving the property out, which the template does for -1.
  if [[ "$window" == "0.5" ]]; then window=-1; fi
  whole TRIGGER_MAXIMUM_BATCHING_WINDOW_S "$window"
  add MaximumBatchingWindowInSeconds "$window"
fi
# An assignment carries its command substitution's status, so a bad value stops the script here.
if [[ -n "${TRIGGER_BISECT_BATCH_ON_FUNCTION_ERROR:-}" ]]; then
  flag="$(boolean TRIGGER_BISECT_BATCH_ON_FUNCTION_ERROR "$TRIGGER_BISECT_BATCH_ON_FUNCTION_ERROR")"
  add BisectBatchOnFunctionError "$flag"
fi
if [[ -n "${TRIGGER_REPORT_BATCH_ITEM_FAILURES:-}" ]]; then
  flag="$(boolean TRIGGER_REPORT_BATCH_ITEM_FAILURES "$TRIGGER_REPORT_BATCH_ITEM_FAILURES")"
  add ReportBatchItemFailures "$flag"
fi
add_env EventPollerMode ESM_POLLER_MODE

destination="${ON_FAILURE_DESTINATION:-}"
if [[ -z "$destination" && -n "${KAFKA_DLQ_TOPIC:-}" ]]; then destination="kafka://$KAFKA_DLQ_TOPIC"; fi
case "$destination" in
  "") ;;
  none|off|-|kafka://none|kafka://off|kafka://-) add OnFailureDestinationType NONE; add OnFailureDestination "" ;;
  kafka://?*) add OnFailureDestinationType KAFKA; add OnFailureDestination "${destination#kafka://}" ;;
  arn:*:sqs:*) add OnFailureDestinationType SQS; add OnFailureDestination "$destination" ;;
  arn:*:sns:*) add OnFailureDestinationType SNS; add OnFailureDestination "$destination" ;;
  arn:*:s3:::*) add OnFailureDestinationType S3; add OnFailureDestination "$destination" ;;
  *) die "ON_FAILURE_DESTINATION=$destination is not kafka://<topic>, an SQS/SNS/S3 ARN, or none" ;;
esac

# --- flight-alerts: its own mapping on the same topic ----------------------------------------
add_env AlertsFunctionName ALERTS_FUNCTION_NAME
add_env AlertsTopicName ALERTS_TOPIC_NAME
add_env AlertStateTableName ALERTS_TABLE
add_env GeofencesKey GEOFENCES_KEY
add_env AlertWatchlist ALERT_WATCHLIST
add_env AlertsConsumerGroupId ALERTS_GROUP_ID
if [[ -n "${ALERTS_FIFO:-}" ]]; then
  flag="$(boolean ALERTS_FIFO "$ALERTS_FIFO")"
  add AlertsFifo "$flag"
fi
if [[ -n "${ALERTS_BATCH_SIZE:-}" ]]; then whole ALERTS_BATCH_SIZE "$ALERTS_BATCH_SIZE"; add AlertsBatchSize "$ALERTS_BATCH_SIZE"; fi
# Of the same kind as the main mapping's destination: kafka://<topic>, or an SQS/SNS/S3 ARN.
case "${ALERTS_ON_FAILURE_DESTINATION:-}" in
  "") ;;
  kafka://?*) add AlertsOnFailureDestination "${ALERTS_ON_FAILURE_DESTINATION#kafka://}" ;;
  *) add AlertsOnFailureDestination "$ALERTS_ON_FAILURE_DESTINATION" ;;
esac

# --- the lake, the archiver, MWAA ------------------------------------------------------------
lake_catalog="$(upper "${LAKE_CATALOG:-}")"
case "$lake_catalog" in
  "") ;;
  S3TABLES|S3_TABLES) add LakeCatalog S3TABLES ;;
  GLUE|NONE) add LakeCatalog "$lake_catalog" ;;
  *) die "LAKE_CATALOG=$LAKE_CATALOG is not s3tables, glue or none" ;;
esac
add_env TableBucketName LAKE_TABLE_BUCKET
add_env LakeNamespace LAKE_NAMESPACE
add_env LakeTable LAKE_TABLE
add_env VpcId VPC_ID
if [[ -n "${PRIVATE_SUBNET_IDS:-}" ]]; then
  IFS=, read -r -a private <<<"$PRIVATE_SUBNET_IDS"
  (( ${#private[@]} <= 2 )) || die "PRIVATE_SUBNET_IDS lists ${#private[@]} subnets; the template takes 2"
  first="${private[0]:-}" second="${private[1]:-}"
  add PrivateSubnetId1 "${first// /}"
  add PrivateSubnetId2 "${second// /}"
fi
if [[ -n "${ARCHIVER_IMAGE_TAG:-}" ]]; then
  add DeployArchiver true
  add ArchiverImageTag "$ARCHIVER_IMAGE_TAG"
fi
add_env ArchiverImageRepository ARCHIVER_IMAGE_REPOSITORY
add_env ArchiverBootstrapServers ARCHIVER_BOOTSTRAP_SERVERS
add_env ArchiverGroupId LAKE_GROUP_ID
airflow="$(upper "${AIRFLOW:-}")"
case "$airflow" in
  ""|NONE|BUCKET|ENVIRONMENT) ;;
  *) die "AIRFLOW=$AIRFLOW is not bucket, environment or none" ;;
esac
add_env AirflowEnvironmentName AIRFLOW_ENVIRONMENT_NAME
add_env AirflowVersion AIRFLOW_VERSION
add_env TrackerDatabaseSecretArn TRACKER_DATABASE_SECRET_ARN

# --- who and where ---------------------------------------------------------------------------
account="$(aws sts get-caller-identity --query Account --output text)" \
  || die "no usable AWS credentials (aws sts get-caller-identity failed)"
region="$(aws configure get region || true)"
say "account $account, region ${AWS_REGION:-${AWS_DEFAULT_REGION:-${region:-<unset>}}}, stack $STACK_NAME"

# --- build and upload the code ---------------------------------------------------------------
say "packaging src/lambda"
digest="$("$PYTHON" -m infra.deploy.lambda_package --out "$ZIP" | awk '$1 == "sha256" {print $2}')"
[[ "$digest" =~ ^[0-9a-f]{64}$ ]] || die "could not read the zip's sha256 from infra/deploy/lambda_package.py"
key="$ARTIFACT_PREFIX/$digest.zip"
# The key is the content's digest, so an unchanged build maps to the same object and CloudFormation
# leaves the function alone; a changed build gets a new key, which is what makes it update the code.
say "uploading $ZIP to s3://$ARTIFACT_BUCKET/$key"
aws s3 cp --only-show-errors "$ZIP" "s3://$ARTIFACT_BUCKET/$key"
add CodeS3Bucket "$ARTIFACT_BUCKET"
add CodeS3Key "$key"

# --- deploy ----------------------------------------------------------------------------------
deploy() {  # deploy [ParameterKey=value ...]: the collected parameters, the given ones last (they win)
  say "deploying stack $STACK_NAME"
  aws cloudformation deploy \
    --template-file "$TEMPLATE" \
    --stack-name "$STACK_NAME" \
    --capabilities CAPABILITY_NAMED_IAM \
    --no-fail-on-empty-changeset \
    --parameter-overrides "${params[@]}" "$@"
}

put_version() {  # put_version <file> <key>: upload to the Airflow bucket, print the new object version
  local version
  version="$(aws s3api put-object --bucket "$airflow_bucket" --key "$2" --body "$1" --query VersionId --output text)" \
    || die "could not upload $1 to s3://$airflow_bucket/$2"
  [[ -n "$version" && "$version" != "None" && "$version" != "null" ]] \
    || die "s3://$airflow_bucket/$2 has no version id (MWAA needs a versioned bucket)"
  echo "$version"
}

if [[ "$airflow" == "ENVIRONMENT" ]]; then
  # MWAA will not start without the files it is told to load, and they can only be uploaded once the stack's
  # bucket exists: make the bucket first, then upload, then create the environment with their versions.
  aws_region="${AWS_REGION:-${AWS_DEFAULT_REGION:-${region:-}}}"
  [[ -n "$aws_region" ]] || die "AIRFLOW=environment needs AWS_REGION (the Airflow bucket is named after it)"
  airflow_bucket="airflow-${AIRFLOW_ENVIRONMENT_NAME:-flightpipe}-$account-$aws_region"
  if ! aws s3api head-bucket --bucket "$airflow_bucket" >/dev/null 2>&1; then
    deploy Airflow=BUCKET
  fi
  dags="${AIRFLOW_DAGS:-dags}"
  [[ -d "$dags" ]] || die "$dags/ is missing: MWAA loads its DAGs from there (AIRFLOW_DAGS)"
  say "uploading $dags/ to s3://$airflow_bucket/dags/"
  aws s3 sync --only-show-errors --delete --exclude "*__pycache__*" "$dags/" "s3://$airflow_bucket/dags/"
  requirements="${AIRFLOW_REQUIREMENTS:-infra/airflow/requirements-mwaa.txt}"
  [[ -f "$requirements" ]] || die "$requirements is missing (AIRFLOW_REQUIREMENTS)"
  # An assignment carries its command substitution's status: a failed upload stops the script here.
  version="$(put_version "$requirements" requirements.txt)"
  add AirflowRequirementsVersion "$version"
  # The project's own code reaches the workers as a wheel inside plugins.zip; the requirements install it
  # from there (--find-links /usr/local/airflow/plugins), as MWAA does for packages it cannot download.
  # --no-build-isolation: built with the virtualenv's setuptools, so no download is needed.
  build="${AIRFLOW_BUILD_DIR:-build/mwaa}"
  say "building the project's wheel into $build/plugins.zip"
  rm -rf "$build" && mkdir -p "$build/plugins"
  "$PYTHON" -m pip wheel --quiet --no-deps --no-build-isolation --wheel-dir "$build/plugins" . >&2 \
    || die "pip wheel of the project failed"
  "$PYTHON" -m zipfile -c "$build/plugins.zip" "$build"/plugins/*.whl  # each wheel at the zip's root
  version="$(put_version "$build/plugins.zip" plugins.zip)"
  add AirflowPluginsVersion "$version"
  if [[ -n "${AIRFLOW_STARTUP_SCRIPT:-}" ]]; then
    [[ -f "$AIRFLOW_STARTUP_SCRIPT" ]] || die "AIRFLOW_STARTUP_SCRIPT=$AIRFLOW_STARTUP_SCRIPT is not a file"
    version="$(put_version "$AIRFLOW_STARTUP_SCRIPT" startup.sh)"
    add AirflowStartupScriptVersion "$version"
  fi
fi
[[ -z "$airflow" ]] || add Airflow "$airflow"
deploy

aws cloudformation describe-stacks --stack-name "$STACK_NAME" \
  --query 'Stacks[0].Outputs[].[OutputKey,OutputValue]' --output table
