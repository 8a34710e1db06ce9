//! resource (being written)
