"""A training run: the loop, its budget, batches, optimizers, seeds, events and evaluation."""
