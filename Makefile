# Sigil. `make dev` runs a local network; `make test` runs everything CI runs.
# Nothing here needs network access beyond the crate registry, and nothing needs to be installed by hand.

CARGO ?= cargo
NODES ?= 5

.PHONY: dev test bench lint fmt clean

## Build in release mode and run a local network of $(NODES) node processes in .sigil/ (Ctrl-C stops it).
dev:
	$(CARGO) build --release -p sigil
	./target/release/sigil dev --nodes $(NODES) --dir .sigil

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

## Criterion benchmarks of the threshold core, then signing on a real 5-node network (several minutes on 2 cores).
bench:
	$(CARGO) bench -p sigil-tss
	$(CARGO) build --release -p sigil
	./target/release/sigil bench sign --nodes 5 --duration 10s --concurrency 1
	./target/release/sigil bench sign --nodes 5 --duration 10s --concurrency 8

fmt:
	$(CARGO) fmt --all

clean:
	$(CARGO) clean
