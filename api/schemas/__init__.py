"""Request and response models: what crosses the HTTP edge, and nothing else."""
