"""Training side: export, objectives, the pipeline. Needs the `[train]` extra (torch)."""
