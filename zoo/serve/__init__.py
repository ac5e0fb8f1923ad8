"""Serving: an ASGI app (FastAPI, run by uvicorn) with micro-batching, limits enforced while
reading, an API key, a feedback store, ONNX Runtime and Ray Serve backends.

:func:`create_app` builds the app; :mod:`zoo.serve.app` has the routes."""
from zoo.serve.app import app_from_env, create_app

__all__ = ["create_app", "app_from_env"]
