"""framegru's built-in run listeners: the terminal UI, ``metrics.jsonl`` and TensorBoard."""
