//! Client side of the wire format, shared by the `chat` binary: connecting,
//! sending sealed lines, reading and opening frames, and making peers' text
//! safe to print.
