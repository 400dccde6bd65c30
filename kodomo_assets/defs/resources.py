"""The code location's resources, configured from the environment (EnvVar), never read with
os.environ inside an asset."""

from dagster import EnvVar

from kodomo_assets.lib.platform.storage import KodomoStorage

# The pipeline's account holds these: its data, the storage and pseudonym keys, and the
# center's public keys. The center's private keys are never among them.
storage = KodomoStorage(
    home=EnvVar("KODOMO_HOME"),
    inbox=EnvVar("KODOMO_INBOX"),
    storage_key_file=EnvVar("KODOMO_STORAGE_KEY_FILE"),
    pseudonym_key_file=EnvVar("KODOMO_KEY_FILE"),
    center_public_key_file=EnvVar("KODOMO_CENTER_PUBLIC_KEY_FILE"),
    # optional: another approval list (a later period; the demo's, with KODOMO_MODE=demo).
    # No clock is ever wired from the environment: the date of processing is the calendar's.
    approval_file=EnvVar("KODOMO_POLICY").get_value("") or "",
    mode=EnvVar("KODOMO_MODE").get_value("production") or "production",
)

resources = {"storage": storage}
