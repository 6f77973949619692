# The two front-door commands are `make demo` and `make test`; everything they need installs itself.
# Everything runs in the project's virtual environment, installed from uv.lock by .ci/install-deps.
VENV := .venv
PYTHON ?= $(VENV)/bin/python
STAMP := .make/installed
DEMO_DB ?= sqlite:///extschema.db
DEMO_SVG ?= extschema-plugins.svg

.PHONY: install test lint unit demo demo-helm demo-cli bench bench-engine bench-operator bench-api bench-startup chaos fuzz e2e crds helm manifests image dist cluster-build cluster-up cluster-down clean

$(STAMP): pyproject.toml uv.lock .ci/install-deps tests/js/package-lock.json
	bash .ci/install-deps
	@mkdir -p .make && touch $(STAMP)

install: $(STAMP)

lint: install
	$(PYTHON) -m ruff check operator tests bench examples
	$(PYTHON) -m ruff format --check operator tests bench examples
	$(PYTHON) -m mypy
	$(VENV)/bin/lint-imports

test: install lint
	$(PYTHON) -m tests.controlplane build
	$(PYTHON) -m tests.controlplane.helm
	$(PYTHON) -m tests.controlplane.helm 3
	$(PYTHON) -m pytest --cov=extschema --cov-report=term $(PYTEST_ARGS)
	$(PYTHON) tests/coverage_gate.py

unit: install
	$(PYTHON) -m pytest -m "not postgres and not k8s" $(PYTEST_ARGS)

demo: install
	$(PYTHON) examples/demo.py

# A plugin installed by its own Helm chart (examples/plugin-chart/): helm install --wait, extschema wait, uninstall.
demo-helm: install
	$(PYTHON) examples/demo_helm.py

# The same engine without a cluster: the CLI on the embedded SQLite file.
demo-cli: install
	@echo "== extschema CLI demo on $(DEMO_DB) =="
	$(PYTHON) examples/core/load.py $(DEMO_DB)
	$(PYTHON) -m extschema validate examples/
	$(PYTHON) -m extschema apply examples/ --database $(DEMO_DB)
	$(PYTHON) -m extschema apply examples/ --database $(DEMO_DB)
	@echo "== a plugin that tries to take another's table is rejected (exit 1 expected) =="
	-$(PYTHON) -m extschema apply examples/rejected/ --database $(DEMO_DB)
	$(PYTHON) -m extschema status --database $(DEMO_DB)
	$(PYTHON) -m extschema history --database $(DEMO_DB)
	$(PYTHON) examples/gated_delete.py $(DEMO_DB)
	@echo "== the REST API on the same database: extschema serve, a few requests, stop =="
	$(PYTHON) examples/serve_demo.py $(DEMO_DB)
	@echo "== the plugins' tables for the host application: a Prisma fragment, TypeScript types, query analysis =="
	$(PYTHON) -m extschema prisma --fragment --database $(DEMO_DB)
	$(PYTHON) -m extschema types --lang typescript --database $(DEMO_DB)
	$(PYTHON) -m extschema analyze kb --min-rows 0 --database $(DEMO_DB)
	@echo "== a pull request's plan without a database: extschema diff OLD NEW (the hash plan gives at OLD) =="
	$(PYTHON) -m extschema diff examples/evolution/v1.yaml examples/evolution/v2.yaml --core examples/core/core.sql
	@echo "== a picture of the plugins: extschema diagram (Mermaid; SVG with Graphviz in extschema-plugins.svg) =="
	$(PYTHON) -m extschema diagram --database $(DEMO_DB)
	@if command -v dot >/dev/null; then $(PYTHON) -m extschema diagram --database $(DEMO_DB) --format svg > $(DEMO_SVG) && echo "wrote $(DEMO_SVG)"; fi

bench: install
	$(PYTHON) bench/report.py

bench-engine: install
	$(PYTHON) bench/engine.py

bench-operator: install
	$(PYTHON) bench/operator_latency.py

bench-api: install
	$(PYTHON) bench/api.py

# CLI start-up (fresh processes, warm __pycache__) and diff + plan of a 200-table change; JSON.
bench-startup: install
	$(PYTHON) bench/startup.py
# The full chaos run (docs/chaos.md): 50 plugins, 100 kill -9s of the operator, every other fault (the peered
# replicas' and the shards' too) 10 times; prints the table and writes chaos-results.json. `make test` runs the
# bounded variant (tests/test_chaos.py).
chaos: install
	$(PYTHON) -m tests.controlplane build
	$(PYTHON) -m tests.chaos --json chaos-results.json $(CHAOS_ARGS)

e2e: install
	$(PYTHON) -m pytest -m k8s $(PYTEST_ARGS)

# The fuzz suite at full size (docs/fuzz.md): FUZZ_EXAMPLES generated documents per channel, new ones each run,
# through the CLI, the REST API and kubectl apply; prints the cases per channel. `make test` runs it small.
FUZZ_EXAMPLES ?= 300
fuzz: install
	$(PYTHON) -m tests.controlplane build
	FUZZ_EXAMPLES=$(FUZZ_EXAMPLES) $(PYTHON) -m pytest tests/test_fuzz.py -o timeout=0 $(PYTEST_ARGS)

# crds/, the chart's templates/crds/ and docs/crd-reference.md, then the raw manifests rendered from the chart.
crds: install
	$(PYTHON) -m extschema crd --write
	$(MAKE) manifests

# Helm 4 (v4.3.2), built from the Go module proxy once and cached under ~/.cache/extschema (prints its path);
# `python -m tests.controlplane.helm 3` builds the Helm 3 release the chart is also checked with.
helm: install
	$(PYTHON) -m tests.controlplane.helm

# deploy/manifests/extschema.yaml: the chart rendered with its default values (install without Helm).
manifests: install
	$(PYTHON) -m tests.controlplane.helm manifests

# The operator image from operator/Dockerfile, daemonless (mmdebstrap base + buildah), cached by content hash;
# prints its name (localhost/extschema:<hash>). Needs podman buildah mmdebstrap runc uidmap (apt).
image: install
	$(PYTHON) -m tests.image_build

# The release's artifacts in dist/: wheel and sdist, the packaged chart, the image as an OCI archive, all of the
# version in pyproject.toml (refused when a place disagrees; `python -m tests.release stamp VERSION` writes it).
dist: install
	$(PYTHON) -m tests.release dist

cluster-build: install
	$(PYTHON) -m tests.controlplane build

cluster-up: install
	$(PYTHON) -m tests.controlplane up

cluster-down:
	$(PYTHON) -m tests.controlplane down

clean:
	rm -rf .make .cluster .fuzz dist chaos-results.json extschema.db extschema-plugins.svg .coverage $(VENV)
