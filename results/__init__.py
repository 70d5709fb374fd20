"""Run records to published-style tables: ``synco tabulate`` and its importable parts.

- :mod:`results.stats`     sample std and Welch intervals (scipy's Student t)
- :mod:`results.runs`      run records → one DataFrame, unusable records as skips with a reason
- :mod:`results.columns`   which tasks share a table, and their column ids and headers
- :mod:`results.aggregate` DataFrame → per-table rows with Δ and the within-noise rule
- :mod:`results.published` the reported numbers in ``results/published.csv``
- :mod:`results.render`    Markdown, LaTeX, CSV, JSON
- :mod:`results.plots`     PNG/SVG bar charts
- :mod:`results.curves`    the online kNN monitor of pretraining (metrics.jsonl) → table and PNG
- :mod:`results.export`    every format and the plots of a set of runs, into one folder

This layer reads what :mod:`transfer` defines (the run record's schema in
:mod:`transfer.record`, the task registry in :mod:`transfer.tasks`) and is
never imported by it.
"""
