"""Models: architectures, checkpoints and the registry of shipped weights."""
