"""The one camelCase base of kefu's JSON models: camelCase on the wire, snake_case in Python (either is
accepted on input). ``ConfigSection`` also refuses unknown fields: the per-tenant configuration
sections and request bodies, where a misspelt field must not be silently dropped."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict
from pydantic.alias_generators import to_camel


class CamelModel(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True)


class ConfigSection(CamelModel):
    model_config = ConfigDict(extra="forbid")
