"""Policy: what may be read, linked and published (approval, statutory limits, gate, pseudonyms)."""
