"""Deploying to the AWS endpoint: the functions' zip, their resources (topics, queues, table, bucket, roles)
and the alerts' geofences."""
