//! Load generator (benchmark binary) — being written.
fn main() {}
