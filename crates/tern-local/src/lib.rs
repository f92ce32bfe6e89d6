//! The local host: the embedded engine assembled, the HTTP routes served on loopback, and the queue workers.
