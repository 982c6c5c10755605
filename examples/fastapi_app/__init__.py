"""A FastAPI app that enqueues Conveyor tasks from async endpoints (see README.md here)."""
