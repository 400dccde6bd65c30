from kodomo_assets.defs.committee.assets import committee_report

__all__ = ["committee_report"]
