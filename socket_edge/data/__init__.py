"""Images on disk: readers, encodings, transforms, datasets and the built-in benchmark."""
