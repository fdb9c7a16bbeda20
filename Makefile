# The two entry points of the README: `make demo` and `make test`.
.PHONY: demo test check bootstrap bench clean

bootstrap:
	@scripts/bootstrap

demo: bootstrap
	.venv/bin/python demo/run.py

test: bootstrap
	scripts/check

check: test

bench: bootstrap
	.venv/bin/python -m bench

clean:
	rm -rf .venv .mypy_cache .ruff_cache .pytest_cache .hypothesis
