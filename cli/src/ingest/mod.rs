//! Reading package sources (being written).
