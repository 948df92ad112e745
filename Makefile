# Sigil. `make dev` runs the threshold core demo; `make test` runs everything CI runs.
# Nothing here needs network access beyond the crate registry, and nothing needs to be installed by hand.

CARGO ?= cargo
NODES ?= 5

.PHONY: dev test bench lint fmt clean

## Build in release mode and run the in-process demo: DKG, PKP derivation, presign, sign, verify, IBE.
dev:
	$(CARGO) build --release -p sigil
	./target/release/sigil demo --nodes $(NODES)

## Everything CI runs: formatting, lints (also on tests and benches), all tests, doc tests, a demo run.
test: lint
	@if $(CARGO) nextest --version >/dev/null 2>&1; then \
		$(CARGO) nextest run --workspace --no-fail-fast; \
	else \
		$(CARGO) test --workspace --no-fail-fast --lib --bins --tests; \
	fi
	$(CARGO) test --workspace --doc
	$(CARGO) run -q -p sigil -- demo --nodes 3 > /dev/null
	@echo "make test: all checks passed"

lint:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings

## Criterion benchmarks of the threshold core (several minutes on 2 cores).
bench:
	$(CARGO) bench -p sigil-tss

fmt:
	$(CARGO) fmt --all

clean:
	$(CARGO) clean
