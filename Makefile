.PHONY: test lint format bench proofs docs figures reproduce
test:
	python -m pytest -q
lint:
	ruff check . && ruff format --check erftheory tests && mypy
format:
	ruff format erftheory tests
bench:
	python benchmarks/issue2_overhead.py && python benchmarks/run.py --quick && python benchmarks/batched.py --quick
proofs:
	python -m proofs
figures:
	python docs/figures.py
docs:
	mkdocs build --strict
reproduce:
	erftheory reproduce --out erf-results
