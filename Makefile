.PHONY: test lint format bench proofs
test:
	python -m pytest -q
lint:
	ruff check . && ruff format --check erftheory && mypy
format:
	ruff format erftheory tests
bench:
	python benchmarks/issue2_overhead.py && python benchmarks/run.py --quick
proofs:
	python -m proofs
