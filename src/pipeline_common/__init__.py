"""Code shared by the producer and the trigger: environment settings, Kafka client
security options and structured logging. The Lambda function does not import this
package: it is zipped on its own and must stay self-contained."""
