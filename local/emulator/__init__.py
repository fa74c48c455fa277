"""Local emulator of API Gateway WebSocket APIs, the Lambda Invoke API and SQS event source mappings.

Handlers run in-process; see ``ApiConfig`` for what can be configured and ``Emulator`` to run it.
"""

from local.emulator.config import ApiConfig, EventSourceMapping, FunctionConfig
from local.emulator.emulator import Emulator, EmulatorThread
from local.emulator.management import build_http_app

__all__ = [
    "ApiConfig",
    "Emulator",
    "EmulatorThread",
    "EventSourceMapping",
    "FunctionConfig",
    "build_http_app",
]
