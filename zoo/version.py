"""zoo's version: a leaf module, so anything may read it without importing the API."""
__version__ = "0.1.0"
