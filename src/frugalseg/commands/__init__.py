"""What each ``frugalseg`` sub-command does, one module each; ``cli.py`` only parses arguments."""
