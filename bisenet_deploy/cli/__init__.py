"""Command-line entry points. Each `*_main.py` module is one console script from setup.cfg."""
