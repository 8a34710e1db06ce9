//! cfn (being written)
