# Sigil. `make dev` runs a local network; `make test` runs everything CI runs.
# Nothing here needs network access beyond the crate registry, and nothing needs to be installed by hand.

CARGO ?= cargo
NODES ?= 5
# Contract toolchain (forge, anvil, cast, solc, OpenZeppelin), pinned in tools/package-lock.json.
TOOLS_BIN := $(CURDIR)/tools/node_modules/.bin
FORGE := $(TOOLS_BIN)/forge

.PHONY: dev test fuzz bench lint fmt clean tools contracts

## Build in release mode and run a local network of $(NODES) node processes in .sigil/ (Ctrl-C stops it).
## The contracts (npm tools, solc) are built beside the Rust build, their output in target/contracts.log.
dev:
	@mkdir -p target
	@$(MAKE) --no-print-directory contracts > target/contracts.log 2>&1 & contracts=$$!; \
	$(CARGO) build --release -p sigil; built=$$?; \
	wait $$contracts; made=$$?; \
	if [ $$made -ne 0 ]; then cat target/contracts.log; echo "make dev: building the contracts failed"; exit $$made; fi; \
	exit $$built
	./target/release/sigil dev --nodes $(NODES) --dir .sigil

## Everything CI runs: formatting, lints (also on tests and benches), contract tests, all tests (with the
## test-only fault switches compiled in: `--features sigil/test-faults`), doc tests, a demo run.
test: lint contracts
	cd contracts && $(FORGE) test
	@if $(CARGO) nextest --version >/dev/null 2>&1; then \
		$(CARGO) nextest run --workspace --no-fail-fast --features sigil/test-faults; \
	else \
		$(CARGO) test --workspace --no-fail-fast --lib --bins --tests --features sigil/test-faults; \
	fi
	$(CARGO) test --workspace --doc
	$(CARGO) run -q -p sigil -- demo --nodes 3 > /dev/null
	@echo "make test: all checks passed"

## Only the fuzz targets (tests named `fuzz_*`, driver in crates/fuzz), each for $(SECONDS) seconds from a
## fresh seed instead of the 10^4 fixed cases `make test` runs; nextest runs two at a time on two cores,
## so the whole run takes about (targets / 2) x SECONDS. A failure prints SIGIL_FUZZ_SEED=… to replay it.
SECONDS ?= 60
fuzz:
	SIGIL_FUZZ_SECONDS=$(SECONDS) $(CARGO) nextest run --workspace --no-fail-fast -E 'test(/^fuzz::fuzz_/)'

## Install the pinned contract toolchain into tools/node_modules (again only when the lock file changes).
tools: tools/node_modules/.stamp

tools/node_modules/.stamp: tools/package-lock.json
	cd tools && npm ci --no-audit --no-fund
	touch $@

## Compile the Solidity contracts (contracts/out/).
contracts: tools
	cd contracts && $(FORGE) build

lint:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets --features sigil/test-faults -- -D warnings

## Criterion benchmarks of the threshold core and the mesh envelopes, then signing on a real 5-node network (several minutes on 2 cores).
bench:
	$(CARGO) bench -p sigil-tss
	$(CARGO) bench -p sigil-mesh
	$(CARGO) build --release -p sigil
	./target/release/sigil bench sign --nodes 5 --duration 10s --concurrency 1
	./target/release/sigil bench sign --nodes 5 --duration 10s --concurrency 8
	./target/release/sigil bench sign --nodes 5 --duration 10s --concurrency 1 --link-delay-ms 30
	./target/release/sigil bench action --nodes 5 --duration 20s
	./target/release/sigil bench decrypt --nodes 5 --duration 10s

fmt:
	$(CARGO) fmt --all

clean:
	$(CARGO) clean
	rm -rf contracts/out contracts/cache
