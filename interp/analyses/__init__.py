"""One module per experiment, each with `run(model, ...) -> Result` (see interp.results)."""
