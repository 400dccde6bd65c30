from kodomo_assets.defs.center.assets import review_list

__all__ = ["review_list"]
