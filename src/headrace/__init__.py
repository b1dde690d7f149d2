"""headrace: a light, self-hosted orchestration server that speaks the Prefect 3 API."""

__version__ = "0.1.0"

# The Prefect API version headrace answers as (GET /api/admin/version). The client
# refuses a different major version and warns about an older one.
PREFECT_COMPAT_VERSION = "3.9.1"
