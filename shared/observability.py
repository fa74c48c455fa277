"""Logger, tracer and metrics, created once and imported by every function."""

from aws_lambda_powertools import Logger, Metrics, Tracer

SERVICE = "kefu"

logger = Logger(service=SERVICE)
tracer = Tracer(service=SERVICE)
metrics = Metrics(namespace="Kefu", service=SERVICE)
