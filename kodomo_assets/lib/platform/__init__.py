"""Platform: where data lives and how it is kept closed at rest (storage resource, keys,
encryption, staged publishing, tamper-evident logs)."""
