"""Files on disk and over the network: what every pipeline step reads and writes.

- :mod:`.atomic`: atomic output (a temporary file beside the destination, renamed on success);
- :mod:`.download`: verified downloads (sha256-checked, retried, bounded, atomic);
- :mod:`.storage`: field storage (``.npy`` written chunk by chunk, read back as memory maps)
  and the small JSON records beside it;
- :mod:`.provenance`: what a stored field was computed from.
"""
