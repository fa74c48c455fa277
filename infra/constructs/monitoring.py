"""Alarms for what needs a person, and the SNS topic every one of them notifies.

- jobs in the dead-letter queue (a visitor got no answer);
- a function's unhandled errors, or its throttles (the account's or generate's reserved concurrency
  is exhausted: answers wait or are dropped);
- the oldest generation job waiting longer than a visitor would (generate is not keeping up);
- API Gateway failing requests itself: the WebSocket API's ``ExecutionError`` (the integration could
  not be called: Lambda throttled, timed out or crashed) and the admin HTTP API's ``5xx``. The
  WebSocket ``IntegrationError`` metric is not alarmed on: it also counts the connect function's
  deliberate 4xx rejections of a wrong widget key, which any visitor can cause. The HTTP API's ``5xx``
  covers its two kinds of routes: the admin routes and the platforms' callbacks (``/channels/…``; the
  channels function answers 5xx only when it did not take a message, which the platform then retries).

Every alarm notifies the topic when it fires and when it recovers. Subscribe to it with
``alarm_email`` (context) or any SNS subscriber (a chat webhook through a Lambda, a pager).

Each alarm bills $0.10 a month, idle or not, so ``-c alarms=...`` chooses how many (DeployConfig.alarm_level):
``full`` (prod's default) creates every one above; ``essential`` (every other env's default) only the two
that mean a visitor got no answer whatever the cause: jobs in the dead-letter queue (generate failed,
timed out or was throttled past its retries) and the WebSocket API's ``ExecutionError`` (connect or message
could not run); ``none`` keeps only the topic.

The channels function (WeChat, WeCom, app webhooks) has its Errors and Throttles alarms in ``full``, like
every function. ``essential`` adds none for it: one more alarm would take the default profile past its
$1 a month idle goal (docs/cost.md), and a channel customer's failed answer already shows there as a dead
letter (generate's jobs are the same for every channel); a callback the function could not take is
retried by the platform (WeChat: 3 times in 15 s). ``full`` also watches the channel code's own
``ChannelSendsFailed`` metric (shared/observability.py: an answer, agent reply or notice the platform did
not take, because it was unreachable, refused it, or the customer's reply window was closed): one such
send is shown to the agents on its conversation, but several in five minutes mean a platform outage, a
revoked secret or a changed IP allowlist that every channel customer meets. The metric's only
dimension is the service (no tenant: the tenant is in the record's properties), so stacks sharing an
account and region share it.
"""

from __future__ import annotations

import aws_cdk as cdk
from aws_cdk import Duration
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_cloudwatch_actions as actions
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_sns as sns
from aws_cdk import aws_sns_subscriptions as subscriptions
from constructs import Construct

from infra.config import DeployConfig
from infra.constants import WEBSOCKET_STAGE, Environment, FunctionName, resource_name
from infra.constructs.admin_api import AdminApi
from infra.constructs.queue import GenerateQueue
from infra.constructs.websocket_api import WebSocketApi
from infra.nag import acknowledge
from shared.observability import CHANNEL_SENDS_FAILED, METRICS_NAMESPACE, SERVICE

# A job's first frame normally leaves within a second or two; one waiting a minute means generate
# is throttled, failing or too few, and visitors are staring at a typing indicator.
OLDEST_JOB_AGE_SECONDS = 60
_PERIOD = Duration.minutes(5)
# Failed channel sends in one period that page someone: a single closed window is an ordinary outcome
# (the customer stopped writing two days ago) and is on the conversation for its agent; this many
# across customers in five minutes is the platform refusing kefu.
CHANNEL_SENDS_FAILED_THRESHOLD = 5
# The alarms ``alarms=essential`` keeps (construct ids).
ESSENTIAL_ALARMS = ("DeadLetters", "WebSocketExecutionErrors")


