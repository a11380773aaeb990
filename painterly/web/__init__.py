"""The web app (Gradio): ``WebApp(limits).launch(host, port)``; ``painterly web`` starts it."""

from painterly.web.app import WebApp
from painterly.web.limits import Limits

__all__ = ["Limits", "WebApp"]
