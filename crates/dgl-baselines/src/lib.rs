//! dgl-baselines
