//! The `relay-bench` load generator: scenarios, flow control, verification
//! and reporting.
