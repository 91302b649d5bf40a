"""Shared test fakes, record factory and runner fixtures (not tests: no test_* modules here)."""
