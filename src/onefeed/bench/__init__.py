"""Benchmark suites (``runner``): baselines and our models x seeds -> results and a report.

Sits above ``baselines`` (which may train our models) and ``evaluation`` (pure scoring);
see docs/ARCHITECTURE.md, "Dependency rules".
"""
