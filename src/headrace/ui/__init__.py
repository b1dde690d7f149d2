"""The dashboard: Celery workers and tasks, live, as plain HTML/CSS/JS (no build step)."""
