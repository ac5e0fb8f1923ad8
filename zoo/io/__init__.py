"""Persistence: atomic model folders and their checks, Hub pull / push, the record files a
model folder holds (training.json, eval_results.json) and its model card."""
