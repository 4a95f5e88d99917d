"""Live bridge: serial protocols (text, COBS frames), reader, virtual device, live view; device
sources in firmware/, wire format in PROTOCOL.md."""
