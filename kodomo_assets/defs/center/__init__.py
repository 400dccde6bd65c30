from kodomo_assets.defs.center.assets import review_list
from kodomo_assets.defs.center.feedback import verification_feedback

__all__ = ["review_list", "verification_feedback"]
