"""Dataset cards for built runs: Jinja2 templates and the renderer, fed by each run's manifest."""
