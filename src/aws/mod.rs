//! aws (being written)
