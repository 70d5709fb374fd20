"""Run records to published-style tables: ``synco tabulate`` and its importable parts.

- :mod:`results.records`   the ``run_record.json`` schema (shared with ``synco transfer``) and a strict reader
- :mod:`results.stats`     sample std, Student-t quantile, Welch interval (no scipy)
- :mod:`results.aggregate` records → DataFrame → per-task tables with Δ and the within-noise rule
- :mod:`results.published` the reported numbers in ``results/published.csv``
- :mod:`results.render`    Markdown, LaTeX, CSV, JSON
- :mod:`results.plots`     PNG/SVG bar charts

Nothing is imported here, so ``results.records`` stays cheap for the writer side.
"""
