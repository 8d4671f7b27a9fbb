"""The network (torchvision backbone + bottleneck + classifier) and its checkpoints."""
