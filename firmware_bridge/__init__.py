"""Live bridge: serial protocols (text, COBS frames), reader, virtual device, live view; wire
format in PROTOCOL.md (the device-side C sources are in edgehar/mcu/firmware/)."""
