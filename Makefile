# `make demo` and `make test` work on a fresh Debian machine as root with Python 3.11.
.PHONY: setup demo quick test test-fast bench extra-voices clean

setup:
	bash scripts/setup.sh

demo: setup
	.venv/bin/toposcope demo

quick: setup
	.venv/bin/toposcope demo --quick

test: setup
	.venv/bin/python -m pytest -q

test-fast: setup
	.venv/bin/python -m pytest -q -m "not slow and not browser"

# opt-in: six more Festival voices from Debian contrib/non-free (docs/usage.md § More voices)
extra-voices:
	bash scripts/extra_voices.sh

bench: setup
	.venv/bin/python benchmarks/run_all.py

clean:
	rm -rf .venv build *.egg-info .pytest_cache
