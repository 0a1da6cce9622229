"""The built-in implementations of the four slots and the built-in observers.

The kernel never imports this package: each implementation is registered under its slot's
entry-point group in this distribution's ``pyproject.toml``, exactly as a third party's is.
"""
