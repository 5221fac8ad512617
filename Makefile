# Two commands set up everything: `make run` (demo) and `make test` (test suite).
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install run test lint bench clean

$(STAMP): pyproject.toml
	# Workcells keep their queues in Redis; the tests start a throwaway redis-server.
	command -v redis-server >/dev/null || (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-server) >/dev/null 2>&1 || echo "redis-server could not be installed: workcell tests will skip"
	# The dashboard's browser tests drive Debian's chromium (Playwright's own download is not used).
	command -v chromium >/dev/null || (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium) >/dev/null 2>&1 || echo "chromium could not be installed: browser tests will skip"
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	# The CPU wheel first: an unpinned torch would pull a multi-GB CUDA build.
	$(BIN)/python -m pip install --quiet torch==2.13.0
	# the planner kinds ax and baybe are tested for real, so the tests install their extra
	$(BIN)/python -m pip install --quiet -e '.[dev,peers]'
	# the tests' tiled server: a venv of its own (tiled's server pins its own SQLAlchemy)
	test -x $(VENV)/tiled-server/bin/python || $(PYTHON) -m venv $(VENV)/tiled-server
	$(VENV)/tiled-server/bin/python -m pip install --quiet 'tiled[server]>=0.2' || echo "tiled server could not be installed: tiled tests will skip"
	touch $(STAMP)

install: $(STAMP)

# The demo: towards blue (470 nm) CsPbBr3 cubes on the simulated lab, the BoTorch planner and
# then random search (30 experiments), stored in the embedded SQLite database, and one report
# comparing them.
run: install
	$(BIN)/qdlab campaign run configs/campaigns/blue_470_botorch.yaml configs/campaigns/blue_470_random.yaml --db sqlite:///qdlab.db --report reports/demo
	@echo "report: reports/demo/report.html"

# Two workers, a test file each at a time (its servers and fixtures stay with it); the
# slowest tests are listed at the end.
test: install
	$(BIN)/python -m pytest -q -n 2 --dist loadfile --durations=15

lint: install
	$(BIN)/ruff check .

bench: install
	$(BIN)/python benchmarks/calibration.py
	$(BIN)/python benchmarks/simulation_speed.py
	$(BIN)/python benchmarks/device_scan_speed.py
	$(BIN)/python benchmarks/db_write_speed.py
	$(BIN)/python benchmarks/campaign_throughput.py
	$(BIN)/python benchmarks/backend_overhead.py
	$(BIN)/python benchmarks/planner_efficiency.py --quick
	$(BIN)/python benchmarks/reliability.py
	$(BIN)/python benchmarks/workcell_scaling.py

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
