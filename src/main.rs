//! collective binary
fn main() {}
