"""A tiny Django app holding the asyncjobs bench tasks (its ``tasks.py`` is autoloaded)."""
