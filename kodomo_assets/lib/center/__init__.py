"""Center: the center zone's file exchange (the review list out, the verification results back)."""
