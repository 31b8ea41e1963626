"""The export shop: a FastAPI web app and its partner sandboxes."""
