"""Regista's benchmark harness: ``make bench`` → ``python -m bench``.

Every scenario starts real servers as subprocesses on 127.0.0.1, drives them over HTTP
with httpx, and returns a :class:`bench.common.Scenario` of measured rows; the report
module writes them to ``docs/benchmarks.md`` with the machine and the exact command.
Nothing here changes how the server stores data: every write stays durable.
"""
