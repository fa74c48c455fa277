"""The kefu CDK app: one stack per environment (``-c env=dev|prod``)."""
