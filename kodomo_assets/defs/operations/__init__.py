from kodomo_assets.defs.operations.purge import purge_job_for, purge_log
from kodomo_assets.defs.operations.schedules import arrival_sensor_for, monthly_schedule_for

__all__ = ["arrival_sensor_for", "monthly_schedule_for", "purge_job_for", "purge_log"]
