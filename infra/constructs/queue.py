"""The generation hand-off: an SQS FIFO queue (one message group per conversation) and its DLQ."""

from __future__ import annotations

from aws_cdk import Duration
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_lambda_event_sources as event_sources
from aws_cdk import aws_sqs as sqs
from constructs import Construct

from infra.config import DeployConfig
from infra.constants import GENERATE_MAX_RECEIVES, VISIBILITY_TIMEOUT_FACTOR, resource_name


class GenerateQueue(Construct):
    """FIFO keeps one conversation's questions in order; different conversations run in parallel.

    Content-based deduplication is off: the message function sets ``MessageDeduplicationId`` from
    the stored message id, so a resent visitor message is not answered twice, while two different
    messages with the same text are both answered.
    """

    def __init__(
        self, scope: Construct, construct_id: str, *, config: DeployConfig, consumer_timeout: Duration
    ) -> None:
        super().__init__(scope, construct_id)
        self.dead_letters = sqs.Queue(
            self,
            "DeadLetters",
            queue_name=resource_name(config.env, "generate-dlq.fifo"),
            fifo=True,
            content_based_deduplication=False,
            encryption=sqs.QueueEncryption.SQS_MANAGED,
            enforce_ssl=True,
            retention_period=Duration.days(14),  # the maximum: time to look at what failed
        )
        self.queue = sqs.Queue(
            self,
            "Jobs",
            queue_name=resource_name(config.env, "generate.fifo"),
            fifo=True,
            content_based_deduplication=False,
            encryption=sqs.QueueEncryption.SQS_MANAGED,
            enforce_ssl=True,
            # 6x the consumer's timeout (AWS's advice): the event source mapping retries a throttled
            # invocation (e.g. generate at its reserved concurrency) within the visibility timeout, so a
            # shorter one would count those retries as receives and dead-letter jobs that never ran.
            # The cost: a job whose generate run crashed outright comes back only after this timeout;
            # the generate function settles every job it runs itself (answer, cut answer or
            # model_unavailable) well inside its own timeout, so that is the crash case only.
            visibility_timeout=Duration.seconds(int(consumer_timeout.to_seconds() * VISIBILITY_TIMEOUT_FACTOR)),
            retention_period=Duration.hours(1),  # an answer older than that is no longer wanted
            dead_letter_queue=sqs.DeadLetterQueue(queue=self.dead_letters, max_receive_count=GENERATE_MAX_RECEIVES),
        )

    def feed(self, consumer: lambda_.Function) -> None:
        """One job per invocation; a failed job is reported alone, so the others are not retried."""
        consumer.add_event_source(
            event_sources.SqsEventSource(self.queue, batch_size=1, report_batch_item_failures=True)
        )
