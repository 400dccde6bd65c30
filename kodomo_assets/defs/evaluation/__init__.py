from kodomo_assets.defs.evaluation.assets import evaluation, fairness_audit

__all__ = ["evaluation", "fairness_audit"]
