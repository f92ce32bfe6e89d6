//! The embedded queue adapter.
