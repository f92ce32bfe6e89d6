//! The workflows port's contract cases.
