"""Key rotation of the keyring secrets: ``policy`` (pure: which keys a keyring keeps, which key it
adds, what a valid result is) and ``secrets_manager`` (Secrets Manager's four-step rotation protocol
around it, run by ``functions/rotate_keys``)."""
