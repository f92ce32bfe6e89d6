//! The table port's contract cases.
