"""Code shared by the components: settings declared once (settings.py, shared_settings.py),
structured logging (logs.py), Kafka client options (kafka_client.py), boto3 clients and queue
subscriptions (aws_clients.py). The modules that use only the standard library are also shipped
inside the Lambda zip (infra/deploy/lambda_package.py)."""
