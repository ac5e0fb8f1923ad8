"""What tests, demos and benches need, kept out of the runtime path (nothing in zoo imports
it): ``hubserver``, a local Hugging Face Hub-compatible server on 127.0.0.1; ``synthetic``,
offline data sets built from scikit-learn's digits, espeak-ng and pasted canvases."""
