//! The queue port's contract cases.
