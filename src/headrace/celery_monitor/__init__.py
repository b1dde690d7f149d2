"""Celery cluster monitoring: Celery events from a broker into task and worker rows.

``normalize`` turns message bodies into bounded events, ``fold`` merges events
into rows (pure), ``consumer`` reads the broker in a thread, ``service`` commits
batches and runs retention, ``broker`` holds the blocking control calls. The
package is not named ``celery`` so it never shadows the library.
"""
