"""Reporting: the committee's report, its tables (council), suppression and the lineage diagram."""
