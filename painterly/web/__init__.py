"""The web app (Gradio): ``WebApp(limits).launch(host, port)`` from ``painterly.web.app``; ``painterly web``
starts it. Nothing is imported here, so the command line (which reads ``web.limits`` for its flags) works
without the ``web`` extra installed."""
