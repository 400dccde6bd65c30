"""Linkage: 学齢簿 pupils linked to the resident register, and the steward's review of links."""
