"""Run records to published-style tables: ``synco tabulate`` and its importable parts.

- :mod:`results.stats`     sample std and Welch intervals (scipy's Student t)
- :mod:`results.aggregate` records → DataFrame → per-task tables with Δ and the within-noise rule
- :mod:`results.published` the reported numbers in ``results/published.csv``
- :mod:`results.render`    Markdown, LaTeX, CSV, JSON
- :mod:`results.plots`     PNG/SVG bar charts
- :mod:`results.export`    every format and the plots of a set of runs, into one folder

This layer reads what :mod:`transfer` defines (the run record's schema in
:mod:`transfer.record`, the task registry in :mod:`transfer.tasks`) and is
never imported by it.
"""
