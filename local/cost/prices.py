"""The price table (prices.toml): AWS on-demand list prices, us-east-1, with their sources and date."""

from __future__ import annotations

import tomllib
from functools import cache
from pathlib import Path
from typing import Any

PRICES_FILE = Path(__file__).with_name("prices.toml")


@cache
def load_prices(path: Path = PRICES_FILE) -> dict[str, Any]:
    return tomllib.loads(path.read_text(encoding="utf-8"))


def price(section: str, key: str, prices: dict[str, Any] | None = None) -> float:
    table = prices if prices is not None else load_prices()
    return float(table[section][key])


def hours_per_month(prices: dict[str, Any] | None = None) -> float:
    table = prices if prices is not None else load_prices()
    return float(table["hours_per_month"])
