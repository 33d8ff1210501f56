//! collective library
