//! Crops (being written).
