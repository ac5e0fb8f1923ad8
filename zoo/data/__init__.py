"""Data: manifests (JSONL, COCO JSON), datasets and collation; check / clean / label."""
