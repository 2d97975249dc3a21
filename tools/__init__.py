"""Tooling that lives only in the source checkout: never installed with the wheel.

``pyproject.toml`` packages ``planhat_pipelines*`` only, so nothing here reaches a user who installs the
package. The tests, the benchmarks and ``make demo WAREHOUSE=…`` import it from the checkout.
"""
