"""The Jetson TX2 (JetPack 4.6) bundle: `bundle.py` assembles it from `templates/` and `portable/`."""