class Monitoring(Construct):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        config: DeployConfig,
        functions: dict[FunctionName, lambda_.Function],
        queue: GenerateQueue,
        websocket: WebSocketApi,
        admin_api: AdminApi,
    ) -> None:
        super().__init__(scope, construct_id)
        self._env: Environment = config.env
        self._level = config.alarm_level
        self.topic = sns.Topic(
            self,
            "AlarmTopic",
            topic_name=resource_name(config.env, "alarms"),
            display_name=f"kefu {config.env} alarms",
            enforce_ssl=True,
        )
        # The topic's policy (TLS only) replaces SNS's default one, so CloudWatch's alarms of this stack
        # are allowed to publish explicitly.
        stack = cdk.Stack.of(self)
        self.topic.add_to_resource_policy(
            iam.PolicyStatement(
                sid="CloudWatchAlarmsPublish",
                principals=[iam.ServicePrincipal("cloudwatch.amazonaws.com")],
                actions=["sns:Publish"],
                resources=[self.topic.topic_arn],
                conditions={
                    "StringEquals": {"aws:SourceAccount": stack.account},
                    "ArnLike": {
                        "aws:SourceArn": stack.format_arn(
                            service="cloudwatch",
                            resource="alarm",
                            resource_name=resource_name(config.env, "*"),
                            arn_format=cdk.ArnFormat.COLON_RESOURCE_NAME,
                        )
                    },
                },
            )
        )
        if config.alarm_email:
            self.topic.add_subscription(subscriptions.EmailSubscription(config.alarm_email))
        acknowledge(
            self.topic,
            "AwsSolutions-SNS2",
            "Alarm notifications carry alarm names and metric states, no visitor or tenant data. CloudWatch "
            "cannot publish to a topic encrypted with the AWS-managed SNS key, so encryption would need a "
            "customer-managed KMS key ($1 a month, the stack's whole idle budget) for nothing confidential.",
        )
        self.alarms: list[cloudwatch.Alarm] = []
        self._alarm(
            "DeadLetters",
            "generate-dead-letters",
            "Generation jobs failed 3 times: visitors got no answer. Inspect the DLQ.",
            queue.dead_letters.metric_approximate_number_of_messages_visible(period=_PERIOD),
        )
        self._alarm(
            "OldestJob",
            "generate-oldest-job",
            f"A generation job has waited over {OLDEST_JOB_AGE_SECONDS} s: generate is throttled, failing or "
            "short of concurrency (see its Throttles alarm and generate_reserved_concurrency).",
            queue.queue.metric_approximate_age_of_oldest_message(period=Duration.minutes(1), statistic="Maximum"),
            threshold=OLDEST_JOB_AGE_SECONDS,
            evaluation_periods=2,
        )
        for name, function in functions.items():
            title = name.capitalize()
            self._alarm(
                f"{title}Errors",
                f"{name}-errors",
                f"The {name} function raised unhandled errors.",
                function.metric_errors(period=_PERIOD, statistic="Sum"),
            )
            self._alarm(
                f"{title}Throttles",
                f"{name}-throttles",
                f"The {name} function was throttled: the account's concurrency (or the function's reserved "
                "concurrency) is used up. Raise the quota (docs/deploy.md) or the reservation.",
                function.metric_throttles(period=_PERIOD, statistic="Sum"),
            )
        self._alarm(
            "WebSocketExecutionErrors",
            "chat-execution-errors",
            "The WebSocket API could not call its integration (connect/message throttled, timed out or "
            "crashed): visitors' connects or messages failed with an internal error.",
            cloudwatch.Metric(
                namespace="AWS/ApiGateway",
                metric_name="ExecutionError",
                dimensions_map={"ApiId": websocket.api.api_id, "Stage": WEBSOCKET_STAGE},
                period=_PERIOD,
                statistic="Sum",
            ),
        )
        self._alarm(
            "Admin5xx",
            "admin-5xx",
            "The HTTP API answered 5xx: an admin route or a platform's callback (/channels/...) failed, "
            "timed out or was throttled in its function.",
            admin_api.api.metric_server_error(period=_PERIOD, statistic="Sum"),
        )

        self._alarm(
            "ChannelSendsFailed",
            "channel-sends-failed",
            f"{CHANNEL_SENDS_FAILED_THRESHOLD} or more answers, agent replies or notices were not delivered through "
            "WeChat, WeCom or an app webhook in 5 minutes (platform unreachable or refusing, secret or IP "
            "allowlist changed, reply windows closed). Logs Insights on the EMF records (tenant, channelId, "
            "status) says which.",
            cloudwatch.Metric(
                namespace=METRICS_NAMESPACE,
                metric_name=CHANNEL_SENDS_FAILED,
                dimensions_map={"service": SERVICE},
                period=_PERIOD,
                statistic="Sum",
            ),
            threshold=CHANNEL_SENDS_FAILED_THRESHOLD,
        )

    def _alarm(
        self,
        construct_id: str,
        name: str,
        description: str,
        metric: cloudwatch.IMetric,
        *,
        threshold: float = 1,
        evaluation_periods: int = 1,
    ) -> cloudwatch.Alarm | None:
        if self._level == "none" or (self._level == "essential" and construct_id not in ESSENTIAL_ALARMS):
            return None
        alarm = cloudwatch.Alarm(
            self,
            construct_id,
            alarm_name=resource_name(self._env, name),
            alarm_description=description,
            metric=metric,
            threshold=threshold,
            evaluation_periods=evaluation_periods,
            comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
            treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
        )
        action = actions.SnsAction(self.topic)
        alarm.add_alarm_action(action)
        alarm.add_ok_action(action)
        self.alarms.append(alarm)
        return alarm
