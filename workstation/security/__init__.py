"""The security core: envelope encryption, hybrid sealing and signatures, keys, trust, bundles.

Built only on ``cryptography`` (pinned to 50.x for HPKE with the ML-KEM-768 + X25519 KEM and for
ML-DSA-65). Modules:

- :mod:`~workstation.security.aead`: AES-256-GCM with context-bound associated data, key rings
- :mod:`~workstation.security.seal`: multi-recipient HPKE sealing (ML-KEM-768 + X25519)
- :mod:`~workstation.security.sign`: hybrid Ed25519 + ML-DSA-65 signatures
- :mod:`~workstation.security.keystore`: the workstation's keys, wrapped under a KEK
- :mod:`~workstation.security.trust`: trust roots per role, thresholds, expiry, revocation
- :mod:`~workstation.security.bundle`: the signed bundle format for models, plugins, releases
"""
