# The exchange format's admin pages (integrations.admin_exchange); the API keys' admin sits beside it.
from integrations import admin_exchange  # noqa: F401
