//! The blobs port's contract cases.
