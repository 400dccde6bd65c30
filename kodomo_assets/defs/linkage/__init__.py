from kodomo_assets.defs.linkage.assets import pupil_links

__all__ = ["pupil_links"]
