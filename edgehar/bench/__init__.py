"""What the benchmark scripts share: reuse by content hash, provenance, tables and targets."""
