"""The admin UI under /admin: sign-in, the lights of every part, people, API keys, audit."""

from m365pbx.web.admin_ui.routes import PREFIX, AdminUi, admin_ui_router

__all__ = ["PREFIX", "AdminUi", "admin_ui_router"]
