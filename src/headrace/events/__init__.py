"""Events: ingest over /events/in, the pipeline that stores and fans them out."""
