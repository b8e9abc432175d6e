# make train: the reference Fashion-MNIST workflow; make test: the test suite; make lint: ruff.
# Each creates .venv on first use.
# ARGS passes options on, e.g. make train ARGS="--trainer.max_epochs 2".
VENV ?= .venv
PYTHON := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: train train-sst2 test lint format data browser clean

$(STAMP): pyproject.toml
	python3 -m venv $(VENV)
	$(PYTHON) -m pip install --quiet --upgrade pip
	$(PYTHON) -m pip install --quiet -e ".[test]"
	touch $@

train: $(STAMP) data
	$(PYTHON) -m fashion_cnn.train $(ARGS)

train-sst2: $(STAMP)
	$(PYTHON) -m sst2_bilstm.train $(ARGS)

test: $(STAMP)
	$(PYTHON) -m pytest $(ARGS)

# ruff, configured in pyproject.toml: lint fails on a finding or on code the formatter would change.
lint: $(STAMP)
	$(PYTHON) -m ruff check .
	$(PYTHON) -m ruff format --check .

format: $(STAMP)
	$(PYTHON) -m ruff check --fix .
	$(PYTHON) -m ruff format .

# Offline Debian machines: where no Fashion-MNIST files are found and apt can be used, install Debian's copy.
data:
	@dir="$${DATA_DIR:-data}/FashionMNIST/raw"; \
	if ls "$$dir"/train-images-idx3-ubyte* >/dev/null 2>&1 || [ -d /usr/share/datasets/fashion-mnist ]; then exit 0; fi; \
	if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then apt=apt-get; \
	elif command -v sudo >/dev/null && sudo -n true 2>/dev/null; then apt="sudo apt-get"; \
	else echo "No Fashion-MNIST files in $$dir and apt is not usable: the run will try to download them."; exit 0; fi; \
	$$apt install -y dataset-fashion-mnist || { $$apt update && $$apt install -y dataset-fashion-mnist; }

# The page's browser test drives Debian's chromium; where apt can be used, install it (and say whether it is there).
browser:
	@if command -v chromium >/dev/null && command -v chromedriver >/dev/null; then exit 0; fi; \
	if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then apt=apt-get; \
	elif command -v sudo >/dev/null && sudo -n true 2>/dev/null; then apt="sudo apt-get"; \
	else echo "No chromium here and apt is not usable: the browser test will be skipped."; exit 0; fi; \
	$$apt install -y --no-install-recommends chromium chromium-driver || \
	{ $$apt update && $$apt install -y --no-install-recommends chromium chromium-driver; }

clean:
	rm -rf $(VENV) runs
