from kodomo_assets.defs.scoring.assets import risk_scores

__all__ = ["risk_scores"]
