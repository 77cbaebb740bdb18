"""Data layer: file-format sources, annotation files, weak-label simulation, candidate maps, datasets."""
