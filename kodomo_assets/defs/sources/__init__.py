from kodomo_assets.defs.sources.assets import source_assets
from kodomo_assets.defs.sources.inbox import inbox_receipt

__all__ = ["inbox_receipt", "source_assets"]
