"""Reporting: the committee's report (put together in monthly.py, one module per section), its
tables (council), suppression, plots, markdown and the lineage diagram."""
