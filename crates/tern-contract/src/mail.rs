//! The mail port's contract cases.
