//! databricks (being written)
