"""Alarms for what needs a person: jobs in the dead-letter queue and failing functions.

No notification target is wired (an SNS topic or a chat webhook is an account decision): the alarms
show in the CloudWatch console; add actions with ``alarm.add_alarm_action(...)``.
"""

from __future__ import annotations

from aws_cdk import Duration
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_sqs as sqs
from constructs import Construct

from infra.config import DeployConfig
from infra.constants import FunctionName, resource_name


class Monitoring(Construct):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        config: DeployConfig,
        functions: dict[FunctionName, lambda_.Function],
        dead_letters: sqs.IQueue,
    ) -> None:
        super().__init__(scope, construct_id)
        self.alarms: list[cloudwatch.Alarm] = [
            cloudwatch.Alarm(
                self,
                "DeadLetters",
                alarm_name=resource_name(config.env, "generate-dead-letters"),
                alarm_description="Generation jobs failed 3 times: visitors got no answer. Inspect the DLQ.",
                metric=dead_letters.metric_approximate_number_of_messages_visible(period=Duration.minutes(5)),
                threshold=1,
                evaluation_periods=1,
                comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
                treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
            )
        ]
        for name, function in functions.items():
            self.alarms.append(
                cloudwatch.Alarm(
                    self,
                    f"{name.capitalize()}Errors",
                    alarm_name=resource_name(config.env, f"{name}-errors"),
                    alarm_description=f"The {name} function raised unhandled errors.",
                    metric=function.metric_errors(period=Duration.minutes(5), statistic="Sum"),
                    threshold=1,
                    evaluation_periods=1,
                    comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
                    treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
                )
            )
