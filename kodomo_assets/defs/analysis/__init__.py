from kodomo_assets.defs.analysis.assets import linked_children

__all__ = ["linked_children"]
