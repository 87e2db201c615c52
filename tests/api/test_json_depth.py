"""The JSON depth limit of the request guard: the fast checks agree with a plain walk."""

from __future__ import annotations

import random
from typing import Any

import orjson
import pytest

from regista.api.middleware import json_depth, too_deep


def reference_depth(value: Any) -> int:
    if isinstance(value, dict):
        return 1 + max((reference_depth(v) for v in value.values()), default=0)
    if isinstance(value, list):
        return 1 + max((reference_depth(v) for v in value), default=0)
    return 0


def random_json(rng: random.Random, depth: int) -> Any:
    roll = rng.random()
    if depth <= 0 or roll < 0.3:
        return rng.choice([1, 2.5, None, True, "plain", "{[ in a string ]}", "[[[[", ""])
    children = [random_json(rng, depth - 1) for _ in range(rng.randint(0, 4))]
    if roll < 0.65:
        return children
    return {f"k{i}{'{' * rng.randint(0, 3)}": c for i, c in enumerate(children)}


@pytest.mark.parametrize("seed", range(40))
def test_depth_checks_agree_with_a_plain_walk(seed: int) -> None:
    rng = random.Random(seed)
    for _ in range(50):
        value = random_json(rng, rng.randint(0, 12))
        raw = orjson.dumps(value)
        expected = reference_depth(value)
        for limit in (2, 3, 5, 8, 32):
            assert (json_depth(value, limit) > limit) == (expected > limit)
            assert too_deep(raw, value, limit) == (expected > limit)
            if expected <= limit:
                assert json_depth(value, limit) == expected


def test_brackets_inside_strings_do_not_count() -> None:
    value = {"a": "[" * 100 + "{" * 100, "b": [1, [2]]}
    raw = orjson.dumps(value)
    assert raw.count(b"[") > 32  # the quick count cannot decide: the walk does
    assert not too_deep(raw, value, 32)
    assert too_deep(raw, value, 2)


def test_the_limit_itself_is_allowed() -> None:
    value: Any = 1
    for _ in range(32):
        value = [value]
    raw = orjson.dumps(value)
    assert not too_deep(raw, value, 32)
    assert too_deep(orjson.dumps([value]), [value], 32)
    assert json_depth([value], 32) == 33
